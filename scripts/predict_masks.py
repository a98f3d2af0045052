"""Predict masks with a trained U-Net run: PNG masks at each image's size and a Kaggle CSV.

Examples:
  python scripts/predict_masks.py --run carvana ../shared/datasets/carvana_hr/train --output-dir masks/
  python scripts/predict_masks.py --run carvana test/ --output-dir masks/ --rle-csv submission.csv
  python scripts/predict_masks.py --run carvana test/ --output-dir masks/ --tta

Writes <output-dir>/<stem>_mask.png (0 background, 255 foreground) for every image, and with
--rle-csv a submission file `img,rle_mask` in the Carvana run-length encoding (row-major,
1-indexed start/length pairs; see tf_models.unet.inference.rle_encode). --tta averages each
prediction with that of the horizontally flipped image (twice the compute). --upsample picks how
the probability reaches each image's size (bilinear, logit-bicubic, guided).
"""

import argparse
import sys

from tf_models.core import cli
from tf_models.unet import inference as unet_inference


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="image files or folders of images")
    parser.add_argument("--output-dir", required=True, help="folder for the PNG masks")
    parser.add_argument("--rle-csv", default="", help="also write a Kaggle submission CSV here")
    unet_inference.add_run_arguments(parser)
    args = parser.parse_args(argv)
    model, model_path = unet_inference.load_run_model(unet_inference.run_paths(args), args.model)
    image_paths = unet_inference.collect_images(args.inputs)
    written = unet_inference.write_masks(model, image_paths, args.output_dir, args.rle_csv or None, args.batch_size,
                                         args.tta, args.upsample)
    print(f"\n{len(image_paths)} masks from {model_path}. Wrote:")
    for path in written if len(written) <= 12 else [args.output_dir] + written[-1:] * bool(args.rle_csv):
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
