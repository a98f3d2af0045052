"""Train a DCGAN; running again with the same --run-name resumes it.

Examples:
  python scripts/train_dcgan.py --preset demo --run-name demo
  python scripts/train_dcgan.py --data ../shared/datasets/mnist --epochs 3 --batch-size 256 --run-name mnist
  python scripts/train_dcgan.py --data ../shared/datasets/cifar10 --preset cifar10 --run-name cifar10
  python scripts/train_dcgan.py --data tfds:fashion_mnist --image-size 64 --generator-filters 32 \\
      --discriminator-filters 32 --run-name fashion64

Writes logs/dcgan/<run>/ (TensorBoard, config.json, history.csv, samples/, evolution.gif)
and saved_models/dcgan/<run>/ (checkpoints/, model.keras, serving/<N>/, model.tflite).
"""

import sys

from tf_models.core import cli, runner
from tf_models.dcgan import task as dcgan_task


def main(argv=None):
    return runner.main(dcgan_task.DCGANTask(), dcgan_task.DCGANConfig, dcgan_task.PRESETS, __doc__, argv,
                       extra_paths=["evolution.gif"], next_step="Generate: python scripts/generate.py --run {run} --count 64 --output grid.png")


if __name__ == "__main__":
    sys.exit(cli.run(main))
