"""Train a U-Net for binary segmentation; running again with the same --run-name resumes it.

Examples:
  python scripts/train_unet.py --data ../shared/datasets/carvana_hr --preset carvana --run-name carvana
  python scripts/train_unet.py --data ../shared/datasets/carvana_hr --preset paper --epochs 1 --run-name paper
  python scripts/train_unet.py --data ../shared/datasets/membrane --preset membrane --run-name membrane
  python scripts/train_unet.py --data ../shared/datasets/carvana_hr --image-size 320x480 --depth 5 --run-name big

Writes logs/unet/<run>/ (TensorBoard with mask overlays, config.json, history.csv, masks.png)
and saved_models/unet/<run>/ (checkpoints/, best.keras, model.keras, serving/<N>/, model.tflite).
"""

import sys

from tf_models.core import cli, runner
from tf_models.unet import task as unet_task


def main(argv=None):
    return runner.main(unet_task.UNetTask(), unet_task.UNetConfig, unet_task.PRESETS, __doc__, argv,
                       extra_paths=["masks.png"], next_step="Evaluate: python scripts/evaluate.py --task unet --run {run}")


if __name__ == "__main__":
    sys.exit(cli.run(main))
