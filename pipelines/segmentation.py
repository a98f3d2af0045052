"""Image/mask pairs for binary segmentation: Carvana and ISBI membrane layouts.

Layouts (recognised from the folders present under the root):

- Carvana: `<root>/train/<car>_<angle>.jpg` and `<root>/train_masks/<car>_<angle>_mask.gif`
  (or `_mask.png`); the group of an example is its car, so the validation split
  keeps all angles of a car on one side.
- Pairs (the ISBI 2012 membrane data): `<root>/image/<name>.png` and
  `<root>/label/<name>.png`, paired by name without extension; every example
  is its own group.

Every pair is checked before a pipeline is built: both files exist, are valid
images of the same size, and the mask can be binarised (`check_mask_values`). Masks are binarised:
masks whose largest value is 1 (0/1 palette indices) as `mask > 0`, others
(0/255, palette GIFs expanded to RGB) as `mask >= 128`, on the largest of the
colour channels. Images come out as float32 in [0, 1], masks as float32 0/1
with one channel.
"""

import dataclasses
import math
import pathlib

import keras
import numpy as np
import PIL.Image
import tensorflow as tf

from pipelines import images

GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


@dataclasses.dataclass(frozen=True)
class Pair:
    example_id: str
    group: str
    image_path: pathlib.Path
    mask_path: pathlib.Path


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Random changes applied alike to an image and its mask (shift and zoom as fractions of the size)."""

    horizontal_flip: bool = True
    max_shift: float = 0.05
    max_zoom: float = 0.1
    max_brightness: float = 0.1
    elastic_sigma: float = 0.0
    elastic_grid: int = 3


@dataclasses.dataclass
class SegmentationData:
    """What a segmentation trainer needs from its data.

    `make_dataset(epoch)` returns endless, shuffled, augmented batches of
    (image, mask); the same epoch always gives the same batches.
    `validation_dataset` is finite, batched and not augmented (None when the
    validation fraction is 0).
    """

    make_dataset: callable
    validation_dataset: tf.data.Dataset
    num_examples: int
    num_validation: int
    channels: int
    image_size: tuple
    train_ids: tuple
    validation_ids: tuple
    description: str


def _ids_by_stem(paths, suffix=""):
    by_id = {}
    for path in paths:
        if not path.stem.endswith(suffix):
            raise ValueError(f"{path}: mask names must end with '{suffix}' before the extension.")
        example_id = path.stem[: len(path.stem) - len(suffix)]
        if example_id in by_id:
            raise ValueError(f"{path} and {by_id[example_id]}: two files for the same example {example_id!r}.")
        by_id[example_id] = path
    return by_id


def _pair_folders(image_folder, mask_folder, mask_suffix, group_of):
    image_paths = images.list_images(image_folder)
    mask_paths = images.list_images(mask_folder)
    for folder, paths in ((image_folder, image_paths), (mask_folder, mask_paths)):
        if not paths:
            raise ValueError(f"{folder}: no image files found.")
    image_by_id = _ids_by_stem(image_paths)
    mask_by_id = _ids_by_stem(mask_paths, mask_suffix)
    for example_id, path in image_by_id.items():
        if example_id not in mask_by_id:
            raise ValueError(f"{path}: no mask for this image; expected {mask_folder}/{example_id}{mask_suffix}.<ext>.")
    for example_id, path in mask_by_id.items():
        if example_id not in image_by_id:
            raise ValueError(f"{path}: mask without an image; expected {image_folder}/{example_id}.<ext>.")
    return [
        Pair(example_id, group_of(example_id), image_by_id[example_id], mask_by_id[example_id])
        for example_id in sorted(image_by_id)
    ]


def _car_id(example_id):
    return example_id.rsplit("_", 1)[0]


def find_pairs(root):
    """Pairs of a Carvana or image/label folder, sorted by example id; see the module docstring."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: folder not found.")
    if (root / "train").is_dir() and (root / "train_masks").is_dir():
        return _pair_folders(root / "train", root / "train_masks", "_mask", _car_id)
    if (root / "image").is_dir() and (root / "label").is_dir():
        return _pair_folders(root / "image", root / "label", "", lambda example_id: example_id)
    raise ValueError(
        f"{root}: not a segmentation folder; expected train/ + train_masks/ (Carvana) "
        "or image/ + label/ (pairs with matching names)."
    )


