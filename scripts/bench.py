"""Benchmark every task: training (with/without XLA), input pipeline, inference per format, sizes, memory.

Examples:
  make bench                                  # the full run, default image sizes (states its duration)
  python scripts/bench.py --quick             # small models, under 5 minutes
  python scripts/bench.py --tasks unet,pneumonia --set unet.base_filters=8

Writes logs/bench/<date>.json (every figure) and logs/bench/<date>.md (the
tables, also printed). `--set TASK.FIELD=VALUE` changes one config field of a
task (`tutorial.FIELD` for the tutorial DCGAN comparison).
"""

import argparse
import dataclasses
import pathlib
import sys
import time

from tf_models.core import cli, runner
from tf_models.tools import bench
from tf_models import registry


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small models and few steps (CI smoke, < 5 minutes)")
    parser.add_argument("--tasks", default=",".join(registry.names()), help="comma-separated task names")
    parser.add_argument("--set", action="append", default=[], metavar="TASK.FIELD=VALUE", help="config override")
    parser.add_argument("--no-tutorial", dest="tutorial", action="store_false",
                        help="skip the TF tutorial DCGAN comparison")
    parser.add_argument("--no-isolate", dest="isolate", action="store_false",
                        help="run every task in this process (faster start; peak memory then accumulates)")
    parser.add_argument("--warmup", type=int, help="warm-up steps (default: the mode's)")
    parser.add_argument("--steps", type=int, help="timed training steps (default: the mode's)")
    parser.add_argument("--output-dir", default="logs/bench")
    args = parser.parse_args(argv)
    tasks = [name.strip() for name in args.tasks.split(",") if name.strip()]
    for name in tasks:
        registry.lookup(name)
    mode = "quick" if args.quick else "full"
    changes = {key: value for key, value in (("warmup", args.warmup), ("steps", args.steps)) if value is not None}
    settings = dataclasses.replace(bench.MODES[mode], **changes)
    stem = pathlib.Path(args.output_dir) / time.strftime("%Y%m%d-%H%M%S")
    results = bench.run(mode, tasks, bench.parse_overrides(args.set), settings, args.tutorial, args.isolate,
                        progress=lambda partial: bench.write(partial, stem))
    written = bench.write(results, stem)
    print(written[1].read_text())
    runner.print_written(written)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
