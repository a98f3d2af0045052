"""Train Pix2Pix to enhance low-quality grayscale images; the same --run-name resumes.

Examples:
  python scripts/train_pix2pix.py --data ../shared/datasets/mammography --degrade noise:0.05 \\
      --preset cpu --run-name mias-noise
  python scripts/train_pix2pix.py --data ../shared/datasets/mammography --degrade down:2 \\
      --preset cpu --run-name mias-down2
  python scripts/train_pix2pix.py --data /data/pairs   # a folder with input/ and target/

Then: python scripts/evaluate.py --task pix2pix --run mias-noise
Writes logs/pix2pix/<run>/ (TensorBoard, config.json, history.csv, samples/ of
Input | Ground truth | Enhanced) and saved_models/pix2pix/<run>/ (checkpoints/,
model.keras, serving/<N>/, model.tflite).
"""

import sys

from tf_models.core import cli, runner
from tf_models.pix2pix import task as pix2pix_task


def main(argv=None):
    return runner.main(pix2pix_task.Pix2PixTask(), pix2pix_task.Pix2PixConfig, pix2pix_task.PRESETS, __doc__, argv,
                       extra_paths=[], next_step="Evaluate: python scripts/evaluate.py --task pix2pix --run {run}")


if __name__ == "__main__":
    sys.exit(cli.run(main))
