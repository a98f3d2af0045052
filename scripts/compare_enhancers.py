"""Score the classical enhancers (BM3D, NL-means, bicubic, Lanczos) alone, without a trained run.

Examples:
  python scripts/compare_enhancers.py --data ../shared/datasets/mammography --degrade noise:0.05 --baselines bm3d,nlmeans
  python scripts/compare_enhancers.py --data ../shared/datasets/mammography --degrade down:2 --baselines bicubic,lanczos

The films are those `evaluate.py --task pix2pix` scores for a run trained with
the same --seed and --test-fraction (the held-out split), degraded with the
same seeds, so the numbers sit next to a run's own. To score a trained run
and its peers in one table, use `evaluate.py --task pix2pix --run RUN --baselines ...`.
"""

import argparse
import re
import sys

from tf_models.core import runner
from tf_models.pix2pix import baselines, evaluation
from tf_models.core import cli


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a folder of clean images")
    parser.add_argument("--degrade", required=True, help="degradation recipe (see pipelines/augment.py)")
    parser.add_argument("--baselines", required=True, help=f"comma-separated, from {', '.join(baselines.BASELINES)}")
    parser.add_argument("--seed", type=int, default=0, help="the run's --seed (held-out split and degradation seeds)")
    parser.add_argument("--test-fraction", type=float, default=0.15, help="the run's --test-fraction")
    parser.add_argument("--all-files", action="store_true", help="score every file of --data, not the held-out split")
    parser.add_argument("--output-dir", help="default: logs/pix2pix/baselines/<data folder>-<recipe>/")
    parser.add_argument("--figure-rows", type=int, default=4)
    args = parser.parse_args(argv)
    name = re.sub(r"[^A-Za-z0-9.]+", "-", f"{args.data.rstrip('/').split('/')[-1]}-{args.degrade}")
    output_dir = args.output_dir or f"logs/pix2pix/baselines/{name}"
    runner.print_written(evaluation.compare_baselines(args.data, args.degrade, args.baselines, output_dir, args.seed,
                                                      args.test_fraction, args.all_files, args.figure_rows))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
