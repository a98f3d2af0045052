"""Evaluate a trained run: writes metrics.json, a readable table and figures.

Examples:
  python scripts/evaluate.py --task gan --run mnist --evaluator mnist
  python scripts/evaluate.py --task gan-reference --evaluator mnist28 --data ../shared/datasets/mnist --image-size 28
  python scripts/evaluate.py --task pix2pix --run mias-noise
  python scripts/evaluate.py --task unet --run carvana
  python scripts/evaluate.py --task pneumonia --run xray

`python scripts/evaluate.py --task TASK --help` lists the task's own flags.
"""

import argparse
import importlib
import sys

from tf_models.core import cli, runner

TASKS = {
    "gan": "tf_models.dcgan.evaluation",
    "gan-reference": "tf_models.dcgan.reference",
    "pix2pix": "tf_models.pix2pix.evaluation",
    "unet": "tf_models.unet.evaluation",
    "pneumonia": "tf_models.pneumonia.evaluation",
}


def main(argv=None):
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--task", choices=sorted(TASKS))
    known, _ = first.parse_known_args(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), required=True)
    module = importlib.import_module(TASKS[known.task]) if known.task else None
    if module is not None:
        module.add_arguments(parser)
    args = parser.parse_args(argv)
    runner.print_written(module.evaluate(args))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
