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

from tf_models.core import config as config_lib
from tf_models.core import runner
from tf_models.tasks import dcgan as dcgan_task


def main(argv=None):
    config = config_lib.parse_config(
        dcgan_task.DCGANConfig, argv, description=__doc__.splitlines()[0], epilog=__doc__, presets=dcgan_task.PRESETS
    )
    result = runner.train(dcgan_task.DCGANTask(), config)
    print("\nWrote:")
    for path in result.written + [result.paths.log_dir / "evolution.gif"]:
        print(f"  {path}")
    print(f"TensorBoard: tensorboard --logdir {result.paths.log_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
