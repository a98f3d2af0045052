"""Train the pneumonia CNN on Kermany chest X-rays; running again with the same --run-name resumes it.

Examples:
  python scripts/train_pneumonia.py --preset default --run-name xray
  python scripts/train_pneumonia.py --preset full --run-name xray224
  python scripts/train_pneumonia.py --preset tiny --run-name smoke --fresh
  python scripts/train_pneumonia.py --data ../shared/datasets/chest_xray --image-size 128 --hflip --run-name flip

The validation split is carved from train/ by patient (--validation-fraction,
--seed); test/ is only read by scripts/evaluate.py --task pneumonia.
Writes logs/pneumonia/<run>/ (TensorBoard, config.json, history.csv, data.json)
and saved_models/pneumonia/<run>/ (checkpoints/, best.keras, model.keras,
threshold.json, serving/<N>/, model.tflite, export.json).
"""

import sys

from tf_models.core import cli, runner
from tf_models.pneumonia import task as pneumonia_task


def main(argv=None):
    return runner.main(pneumonia_task.PneumoniaTask(), pneumonia_task.PneumoniaConfig, pneumonia_task.PRESETS, __doc__, argv,
                       extra_paths=[], next_step="Evaluate: python scripts/evaluate.py --task pneumonia --run {run}")


if __name__ == "__main__":
    sys.exit(cli.run(main))
