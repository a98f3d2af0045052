"""Write docs/results.md from the runs' own files (and the newest bench into docs/benchmarks.md).

Examples:
  python scripts/report.py
  python scripts/report.py --logs-root /data/logs --docs docs

Every row comes from a run's metrics.json, training_time.json and
provenance.jsonl (the command, date, commit and machine recorded when it ran).
"""

import argparse
import sys

from tf_models.core import cli, runner
from tf_models.tools import report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logs-root", default="logs")
    parser.add_argument("--docs", default="docs", help="folder of results.md and benchmarks.md")
    args = parser.parse_args(argv)
    runner.print_written(report.write(args.logs_root, args.docs))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
