"""Image streams for GAN training: [-1, 1] float images, with their labels for a conditional GAN."""

import dataclasses

import tensorflow as tf

from pipelines import sources


@dataclasses.dataclass
class GanData:
    """What a GAN trainer needs from its data.

    `make_dataset(epoch)` returns endless, shuffled batches of images in
    [-1, 1] (with `labels=True`: (images, int32 labels)); the same epoch
    always gives the same order, so a resumed run continues with the batches
    it had not seen.
    """

    make_dataset: callable
    num_examples: int
    class_names: tuple
    description: str


def to_unit_range(image):
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def _scale_labelled(image, label):
    return to_unit_range(image), label


def build_gan_data(
    data,
    image_size,
    channels,
    batch_size,
    seed=0,
    split="train",
    tfds_data_dir=None,
    shuffle_buffer=10_000,
    labels=False,
):
    source = sources.load(data, split=split, channels=channels, tfds_data_dir=tfds_data_dir)
    if source.num_examples < batch_size:
        raise ValueError(
            f"{source.description}: {source.num_examples} images, fewer than one batch of {batch_size}."
        )
    prepared = sources.resized_cache(source, image_size, channels)
    if not labels:
        prepared = prepared.map(lambda image, label: image)
    buffer = min(shuffle_buffer, source.num_examples)

    def make_dataset(epoch):
        return (
            prepared.shuffle(buffer, seed=seed + epoch, reshuffle_each_iteration=True)
            .repeat()
            .batch(batch_size, drop_remainder=True)
            .map(_scale_labelled if labels else to_unit_range, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE)
        )

    return GanData(make_dataset, source.num_examples, source.class_names, source.description)