def _image_size_and_mode(path):
    try:
        with PIL.Image.open(path) as image:
            return image.size, image.mode
    except Exception as error:
        raise ValueError(f"{path}: cannot be read as an image ({error}).") from error


def mask_values(path):
    """The distinct values of a mask as the pipeline sees it (palette expanded, largest colour channel)."""
    try:
        with PIL.Image.open(path) as image:
            mode, pixels = image.mode, np.asarray(image)
            palette = image.getpalette() if mode == "P" else None
    except Exception as error:
        raise ValueError(f"{path}: cannot be read as an image ({error}).") from error
    if mode in ("LA", "RGBA", "PA"):
        pixels = pixels[..., :-1]
    if pixels.ndim == 3:
        pixels = pixels.max(axis=-1)
    if pixels.dtype == np.uint8 or pixels.dtype == bool:
        values = np.flatnonzero(np.bincount(pixels.ravel().astype(np.uint8), minlength=256))
    else:
        values = np.unique(pixels)
    if palette is not None:
        colours = np.asarray(palette + [0] * (768 - len(palette)), dtype=np.int64).reshape(-1, 3).max(axis=-1)
        values = np.unique(colours[values])
    return values


def check_mask_values(mask_paths):
    """Refuses masks that binarisation would empty; warns about masks it has to threshold.

    0/1 and 0/255 masks are taken as they are. A mask with other values and a
    largest value of 128 or more (anti-aliased edges, JPEG noise) is binarised
    at 128, with a warning that counts them. A mask whose largest value is
    between 2 and 127 (a class-index mask, for instance) would become all
    background, so it is refused with a `ValueError` naming it.
    """
    thresholded = []
    for path in mask_paths:
        values = mask_values(path)
        if set(values.tolist()) <= {0, 1, 255}:
            continue
        largest = int(values.max())
        if largest < 128:
            shown = ", ".join(str(value) for value in values[:8])
            raise ValueError(
                f"{path}: mask values {{{shown}}} (largest {largest}); binarised at 128 it would be all background. "
                "Expected binary masks, 0/1 or 0/255 (convert class-index masks to one class first)."
            )
        thresholded.append(pathlib.Path(path).name)
    if thresholded:
        images.logger.warning(
            "%d mask(s) hold values other than 0, 1 and 255 (e.g. %s); binarised at 128.",
            len(thresholded), ", ".join(thresholded[:5]),
        )
    return thresholded


def check_sizes(pairs):
    """Raises `ValueError` naming the mask whose size differs from its image's, or whose values
    cannot be binarised; returns the image modes."""
    modes = []
    for pair in pairs:
        image_size, image_mode = _image_size_and_mode(pair.image_path)
        mask_size, _ = _image_size_and_mode(pair.mask_path)
        if image_size != mask_size:
            raise ValueError(
                f"{pair.mask_path}: mask is {mask_size[0]}x{mask_size[1]} (width x height) but its image "
                f"{pair.image_path.name} is {image_size[0]}x{image_size[1]}."
            )
        modes.append(image_mode)
    check_mask_values([pair.mask_path for pair in pairs])
    return modes


