"""Enhance whole grayscale images of any size with a trained Pix2Pix run.

Examples:
  python scripts/enhance.py --run mias-noise ../shared/datasets/mammography/mdb001.png --output-dir enhanced/
  python scripts/enhance.py --run mias-noise --tile 256 --overlap 32 scan16.png
  python scripts/enhance.py --run mias-noise study/mammogram.dcm --output-dir enhanced/
  python scripts/enhance.py --run mias-noise --self-ensemble ../shared/datasets/mammography/mdb003.png

The image is cut into overlapping tiles of the run's training crop size, each
enhanced by the run's exported SavedModel, and the tiles are blended (linear
ramps over the overlap) into one image of the original size. A 16-bit input gives a 16-bit PNG; anything else
an 8-bit PNG. A DICOM input gives a DICOM (`<name>_enhanced.dcm`): the same patient and study,
a new SOP Instance UID, a Derivation Description, pixel data in the original bit depth and range
(docs/dicom.md).
"""

import argparse
import pathlib
import sys

import imageio.v3 as iio
import numpy as np

from pipelines import dicom, images
from tf_models.core import cli, runs
from tf_models.pix2pix import inference as pix2pix_inference


def enhance_dicom(path, target, enhancer, tile, overlap, run_name, self_ensemble=False):
    """Enhances a DICOM file into a DICOM `target` derived from it; returns the source `DicomImage`."""
    image = dicom.read_dicom(path, voi=False)
    enhanced = enhancer.enhance(image.unit, tile, overlap, self_ensemble)
    dicom.write_derived(image, enhanced, target, f"{dicom.DERIVATION_DESCRIPTION} (run {run_name})")
    return image


def enhance_file(path, enhancer, tile, overlap, self_ensemble=False):
    image = images.read_image(path, channels=1)
    maximum = 65535.0 if image.dtype == np.uint16 else 255.0
    enhanced = enhancer.enhance(image.astype(np.float32) / maximum, tile, overlap, self_ensemble)
    return np.round(enhanced * maximum).astype(image.dtype)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", help="image files (PNG 8/16-bit, JPEG, PGM, ...)")
    parser.add_argument("--run", required=True, help="a run name under saved_models/pix2pix/")
    parser.add_argument("--output-dir", default="enhanced")
    parser.add_argument("--tile", type=int, help="tile side (default: the run's training crop size; 0: whole image)")
    parser.add_argument("--overlap", type=int, help="blended margin of each tile; neighbours overlap by twice "
                                                    "this (default: tile / 8)")
    parser.add_argument("--self-ensemble", action="store_true", help="average the 8 flips and rotations of each "
                                                                     "image (8 times the time)")
    parser.add_argument("--logs-root", default="logs")
    parser.add_argument("--models-root", default="saved_models")
    args = parser.parse_args(argv)
    paths = runs.RunPaths("pix2pix", args.run, pathlib.Path(args.logs_root), pathlib.Path(args.models_root))
    enhancer = pix2pix_inference.load_enhancer(pix2pix_inference.latest_serving_dir(paths))
    output_dir = pathlib.Path(args.output_dir)
    for path in map(pathlib.Path, args.images):
        if dicom.is_dicom_path(path):
            target = output_dir / f"{path.stem}_enhanced.dcm"
            image = enhance_dicom(path, target, enhancer, args.tile, args.overlap, args.run, args.self_ensemble)
            print(f"{path} -> {target} (DICOM, {image.bits_stored}-bit, {image.unit.shape[1]}x{image.unit.shape[0]})")
            continue
        enhanced = enhance_file(path, enhancer, args.tile, args.overlap, args.self_ensemble)
        target = output_dir / f"{path.stem}_enhanced.png"
        runs.atomic_write_bytes(target, iio.imwrite("<bytes>", enhanced[..., 0], extension=".png"))
        print(f"{path} -> {target} ({enhanced.dtype}, {enhanced.shape[1]}x{enhanced.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
