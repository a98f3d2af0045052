"""Labelled image batches for classifiers: (float32 image, int32 label)."""

import dataclasses

import tensorflow as tf

from pipelines import gan, images, sources


@dataclasses.dataclass
class ClassificationData:
    """Batched splits of one source, by split name, and what is known about them."""

    datasets: dict
    num_examples: dict
    class_names: tuple
    channels: int
    description: str


def prepare_examples(split, image_size, channels):
    """(uint8 image resized to `image_size` with `channels`, label), cached in memory by one full pass."""

    def prepare(image, label):
        image = images.resize(images.convert_channels(image, channels), image_size)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), label

    cached = split.dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).cache()
    cached.reduce(0, lambda count, _: count + 1)
    return cached


def batch_split(
    split,
    image_size,
    channels,
    batch_size,
    shuffle=False,
    seed=0,
    normalize=gan.to_unit_range,
    shuffle_buffer=10_000,
):
    """Resizes, caches, (shuffles,) batches and normalizes one `sources.ImageSplit`.

    `normalize` maps a uint8 image batch to float32; the default scales to
    [-1, 1] like the GAN pipeline.
    """
    dataset = prepare_examples(split, image_size, channels)
    if shuffle:
        dataset = dataset.shuffle(min(shuffle_buffer, split.num_examples), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).map(
        lambda image, label: (normalize(image), label), num_parallel_calls=tf.data.AUTOTUNE
    ).prefetch(tf.data.AUTOTUNE)


def build_classification_data(
    data,
    image_size,
    batch_size,
    splits=("train", "test"),
    channels=None,
    seed=0,
    tfds_data_dir=None,
    normalize=gan.to_unit_range,
):
    """Loads `splits` of the source `data`; only the first split (training) is shuffled.

    Channels default to the first split's; class names come from it too, and
    a later split with other class names is refused.
    """
    datasets, counts = {}, {}
    first = None
    for index, name in enumerate(splits):
        split = sources.load(data, split=name, channels=channels, tfds_data_dir=tfds_data_dir)
        first = first or split
        channels = channels or split.channels
        if tuple(split.class_names) != tuple(first.class_names):
            raise ValueError(
                f"{split.description}: classes {list(split.class_names)} differ from "
                f"{first.description}: {list(first.class_names)}."
            )
        datasets[name] = batch_split(
            split, image_size, channels, batch_size, shuffle=index == 0, seed=seed, normalize=normalize
        )
        counts[name] = split.num_examples
    return ClassificationData(datasets, counts, tuple(first.class_names), channels, first.description)
