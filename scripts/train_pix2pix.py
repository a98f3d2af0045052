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

from tf_models.core import config as config_lib
from tf_models.core import runner
from tf_models.tasks import pix2pix as pix2pix_task


def main(argv=None):
    config = config_lib.parse_config(
        pix2pix_task.Pix2PixConfig, argv, description=__doc__.splitlines()[0], epilog=__doc__,
        presets=pix2pix_task.PRESETS,
    )
    result = runner.train(pix2pix_task.Pix2PixTask(), config)
    print("\nWrote:")
    for path in result.written:
        print(f"  {path}")
    print(f"Evaluate: python scripts/evaluate.py --task pix2pix --run {result.paths.run_name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
