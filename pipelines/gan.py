"""Image streams for GAN training: [-1, 1] float images, with their labels for a conditional GAN
or their k-means clusters for a self-conditioned one."""

import dataclasses

import numpy as np
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
    class_prior: tuple = ()


def to_unit_range(image):
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def _scale_labelled(image, label):
    return to_unit_range(image), label


CLUSTER_SIDE = 32
CLUSTER_COMPONENTS = 50


def pseudo_labels(images, count, seed=0):
    """(cluster ids [N] int32, shares [count]) of uint8 images [N, H, W, C] grouped by k-means.

    The images are scaled to at most `CLUSTER_SIDE` pixels, reduced to
    `CLUSTER_COMPONENTS` principal components and clustered by scikit-learn's
    KMeans (k-means++ start, three restarts). The labels of the data are not
    read: this is how a self-conditioned GAN (Liu et al., 2020) finds its
    classes.
    """
    from sklearn import cluster, decomposition

    images = np.asarray(images)
    if count < 2 or count > len(images):
        raise ValueError(f"Cannot group {len(images)} images into {count} clusters; give 2 to {len(images)}.")
    side = min(images.shape[1], CLUSTER_SIDE)
    features = tf.image.resize(tf.cast(images, tf.float32) / 255.0, (side, side), method="area")
    features = np.asarray(features).reshape(len(images), -1)
    components = min(CLUSTER_COMPONENTS, features.shape[1], len(images))
    features = decomposition.PCA(components, random_state=seed).fit_transform(features)
    ids = cluster.KMeans(count, n_init=3, random_state=seed).fit_predict(features).astype(np.int32)
    return ids, np.bincount(ids, minlength=count) / len(ids)


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
    pseudo_classes=0,
):
    """`GanData` of `data`'s `split`: images (`labels`: with their labels; `pseudo_classes` K > 0: with their
    cluster among K found by `pseudo_labels`, and the clusters' shares as `class_prior`)."""
    source = sources.load(data, split=split, channels=channels, tfds_data_dir=tfds_data_dir)
    if source.num_examples < batch_size:
        raise ValueError(
            f"{source.description}: {source.num_examples} images, fewer than one batch of {batch_size}."
        )
    prepared = sources.resized_cache(source, image_size, channels)
    class_names, class_prior = source.class_names, ()
    if pseudo_classes:
        images = np.concatenate([np.asarray(batch) for batch in prepared.map(lambda image, label: image).batch(4096)])
        ids, shares = pseudo_labels(images, pseudo_classes, seed)
        prepared = tf.data.Dataset.from_tensor_slices((images, ids))
        class_names, class_prior, labels = tuple(f"cluster {k}" for k in range(pseudo_classes)), tuple(shares), True
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

    return GanData(make_dataset, source.num_examples, class_names, source.description, class_prior)
