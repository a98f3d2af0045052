"""Evaluate a trained run: writes metrics.json, a readable table and figures.

Examples:
  python scripts/evaluate.py --task gan --run mnist --evaluator mnist
  python scripts/evaluate.py --task gan-reference --evaluator mnist28 --data ../shared/datasets/mnist --image-size 28
  python scripts/evaluate.py --task pix2pix --run mias-noise --baselines bm3d,nlmeans
  python scripts/evaluate.py --task unet --run carvana
  python scripts/evaluate.py --task pneumonia --run xray

`python scripts/evaluate.py --task TASK --help` lists the task's own flags.
"""

import argparse
import importlib
import pathlib
import sys

from tf_models import registry
from tf_models.core import cli, provenance, runner

def main(argv=None):
    evaluations = registry.evaluations()
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--task", choices=sorted(evaluations))
    known, _ = first.parse_known_args(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(evaluations), required=True)
    module = importlib.import_module(evaluations[known.task]) if known.task else None
    if module is not None:
        module.add_arguments(parser)
    args = parser.parse_args(argv)
    written = module.evaluate(args)
    command = provenance.command_line(None if argv is None else [sys.argv[0], *argv])
    for path in written:
        if pathlib.Path(path).name == "metrics.json":
            provenance.record(pathlib.Path(path).parent, command)
    runner.print_written(written)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
