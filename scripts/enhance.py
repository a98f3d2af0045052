"""Enhance whole grayscale images of any size with a trained Pix2Pix run.

Examples:
  python scripts/enhance.py --run mias-noise ../shared/datasets/mammography/mdb001.png --output-dir enhanced/
  python scripts/enhance.py --run mias-noise --tile 256 --overlap 32 scan16.png

The image is cut into overlapping tiles, each enhanced by the run's exported
SavedModel, and the tiles are blended (linear ramps over the overlap) into one
image of the original size. A 16-bit input gives a 16-bit PNG; anything else
an 8-bit PNG.
"""

import argparse
import json
import pathlib
import sys

import imageio.v3 as iio
import numpy as np
import tensorflow as tf

from pipelines import images
from tf_models import pix2pix
from tf_models.core import runs


def load_enhancer(paths, version=None):
    """The SavedModel's float signature as a [-1, 1] generator callable, and its size multiple."""
    versions = sorted(int(p.name) for p in paths.serving_dir.glob("*") if p.name.isdigit())
    if not versions:
        raise ValueError(f"{paths.serving_dir}: no exported SavedModel for run {paths.run_name!r}.")
    signature = tf.saved_model.load(str(paths.serving_dir / str(version or versions[-1]))).signatures["enhance_float"]
    depth = json.loads(paths.config_file.read_text())["generator_depth"]

    def generator(batch, training=False):
        return signature(image=(batch + 1.0) / 2.0)["enhanced"] * 2.0 - 1.0

    return generator, 2**depth


def enhance_file(path, generator, multiple, tile, overlap):
    image = images.read_image(path, channels=1)
    maximum = 65535.0 if image.dtype == np.uint16 else 255.0
    unit = image.astype(np.float32) / maximum
    enhanced = pix2pix.enhance_tiled(generator, unit * 2.0 - 1.0, tile, overlap, multiple)
    enhanced = np.clip((enhanced.numpy() + 1.0) / 2.0, 0.0, 1.0)
    return np.round(enhanced * maximum).astype(image.dtype)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", help="image files (PNG 8/16-bit, JPEG, PGM, ...)")
    parser.add_argument("--run", required=True, help="a run name under saved_models/pix2pix/")
    parser.add_argument("--output-dir", default="enhanced")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--logs-root", default="logs")
    parser.add_argument("--models-root", default="saved_models")
    args = parser.parse_args(argv)
    paths = runs.RunPaths("pix2pix", args.run, pathlib.Path(args.logs_root), pathlib.Path(args.models_root))
    generator, multiple = load_enhancer(paths)
    output_dir = pathlib.Path(args.output_dir)
    for path in map(pathlib.Path, args.images):
        enhanced = enhance_file(path, generator, multiple, args.tile, args.overlap)
        target = output_dir / f"{path.stem}_enhanced.png"
        runs.atomic_write_bytes(target, iio.imwrite("<bytes>", enhanced[..., 0], extension=".png"))
        print(f"{path} -> {target} ({enhanced.dtype}, {enhanced.shape[1]}x{enhanced.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
