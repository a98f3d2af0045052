"""Paired low-quality -> high-quality grayscale images for enhancement (Pix2Pix).

Two layouts:

- `<root>/input/` and `<root>/target/` with matching file names (real pairs);
- a folder of clean images (e.g. mini-MIAS) plus a `--degrade` recipe
  (see `pipelines.augment`) that makes each low-quality input on the fly.

Images are grayscale float32 in [0, 1]: 8-bit files are divided by 255, 16-bit
PNGs by 65535, so the dynamic range of 16-bit data is kept. DICOM files are
normalised by the true range of their stored values without the VOI window
(see `pipelines.dicom`), the same mapping `scripts/enhance.py` inverts when it
writes an enhanced DICOM. Colour files are
converted to grayscale (luma) with a warning. The held-out split is by image,
and for mini-MIAS names (`mdbNNN`) by film pair, so that the left and right
breast of one woman (mdb001/mdb002, ...) never fall on both sides.

Training examples are random `image_size` crops with random flips; the model
sees [-1, 1] values. Each crop is degraded with a seed derived from
(seed, epoch, position), so every epoch is reproducible.
"""

import dataclasses
import logging
import pathlib
import re

import numpy as np
import tensorflow as tf

from pipelines import augment, dicom, images

logger = logging.getLogger(__name__)

BREAST_THRESHOLD = 0.04
_MIAS_NAME = re.compile(r"^mdb(\d{3})$")


@dataclasses.dataclass
class PairedData:
    """`make_dataset(epoch)`: endless (input, target) crops; `validation_dataset`: held-out crops."""

    make_dataset: callable
    validation_dataset: tf.data.Dataset
    num_examples: int
    train_files: list
    test_files: list
    recipe: str


@dataclasses.dataclass
class PairedFiles:
    inputs: list  # None for clean-only folders: inputs are made by degradation
    targets: list


def to_model_range(image):
    return image * 2.0 - 1.0


def from_model_range(image):
    return (image + 1.0) / 2.0


def breast_mask(image, threshold=BREAST_THRESHOLD):
    """Foreground of a mammogram in [0, 1]: a blurred image above `threshold`.

    The film background of mini-MIAS is near 0 and breast tissue is brighter;
    blurring first (sigma 2 px) keeps isolated noisy pixels out of the mask.
    """
    return tf.cast(augment.gaussian_blur(image, 2.0) > threshold, tf.float32)


def _check_grayscale(path):
    width, height, mode = images.image_header(path)
    if mode not in ("L", "I;16", "I;16B", "I", "1", "P"):
        logger.warning("%s: %s image where grayscale is expected; converted to grayscale (luma).", path, mode)
    return width, height


def list_paired_files(root, recipe=None):
    """The files of either layout, checked: matching names, equal sizes, readable headers."""
    root = pathlib.Path(root)
    if (root / "input").is_dir() or (root / "target").is_dir():
        if not ((root / "input").is_dir() and (root / "target").is_dir()):
            raise ValueError(f"{root}: a paired folder needs both input/ and target/ subfolders.")
        inputs = {p.name: p for p in images.list_images(root / "input")}
        targets = {p.name: p for p in images.list_images(root / "target")}
        for name in sorted(set(inputs) ^ set(targets)):
            side, other = ("input", "target") if name in inputs else ("target", "input")
            raise ValueError(f"{root / side / name}: no partner file {root / other / name}.")
        names = sorted(targets)
        for name in names:
            if _check_grayscale(inputs[name]) != _check_grayscale(targets[name]):
                raise ValueError(
                    f"{inputs[name]} and {targets[name]}: the input and target sizes differ "
                    f"({images.image_header(inputs[name])[:2]} vs {images.image_header(targets[name])[:2]})."
                )
        if not names:
            raise ValueError(f"{root}: input/ and target/ hold no images.")
        return PairedFiles([inputs[n] for n in names], [targets[n] for n in names])
    files = images.list_images(root)
    if not files:
        raise ValueError(f"{root}: no images (expected input/ + target/, or a folder of clean images).")
    if not recipe:
        raise ValueError(f"{root}: a folder of clean images needs a --degrade recipe (e.g. noise:0.05).")
    for path in files:
        _check_grayscale(path)
    return PairedFiles(None, files)


def group_of(path):
    """mini-MIAS films come in left/right pairs (mdb001+mdb002); other files stand alone."""
    match = _MIAS_NAME.match(pathlib.Path(path).stem)
    return f"mias-{(int(match.group(1)) + 1) // 2}" if match else pathlib.Path(path).stem