def split_by_group(pairs, validation_fraction, seed):
    """(train, validation) pairs; a seeded shuffle of the groups puts every group wholly on one side."""
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}.")
    groups = sorted({pair.group for pair in pairs})
    if validation_fraction == 0:
        return list(pairs), []
    if len(groups) < 2:
        raise ValueError(f"A validation split needs at least two groups (cars); found {len(groups)}.")
    count = min(len(groups) - 1, max(1, math.ceil(validation_fraction * len(groups))))
    shuffled = np.random.default_rng(seed).permutation(len(groups))
    validation_groups = {groups[index] for index in shuffled[:count]}
    train = [pair for pair in pairs if pair.group not in validation_groups]
    validation = [pair for pair in pairs if pair.group in validation_groups]
    return train, validation


def binarize_mask(mask):
    """uint8 mask [H, W, C] -> uint8 0/1 [H, W, 1] (see the module docstring for the rule)."""
    mask = tf.reduce_max(mask, axis=-1, keepdims=True)
    threshold = tf.where(tf.reduce_max(mask) <= 1, tf.constant(1, mask.dtype), tf.constant(128, mask.dtype))
    return tf.cast(mask >= threshold, tf.uint8)


def _decode_pair(image_path, mask_path, channels, image_size):
    image = images.decode_image(tf.io.read_file(image_path), channels)
    mask = images.decode_image(tf.io.read_file(mask_path), 3)
    image = images.resize(image, image_size)
    mask = images.resize(binarize_mask(mask), image_size, method="nearest")
    image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
    return image, tf.cast(mask, tf.uint8)


def cache_pairs(pairs, channels, image_size):
    """Decoded, resized uint8 (image, mask) examples, cached in memory by one full pass."""
    dataset = tf.data.Dataset.from_tensor_slices(
        ([str(pair.image_path) for pair in pairs], [str(pair.mask_path) for pair in pairs])
    )
    cached = dataset.map(
        lambda image_path, mask_path: _decode_pair(image_path, mask_path, channels, image_size),
        num_parallel_calls=tf.data.AUTOTUNE,
    ).cache()
    paths = [path for pair in pairs for path in (pair.image_path, pair.mask_path)]
    images.fill_cache(cached, paths, "the image/mask pairs")
    return cached


def to_unit_range(image, mask):
    return tf.cast(image, tf.float32) / 255.0, tf.cast(mask, tf.float32)


def _shift_zoom_transform(seed, height, width, augmentation):
    """Projective transform (output -> input coordinates) for a random zoom about the centre and shift."""
    zoom_seed, shift_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    zoom = tf.random.stateless_uniform(
        [], zoom_seed, 1.0 - augmentation.max_zoom, 1.0 + augmentation.max_zoom
    )
    shift = tf.random.stateless_uniform([2], shift_seed, -augmentation.max_shift, augmentation.max_shift)
    center_x, center_y = (width - 1) / 2.0, (height - 1) / 2.0
    offset_x = center_x - center_x / zoom - shift[0] * width
    offset_y = center_y - center_y / zoom - shift[1] * height
    return tf.stack([1.0 / zoom, 0.0, offset_x, 0.0, 1.0 / zoom, offset_y, 0.0, 0.0])[None]


def _transform(image, transform, interpolation):
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None],
        transforms=transform,
        output_shape=tf.shape(image)[:2],
        fill_value=0.0,
        interpolation=interpolation,
        fill_mode="NEAREST",
    )[0]


