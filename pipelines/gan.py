"""Unlabelled image streams for GAN training: [-1, 1] float images."""

import dataclasses

import tensorflow as tf

from pipelines import images, sources


@dataclasses.dataclass
class GanData:
    """What a GAN trainer needs from its data.

    `make_dataset(epoch)` returns endless, shuffled batches of images in
    [-1, 1]; the same epoch always gives the same order, so a resumed run
    continues with the batches it had not seen.
    """

    make_dataset: callable
    num_examples: int
    class_names: tuple
    description: str


def to_unit_range(image):
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def prepare_images(split, image_size, channels):
    """Resizes to `image_size` and converts channels; returns a filled in-memory uint8 cache.

    The cache is filled by one full pass here: an epoch shorter than the
    data would otherwise discard a partly filled cache and decode again.
    """

    def prepare(image, label):
        image = images.convert_channels(image, channels)
        image = images.resize(image, image_size)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)

    cached = split.dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).cache()
    cached.reduce(0, lambda count, _: count + 1)
    return cached


def build_gan_data(
    data,
    image_size,
    channels,
    batch_size,
    seed=0,
    split="train",
    tfds_data_dir=None,
    shuffle_buffer=10_000,
):
    source = sources.load(data, split=split, channels=channels, tfds_data_dir=tfds_data_dir)
    if source.num_examples < batch_size:
        raise ValueError(
            f"{source.description}: {source.num_examples} images, fewer than one batch of {batch_size}."
        )
    prepared = prepare_images(source, image_size, channels)
    buffer = min(shuffle_buffer, source.num_examples)

    def make_dataset(epoch):
        return (
            prepared.shuffle(buffer, seed=seed + epoch, reshuffle_each_iteration=True)
            .repeat()
            .batch(batch_size, drop_remainder=True)
            .map(to_unit_range, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE)
        )

    return GanData(make_dataset, source.num_examples, source.class_names, source.description)
