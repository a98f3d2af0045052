"""Check every task on one GPU: training images/s per precision, float16 loss scaling, export parity.

Examples:
  make gpu-check                              # the tasks' default configs on the GPU, at most 5 minutes
  python scripts/gpu_check.py --quick         # small models, runs on CPU too (about a minute; CI)
  python scripts/gpu_check.py --tasks unet --set unet.batch_size=32

Per task: training images/s in float32, mixed_float16 without and with XLA,
and mixed_bfloat16; whether the losses stay finite over 100 mixed_float16
steps and the loss scale after them; the largest difference of the
SavedModel and float TFLite from Keras. Writes logs/gpu_check/<date>.json
and .md (the table, also printed). `--set TASK.FIELD=VALUE` changes one
config field of a task.
"""

import argparse
import pathlib
import sys
import time

from tf_models.core import runner
from tf_models.tools import bench, gpu_check
from tf_models import registry
from tf_models.core import cli


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small models and few steps (CPU or GPU, CI)")
    parser.add_argument("--tasks", default=",".join(registry.names()), help="comma-separated task names")
    parser.add_argument("--set", action="append", default=[], metavar="TASK.FIELD=VALUE", help="config override")
    parser.add_argument("--no-isolate", dest="isolate", action="store_false",
                        help="run every task in this process (faster start)")
    parser.add_argument("--output-dir", default="logs/gpu_check")
    args = parser.parse_args(argv)
    tasks = [name.strip() for name in args.tasks.split(",") if name.strip()]
    for name in tasks:
        registry.lookup(name)
    results = gpu_check.run("quick" if args.quick else "full", tasks, bench.parse_overrides(args.set),
                            isolate=args.isolate)
    written = gpu_check.write(results, pathlib.Path(args.output_dir) / time.strftime("%Y%m%d-%H%M%S"))
    print(written[1].read_text())
    runner.print_written(written)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
