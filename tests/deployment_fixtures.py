"""Tiny configs of every task on generated data, for the export and bench tests (seconds each)."""

import pathlib

import imageio.v3 as iio
import numpy as np

from tests.pneumonia.test_pneumonia import write_kermany


def write_clean_images(root, count=8, size=64):
    """Grayscale PNGs for Pix2Pix with a `--degrade` recipe."""
    rng = np.random.default_rng(0)
    root = pathlib.Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        iio.imwrite(root / f"img{index:03d}.png", rng.integers(0, 256, (size, size), dtype=np.uint8))
    return root


def write_segmentation_pairs(root, count=8, size=(32, 48)):
    """`image/` + `label/` PNG pairs: bright rectangles on noise, masked."""
    rng = np.random.default_rng(1)
    root = pathlib.Path(root)
    for folder in ("image", "label"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for index in range(count):
        mask = np.zeros(size, np.uint8)
        top, left = rng.integers(0, size[0] // 2), rng.integers(0, size[1] // 2)
        mask[top:top + size[0] // 2, left:left + size[1] // 2] = 255
        image = np.clip(rng.normal(80, 20, size) + 0.5 * mask, 0, 255).astype(np.uint8)
        iio.imwrite(root / "image" / f"{index}.png", image)
        iio.imwrite(root / "label" / f"{index}.png", mask)
    return root


def tiny_overrides(root):
    """{task: config overrides}: each task's `tiny` preset on data generated under `root`."""
    root = pathlib.Path(root)
    data = {
        "dcgan": "digits",
        "pix2pix": str(write_clean_images(root / "clean")),
        "unet": str(write_segmentation_pairs(root / "pairs")),
        "pneumonia": str(write_kermany(root / "xray", per_class=8, size=40)),
    }
    overrides = {name: dict(preset="tiny", data=value) for name, value in data.items()}
    overrides["tutorial"] = dict(data="digits", batch_size=16)
    return overrides
