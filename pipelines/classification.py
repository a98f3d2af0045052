"""Labelled image batches for classifiers: (float32 image, int32 label)."""

import dataclasses
import pathlib
import re
import typing

import keras
import numpy as np
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
    dataset = sources.resized_cache(split, image_size, channels)
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


# ---------------------------------------------------------------- pneumonia (Kermany chest X-rays)
#
# Layout `<root>/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg`. Images are read as
# grayscale (RGB and RGBA files are converted; DICOM files as `pipelines.dicom`
# maps them, VOI window applied) and resized to a square; the
# model rescales them, so batches hold float32 grey levels in [0, 255] and an
# export takes raw uint8 images. The validation split is carved from `train/`
# by patient (the original `val/` holds 16 images); `test/` is left untouched.
# Files that cannot be decoded (non-image bytes, truncated JPEGs) are skipped
# before any pipeline is built, with their count and names logged, so an epoch
# never fails halfway.

PNEUMONIA_CLASSES = ("NORMAL", "PNEUMONIA")
_PERSON_PATTERN = re.compile(r"(person\d+)_", re.IGNORECASE)
_IM_PATTERN = re.compile(r"IM-(\d+)", re.IGNORECASE)


def patient_id(path):
    """The patient group of a Kermany file name.

    `person1234_bacteria_1.jpeg` -> `person1234`; `IM-0115-0001.jpeg` and
    `NORMAL2-IM-0115-0001.jpeg` -> `IM-0115` (the two NORMAL series are
    merged on purpose: a shared number can only make a group larger, never
    leak a patient across the split). Other names are their own group.
    """
    name = pathlib.Path(path).name
    person = _PERSON_PATTERN.search(name)
    if person:
        return person.group(1).lower()
    image_number = _IM_PATTERN.search(name)
    if image_number:
        return f"IM-{image_number.group(1)}"
    return pathlib.Path(path).stem


def split_by_patient(paths, labels, validation_fraction=0.1, seed=0):
    """(train_index, validation_index): stratified by label, grouped by `patient_id`.

    Deterministic for a given seed; no patient is on both sides.
    """
    from sklearn import model_selection

    if not 0.0 < validation_fraction < 0.5:
        raise ValueError(f"--validation-fraction must be in (0, 0.5), got {validation_fraction}.")
    groups = np.asarray([patient_id(path) for path in paths])
    folds = max(2, int(round(1.0 / validation_fraction)))
    if len(set(groups)) < folds:
        raise ValueError(
            f"{len(set(groups))} patients are too few for a {validation_fraction:.0%} validation split; "
            "add images or raise --validation-fraction."
        )
    splitter = model_selection.StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    train_index, validation_index = next(splitter.split(np.zeros(len(labels)), labels, groups))
    return np.sort(train_index), np.sort(validation_index)


