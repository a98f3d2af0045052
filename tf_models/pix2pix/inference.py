"""Using a trained Pix2Pix run: whole images of any size, enhanced by blended tiles.

`load_enhancer(serving_dir)` wraps a run's exported `enhance_float` signature;
`Enhancer.enhance` cuts an image into overlapping tiles of the training crop
size (`enhance_tiled`), enhances them and blends the seams. With
`self_ensemble=True`, each image is also enhanced in its 8 flips and
rotations (the dihedral group of the square), each result is turned back,
and the 8 are averaged: 8 times the compute for a smoother estimate
(Timofte et al., 2016, "Seven ways to improve example-based single image
super resolution").
"""

import dataclasses
import json
import pathlib

import numpy as np
import tensorflow as tf


def enhance_tiled(generator, image, tile=256, overlap=32, size_multiple=1):
    """Enhances a whole [H, W, C] image in [-1, 1] by overlapping tiles with blended seams.

    Neighbouring tiles overlap by 2 x `overlap` pixels. Each tile is weighted
    by a window that is ~0 in its outer `overlap / 2` pixels (where the
    network saw the tile's padding instead of the image) and rises linearly
    to 1 at `overlap` pixels in, and the weighted tiles are averaged, so seams
    do not show. The image is reflect-padded to whole tiles and cropped back.
    """
    if tile % size_multiple:
        raise ValueError(f"The tile size {tile} must be a multiple of {size_multiple}.")
    if not 0 <= overlap < tile // 2:
        raise ValueError(f"The overlap must be between 0 and half the tile ({tile // 2}), got {overlap}.")
    image = tf.convert_to_tensor(image, tf.float32)
    height, width = int(image.shape[0]), int(image.shape[1])
    stride = tile - 2 * overlap if overlap else tile
    rows = max(1, -(-(height - tile) // stride) + 1) if height > tile else 1
    columns = max(1, -(-(width - tile) // stride) + 1) if width > tile else 1
    padded_height, padded_width = (rows - 1) * stride + tile, (columns - 1) * stride + tile
    pad = [[0, padded_height - height], [0, padded_width - width], [0, 0]]
    mode = "REFLECT" if padded_height - height < height and padded_width - width < width else "SYMMETRIC"
    padded = tf.pad(image, pad, mode=mode)
    distance = tf.minimum(tf.range(tile, dtype=tf.float32), tf.reverse(tf.range(tile, dtype=tf.float32), [0]))
    half = max(overlap / 2.0, 1.0)
    ramp = tf.clip_by_value((distance - half + 1.0) / half, 1e-6, 1.0) if overlap else tf.ones([tile])
    window = (ramp[:, None] * ramp[None, :])[..., None]
    tiles = [padded[r * stride:r * stride + tile, c * stride:c * stride + tile]
             for r in range(rows) for c in range(columns)]
    outputs = tf.concat([generator(tf.stack(tiles[i:i + 8]), training=False) for i in range(0, len(tiles), 8)], 0)
    total = tf.zeros_like(padded)
    weight = tf.zeros_like(padded[..., :1])
    for index, output in enumerate(tf.unstack(outputs)):
        r, c = divmod(index, columns)
        paddings = [[r * stride, padded_height - r * stride - tile], [c * stride, padded_width - c * stride - tile], [0, 0]]
        total += tf.pad(output * window, paddings)
        weight += tf.pad(window, paddings)
    return (total / weight)[:height, :width]


def dihedral_transforms():
    """The 8 flips and rotations of a [H, W, C] array, each as (forward, inverse)."""
    transforms = []
    for flip in (False, True):
        for turns in range(4):
            def forward(image, flip=flip, turns=turns):
                return np.rot90(image[:, ::-1] if flip else image, turns)

            def inverse(image, flip=flip, turns=turns):
                image = np.rot90(image, -turns)
                return image[:, ::-1] if flip else image

            transforms.append((forward, inverse))
    return transforms


def flip_rotation_average(enhance, image):
    """The mean of `enhance` over the 8 flips and rotations of `image`, each turned back."""
    outputs = [inverse(np.asarray(enhance(np.ascontiguousarray(forward(image)))))
               for forward, inverse in dihedral_transforms()]
    return np.mean(outputs, axis=0)


@dataclasses.dataclass
class Enhancer:
    """A run's exported `enhance_float` signature as a [-1, 1] generator callable.

    `tile_size` is the side of the crops the model was trained on. Instance
    normalisation takes its statistics over whatever area it is given, so a
    whole 512-pixel mammogram (mostly black background) is normalised
    differently from the 128-pixel crops of training; enhancing by tiles of
    the training size keeps the statistics the model learned with
    (`evaluate.py --task pix2pix --tile 0` scores the whole-image way; docs/pix2pix.md).
    """

    signature: object
    size_multiple: int
    tile_size: int

    def __call__(self, batch, training=False):
        return self.signature(image=(batch + 1.0) / 2.0)["enhanced"] * 2.0 - 1.0

    def enhance(self, image, tile=None, overlap=None, self_ensemble=False):
        """Enhances a float [H, W, 1] image in [0, 1] by blended tiles (`tile` 0: whole image at once).

        `self_ensemble=True` averages the 8 flips and rotations (8 times the compute).
        """
        image = np.asarray(image, np.float32)
        if self_ensemble:
            return flip_rotation_average(lambda view: self.enhance(view, tile, overlap), image)
        image = image * 2.0 - 1.0
        tile = self.tile_size if tile is None else tile
        if tile == 0:
            height, width = image.shape[:2]
            padding = [[0, -height % self.size_multiple], [0, -width % self.size_multiple], [0, 0]]
            enhanced = self(tf.pad(image, padding, mode="REFLECT")[None])[0, :height, :width]
        else:
            overlap = tile // 8 if overlap is None else overlap
            enhanced = enhance_tiled(self, image, tile, overlap, self.size_multiple)
        return np.clip((enhanced.numpy() + 1.0) / 2.0, 0.0, 1.0)


def load_enhancer(saved_model_dir):
    """An `Enhancer` from `serving/<N>/`; sizes from the export reports two folders up (256 if absent).

    `export_formats.json` (and `export.json` of older runs) record `size_multiple` and `tile_size`.
    """
    saved_model_dir = pathlib.Path(saved_model_dir)
    if not (saved_model_dir / "saved_model.pb").is_file():
        raise ValueError(f"{saved_model_dir}: no exported SavedModel (train without --no-export).")
    report = {}
    for name in ("export_formats.json", "export.json"):
        report_file = saved_model_dir.parents[1] / name
        if report_file.is_file():
            report.update(json.loads(report_file.read_text()))
    multiple = int(report.get("size_multiple", 256))
    signature = tf.saved_model.load(str(saved_model_dir)).signatures["enhance_float"]
    return Enhancer(signature, multiple, int(report.get("tile_size", max(multiple, 256))))


def latest_serving_dir(paths, version=None):
    versions = sorted(int(p.name) for p in paths.serving_dir.glob("*") if p.name.isdigit())
    if not versions:
        raise ValueError(f"{paths.serving_dir}: no exported SavedModel for run {paths.run_name!r} "
                         "(train without --no-export).")
    return paths.serving_dir / str(version or versions[-1])