def elastic_deformation(image, mask, seed, sigma, grid=3):
    """The U-Net paper's elastic deformation, alike for an image (bilinear) and its mask (nearest).

    Random displacement vectors, normal with standard deviation `sigma`
    pixels, on a coarse `grid` x `grid` lattice are interpolated (bicubic) to
    a smooth per-pixel field that resamples both (Ronneberger et al. 2015,
    section 3.1: 3x3 grid, sigma 10 pixels).
    """
    height, width = image.shape[0], image.shape[1]
    coarse = tf.random.stateless_normal([1, grid, grid, 2], seed, stddev=sigma)
    field = tf.image.resize(coarse, [height, width], method="bicubic")[0]
    rows, columns = tf.meshgrid(tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij")
    coordinates = [rows + field[..., 0], columns + field[..., 1]]

    def warp(tensor, order):
        channels = [
            keras.ops.image.map_coordinates(tensor[..., c], coordinates, order=order, fill_mode="reflect")
            for c in range(tensor.shape[-1])
        ]
        return tf.stack(channels, axis=-1)

    return warp(image, 1), warp(mask, 0)


def augment(image, mask, seed, augmentation):
    """Same random flip, zoom, shift (and elastic deformation) for float image [0, 1] and mask;
    brightness on the image only."""
    flip_seed, transform_seed, brightness_seed, elastic_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 4)
    )
    if augmentation.elastic_sigma:
        image, mask = elastic_deformation(image, mask, elastic_seed, augmentation.elastic_sigma,
                                          augmentation.elastic_grid)
    if augmentation.horizontal_flip:
        flip = tf.random.stateless_uniform([], flip_seed) < 0.5
        image = tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)
        mask = tf.cond(flip, lambda: tf.image.flip_left_right(mask), lambda: mask)
    if augmentation.max_shift or augmentation.max_zoom:
        height, width = image.shape[0], image.shape[1]
        transform = _shift_zoom_transform(transform_seed, height, width, augmentation)
        image = _transform(image, transform, "BILINEAR")
        mask = _transform(mask, transform, "NEAREST")
    if augmentation.max_brightness:
        image = tf.image.stateless_random_brightness(image, augmentation.max_brightness, brightness_seed)
    return tf.clip_by_value(image, 0.0, 1.0), mask


def _infer_channels(modes):
    return 1 if all(mode in GRAY_MODES for mode in modes) else 3


def build_segmentation_data(
    data,
    image_size=(160, 240),
    batch_size=8,
    validation_fraction=0.2,
    seed=0,
    channels=None,
    augmentation=Augmentation(),
):
    """Train and validation datasets of a segmentation folder (see `SegmentationData`).

    Args:
        data: a Carvana or image/label folder (see the module docstring).
        image_size: (height, width) of the examples.
        batch_size: batch size of both datasets.
        validation_fraction: fraction of groups (cars) held out for validation.
        seed: seed of the split, the order of each epoch and the augmentation.
        channels: 1 or 3; None uses 1 when every image is grayscale, else 3.
        augmentation: an `Augmentation`, or None for none.
    """
    image_size = tuple(image_size)
    pairs = find_pairs(data)
    modes = check_sizes(pairs)
    channels = channels or _infer_channels(modes)
    train_pairs, validation_pairs = split_by_group(pairs, validation_fraction, seed)
    if len(train_pairs) < batch_size:
        raise ValueError(f"{data}: {len(train_pairs)} training pairs, fewer than one batch of {batch_size}.")
    train_cache = cache_pairs(train_pairs, channels, image_size)

    def make_dataset(epoch):
        examples = train_cache.shuffle(len(train_pairs), seed=seed + epoch, reshuffle_each_iteration=True).repeat()
        examples = examples.map(to_unit_range, num_parallel_calls=tf.data.AUTOTUNE)
        if augmentation is not None:
            seeds = tf.data.Dataset.random(seed=seed + epoch).batch(2)
            examples = tf.data.Dataset.zip(examples, seeds).map(
                lambda example, example_seed: augment(*example, example_seed, augmentation),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        return examples.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

    validation_dataset = None
    if validation_pairs:
        validation_dataset = (
            cache_pairs(validation_pairs, channels, image_size)
            .map(to_unit_range, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )
    return SegmentationData(
        make_dataset=make_dataset,
        validation_dataset=validation_dataset,
        num_examples=len(train_pairs),
        num_validation=len(validation_pairs),
        channels=channels,
        image_size=image_size,
        train_ids=tuple(pair.example_id for pair in train_pairs),
        validation_ids=tuple(pair.example_id for pair in validation_pairs),
        description=f"{data} ({len(train_pairs)} train, {len(validation_pairs)} validation pairs)",
    )