def split_indices(paths, test_fraction, seed):
    """Deterministic held-out split by group; returns (train, test) index arrays."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}.")
    groups = sorted({group_of(p) for p in paths})
    rng = np.random.default_rng(seed)
    test_groups = set(rng.permutation(groups)[: max(1, int(round(len(groups) * test_fraction)))])
    test = np.array([i for i, p in enumerate(paths) if group_of(p) in test_groups], dtype=np.int64)
    train = np.array([i for i, p in enumerate(paths) if group_of(p) not in test_groups], dtype=np.int64)
    if len(train) == 0:
        raise ValueError("The held-out split left no training images; add images or lower test_fraction.")
    return train, test


def _read_with_python(path):
    path = path.decode() if isinstance(path, bytes) else str(path)
    if dicom.is_dicom_path(path):
        return dicom.read_dicom(path, voi=False).unit
    image = images.read_image(path, channels=1)
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    return (image.astype(np.float32) / scale).astype(np.float32)


def _decode_grayscale_graph(path):
    def read_with_python():
        image = tf.numpy_function(_read_with_python, [path], tf.float32, stateful=False)
        image.set_shape([None, None, 1])
        return image

    def decode():
        contents = tf.io.read_file(path)
        is_png = tf.strings.regex_full_match(tf.strings.lower(path), r".*\.png")
        return tf.cond(
            is_png,
            lambda: tf.cast(tf.io.decode_png(contents, channels=1, dtype=tf.uint16), tf.float32) / 65535.0,
            lambda: tf.cast(images.decode_image(contents, 1), tf.float32) / 255.0,
        )

    by_python = tf.strings.regex_full_match(tf.strings.lower(path), r".*\.(dcm|dicom|pgm)")
    image = tf.cond(by_python, read_with_python, decode)
    image.set_shape([None, None, 1])
    return image


def decode_grayscale(path):
    """File path (tensor or str) -> float32 [H, W, 1] in [0, 1] (PNG 8/16-bit, JPEG, GIF, BMP, PGM, DICOM).

    Called eagerly, a file that cannot be decoded raises a `ValueError` naming
    it; inside a `tf.data` map the error surfaces when the dataset is iterated
    (`load_grayscale_dataset` turns it into the same `ValueError`).
    """
    if not tf.executing_eagerly():
        return _decode_grayscale_graph(path)
    name = path.numpy().decode() if isinstance(path, tf.Tensor) else str(path)
    if dicom.is_dicom_path(name) or name.lower().endswith(".pgm"):
        return tf.constant(_read_with_python(name))
    try:
        return _decode_grayscale_graph(tf.constant(name))
    except tf.errors.OpError as error:
        raise images.decode_error(name, error) from None


def load_grayscale_dataset(paths):
    """Decoded images of `paths`, cached in memory by one full pass; PGM and DICOM files go through Python."""
    dataset = tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
    cached = dataset.map(_decode_grayscale_graph, num_parallel_calls=tf.data.AUTOTUNE).cache()
    return images.fill_cache(cached, paths, "the paired images")


def make_example(example, recipe, image_size, seed, training, foreground_crops=1):
    """(input, target) in [-1, 1] from `{"target"[, "input"]}`: a crop (random when
    training: the most foreground of `foreground_crops` random crops) and, for
    clean-only data, the degradation."""
    target, input_image = example["target"], example.get("input")
    if training:
        crop_seed, flip_seed, degrade_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    else:
        degrade_seed = seed
    if input_image is None:
        if training:
            target = augment.foreground_crop(target, image_size, crop_seed, foreground_crops, BREAST_THRESHOLD)
            target = augment.random_flip_pair(target, target, flip_seed)[0]
        else:
            target = tf.image.resize_with_crop_or_pad(target, image_size, image_size)
        input_image = augment.degrade(target, recipe, degrade_seed)
    elif training:
        crop = augment.foreground_crop(tf.concat([input_image, target], axis=-1), image_size, crop_seed,
                                       foreground_crops, BREAST_THRESHOLD)
        input_image, target = crop[..., :1], crop[..., 1:]
        input_image, target = augment.random_flip_pair(input_image, target, flip_seed)
    else:
        input_image = tf.image.resize_with_crop_or_pad(input_image, image_size, image_size)
        target = tf.image.resize_with_crop_or_pad(target, image_size, image_size)
    return to_model_range(input_image), to_model_range(target)


def build_paired_data(data, image_size=256, batch_size=4, recipe=None, seed=0, test_fraction=0.15,
                      foreground_crops=1):
    files = list_paired_files(data, recipe)
    train_index, test_index = split_indices(files.targets, test_fraction, seed)
    recipe_steps = augment.parse_recipe(recipe) if files.inputs is None else None

    def examples(indices):
        targets = load_grayscale_dataset([files.targets[i] for i in indices])
        if files.inputs is None:
            return targets.map(lambda target: {"target": target})
        inputs = load_grayscale_dataset([files.inputs[i] for i in indices])
        return tf.data.Dataset.zip(targets, inputs).map(lambda target, source: {"target": target, "input": source})

    train_examples = examples(train_index)
    smallest = min(images.image_header(files.targets[i])[:2] for i in train_index)
    if min(smallest) < image_size:
        raise ValueError(f"{data}: images as small as {smallest} cannot give {image_size}-pixel crops.")

    def make_dataset(epoch):
        def pair(position, example):
            example_seed = tf.random.experimental.stateless_fold_in(
                tf.constant([seed, epoch], tf.int32), tf.cast(position, tf.int32)
            )
            return make_example(example, recipe_steps, image_size, example_seed, training=True,
                                foreground_crops=foreground_crops)

        return (
            train_examples.shuffle(len(train_index), seed=seed + epoch)
            .repeat()
            .enumerate()
            .map(pair, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
        )

    def validation_pair(position, example):
        example_seed = tf.stack([tf.constant(seed + 1_000_003, tf.int32), tf.cast(position, tf.int32)])
        return make_example(example, recipe_steps, image_size, example_seed, training=False)

    validation = examples(test_index).enumerate().map(validation_pair).batch(batch_size)
    return PairedData(
        make_dataset,
        validation,
        len(train_index),
        [files.targets[i] for i in train_index],
        [files.targets[i] for i in test_index],
        recipe or "",
    )