def class_weights(labels, num_classes=2):
    """{class: total / (num_classes * count)}, so every class weighs the same in the loss."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    if np.any(counts == 0):
        raise ValueError(f"Class counts {counts.tolist()}: every class needs training images.")
    return {index: float(counts.sum() / (num_classes * count)) for index, count in enumerate(counts)}


def list_pneumonia_split(root, split):
    """(paths, labels, skipped) of one Kaggle split; unreadable files are skipped and logged."""
    paths, labels, _ = sources.list_class_folder(root, split, class_names=PNEUMONIA_CLASSES, check=False)
    readable, skipped = images.readable_images(paths)
    if skipped:
        images.logger.warning(
            "%s/%s: skipped %d unreadable file(s): %s",
            root, split, len(skipped), ", ".join(pathlib.Path(path).name for path, _ in skipped),
        )
    keep = np.isin(paths, readable)
    labels = labels[keep]
    for index, name in enumerate(PNEUMONIA_CLASSES):
        if not np.any(labels == index):
            raise ValueError(f"{pathlib.Path(root) / split / name}: no readable images of class {name!r}.")
    return list(np.asarray(paths)[keep]), labels, skipped


def pneumonia_file_splits(root, validation_fraction=0.1, seed=0, splits=("train", "validation", "test")):
    """{split: (paths, labels)} for train, the carved validation and test, and the skipped files."""
    train_paths, train_labels, skipped = list_pneumonia_split(root, "train")
    train_index, validation_index = split_by_patient(train_paths, train_labels, validation_fraction, seed)
    train_paths = np.asarray(train_paths)
    result = {
        "train": (list(train_paths[train_index]), train_labels[train_index]),
        "validation": (list(train_paths[validation_index]), train_labels[validation_index]),
    }
    if "test" in splits:
        test_paths, test_labels, test_skipped = list_pneumonia_split(root, "test")
        result["test"] = (test_paths, test_labels)
        skipped += test_skipped
    return {name: result[name] for name in splits}, skipped


def grayscale_dataset(paths, labels, image_size):
    """Cached (uint8 [S, S, 1], float32 label) examples, filled by one full pass."""

    def prepare(path, label):
        image = images.convert_channels(images.decode_path(path, 3), 1)
        image = images.resize(image, image_size)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), label

    dataset = tf.data.Dataset.from_tensor_slices((list(paths), np.asarray(labels, np.float32)))
    cached = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).cache()
    return images.fill_cache(cached, paths, "the chest X-rays")


def pneumonia_split_batches(root, splits, image_size, batch_size, validation_fraction=0.1, seed=0):
    """({split: batched (float32 image, label [B, 1]) dataset in file order}, skipped files) of a Kermany folder.

    The validation split is the one `build_pneumonia_data` carves from
    train/ with the same `validation_fraction` and `seed`.
    """
    files, skipped = pneumonia_file_splits(root, validation_fraction, seed, splits=splits)
    batches = {name: batch_examples(grayscale_dataset(paths, labels, image_size), batch_size)
               for name, (paths, labels) in files.items()}
    return batches, skipped


def pneumonia_test_folder(root, image_size, batch_size):
    """(batched (float32 image, label [B, 1]) dataset in file order, count, skipped files) of a labelled folder.

    `root/test/{NORMAL,PNEUMONIA}/` when `root` has split folders (a Kermany
    layout: only test/ is read), else the flat class folders `root/{NORMAL,PNEUMONIA}/`.
    """
    root = pathlib.Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: folder not found; expected {root}/test/{{NORMAL,PNEUMONIA}}/ "
                         f"or {root}/{{NORMAL,PNEUMONIA}}/.")
    split = "test" if any((root / name).is_dir() for name in sources.SPLIT_FOLDERS) else "train"
    paths, labels, skipped = list_pneumonia_split(root, split)
    return batch_examples(grayscale_dataset(paths, labels, image_size), batch_size), len(paths), skipped


class RandomGamma(keras.layers.Layer):
    """Grey levels in [0, 255] through a random gamma curve per image, 255 * (x / 255) ** gamma.

    Gamma is drawn log-uniformly between 1 / (1 + factor) and 1 + factor.
    Unlike brightness and contrast, which per-image standardization undoes,
    a gamma curve moves the dark levels against the bright ones: a film's
    background lifts or sinks while the lungs keep their place.
    """

    def __init__(self, factor, seed=None, **kwargs):
        super().__init__(**kwargs)
        if factor < 0:
            raise ValueError(f"--gamma must be 0 or more, got {factor}.")
        self.factor = factor
        self.seed = seed

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "seed": self.seed}

    def call(self, images, training=True):
        if not training or not self.factor:
            return images
        bound = float(np.log1p(self.factor))
        log_gamma = tf.random.uniform([tf.shape(images)[0], 1, 1, 1], -bound, bound, seed=self.seed)
        levels = tf.clip_by_value(tf.cast(images, tf.float32) / 255.0, 0.0, 1.0)
        return 255.0 * tf.pow(levels, tf.exp(log_gamma))


def xray_augmentation(seed, rotation=0.03, zoom=0.1, shift=0.05, brightness=0.1, contrast=0.1, hflip=False,
                      aspect_zoom=False, blur=0.0, gamma=0.0):
    """Keras preprocessing layers for float grey levels in [0, 255], seeded.

    `rotation` is a fraction of a full turn (0.03: about ±11°). With
    `aspect_zoom` the width is zoomed independently of the height, so the
    framing of the chest varies (films are collimated differently). No horizontal
    flip unless `hflip`: a chest X-ray is not left-right symmetric (the heart
    sits left, and radiographs carry side markers), so a flipped image is not
    a plausible patient.

    With `blur` > 0, about half the images are blurred by a Gaussian of
    sigma up to `blur` pixels (one sigma per batch), so that a film's
    sharpness, which differs between scanners and between Kermany's train/
    and test/ NORMAL films, is not taken for the haze of an opacity.
    `gamma` > 0 adds `RandomGamma`, which varies the background level
    against the lungs.
    """
    if not 0.0 <= blur <= 1.0:
        raise ValueError(f"--blur must be in [0, 1] (pixels of sigma), got {blur}.")
    layers = [
        keras.layers.RandomRotation(rotation, fill_mode="constant", seed=seed),
        keras.layers.RandomZoom(zoom, zoom if aspect_zoom else None, fill_mode="constant", seed=seed + 1),
        keras.layers.RandomTranslation(shift, shift, fill_mode="constant", seed=seed + 2),
        keras.layers.RandomBrightness(brightness, value_range=(0.0, 255.0), seed=seed + 3),
        keras.layers.RandomContrast(contrast, value_range=(0.0, 255.0), seed=seed + 4),
    ]
    if gamma:
        layers.append(RandomGamma(gamma, seed=seed + 7))
    if blur:
        layers.append(keras.layers.RandomGaussianBlur(
            factor=1.0, kernel_size=5, sigma=(0.0, blur), value_range=(0.0, 255.0), seed=seed + 6
        ))
    if hflip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed + 5))
    return keras.Sequential(layers, name="xray_augmentation")


@dataclasses.dataclass
class PneumoniaData:
    """What the runner needs (`make_dataset`, `num_examples`, `validation_dataset`) and the split facts."""

    make_dataset: typing.Callable
    validation_dataset: tf.data.Dataset
    num_examples: int
    counts: dict
    class_weights: dict
    skipped: list


def mixup(images, labels, weights, alpha, seed=None):
    """Mixup (Zhang et al., 2018) of a batch with itself reversed: each example becomes
    lam * its own + (1 - lam) * its mirror partner's image, label and weight, lam ~ Beta(alpha, alpha).

    Labels and weights are float [B, 1] and [B]; the partner of example i is
    example B - 1 - i, a random one since the batch is shuffled.
    """
    if alpha <= 0:
        return images, labels, weights
    first = tf.random.gamma([tf.shape(images)[0]], alpha, seed=seed)
    second = tf.random.gamma([tf.shape(images)[0]], alpha, seed=None if seed is None else seed + 1)
    share = first / tf.maximum(first + second, 1e-12)

    def mixed(values):
        weight = tf.reshape(tf.cast(share, values.dtype), [-1] + [1] * (len(values.shape) - 1))
        return weight * values + (1.0 - weight) * tf.reverse(values, axis=[0])

    return mixed(images), mixed(labels), mixed(weights)


def class_counts(labels):
    labels = np.asarray(labels, dtype=np.int64)
    return {name: int(np.sum(labels == index)) for index, name in enumerate(PNEUMONIA_CLASSES)}


def build_pneumonia_data(
    root, image_size, batch_size, validation_fraction=0.1, seed=0, augment=True, hflip=False, shuffle_buffer=10_000,
    augment_ranges=None, mixup_alpha=0.0,
):
    """Training batches (image, label, class weight) and validation batches (image, label).

    Images are float32 grey levels [B, S, S, 1] in [0, 255], labels float32
    [B, 1] (1 = PNEUMONIA). `make_dataset(epoch)` is endless and a function of
    (seed, epoch): shuffling and augmentation are seeded per epoch. `augment_ranges`
    overrides `xray_augmentation`'s ranges (rotation, zoom, shift, brightness, contrast).
    `mixup_alpha` > 0 mixes each training batch after augmentation (`mixup`): labels become soft.
    """
    if mixup_alpha < 0:
        raise ValueError(f"--mixup must be 0 (off) or more, got {mixup_alpha}.")
    splits, skipped = pneumonia_file_splits(root, validation_fraction, seed, splits=("train", "validation"))
    (train_paths, train_labels), (validation_paths, validation_labels) = splits["train"], splits["validation"]
    if len(train_paths) < batch_size:
        raise ValueError(f"{root}: {len(train_paths)} training images, fewer than one batch of {batch_size}.")
    weights = class_weights(train_labels)
    weight_table = tf.constant([weights[0], weights[1]], tf.float32)
    train = grayscale_dataset(train_paths, train_labels, image_size)
    validation = grayscale_dataset(validation_paths, validation_labels, image_size)

    def make_dataset(epoch):
        ranges = augment_ranges or {}
        augmentation = xray_augmentation(seed * 1000 + epoch, hflip=hflip, **ranges) if augment else None

        @tf.autograph.experimental.do_not_convert
        def finish(image, label):
            image = tf.cast(image, tf.float32)
            if augmentation is not None:
                image = tf.clip_by_value(augmentation(image, training=True), 0.0, 255.0)
            weight = tf.gather(weight_table, tf.cast(label, tf.int32))
            return mixup(image, tf.cast(label[:, None], tf.float32), weight, mixup_alpha, seed * 1000 + epoch + 11)

        return (
            train.shuffle(min(shuffle_buffer, len(train_paths)), seed=seed + epoch, reshuffle_each_iteration=True)
            .repeat()
            .batch(batch_size, drop_remainder=True)
            .map(finish)
            .prefetch(tf.data.AUTOTUNE)
        )

    counts = {"train": class_counts(train_labels), "validation": class_counts(validation_labels)}
    return PneumoniaData(
        make_dataset, batch_examples(validation, batch_size), len(train_paths), counts, weights, skipped
    )


def batch_examples(dataset, batch_size):
    """(float32 image, label [B, 1]) batches of a `grayscale_dataset`, in file order."""
    return dataset.batch(batch_size).map(
        lambda image, label: (tf.cast(image, tf.float32), label[:, None]), num_parallel_calls=tf.data.AUTOTUNE
    ).prefetch(tf.data.AUTOTUNE)
