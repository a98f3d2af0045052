"""Mutate real files and feed each to every loader and to the app's upload handling; report what happened.

Examples:
  python scripts/fuzz_inputs.py --files 200 --seed 0
  python scripts/fuzz_inputs.py --files 2000 --output logs/fuzz/fuzz_2000.json

Mutations of files from ../shared/datasets and pydicom's test files (bit
flips, truncation, corrupted headers and chunks, huge declared dimensions,
wrong extensions, zero bytes, palette/alpha/16-bit/CMYK variants, broken
DICOM) go to the class-folder, Kermany, Carvana, paired/degrade, idx and
DICOM loaders and to the app, each under --timeout seconds. Crashes (an
exception other than ValueError) and hangs must be 0; the exit status is 1
otherwise. See tf_models/tools/fuzz.py.
"""

import argparse
import sys

from tf_models.tools import fuzz
from tf_models.core import cli


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="../shared/datasets", help="the real data folders")
    parser.add_argument("--files", type=int, default=200, help="number of mutated files")
    parser.add_argument("--seed", type=int, default=0, help="seed of the file choice and the mutations")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds one loader may take on one file")
    parser.add_argument("--workers", type=int, default=1, help="worker processes run side by side")
    parser.add_argument("--output", default="logs/fuzz/fuzz_inputs.json", help="the JSON report")
    args = parser.parse_args(argv)
    if args.files < 1:
        raise ValueError(f"--files must be 1 or more, got {args.files}.")

    def progress(done, total, report):
        if done % 50 == 0 or done == total:
            fuzz.write_report(report, args.output)
            print(f"{done}/{total} files, {report['totals']['crash']} crashes, {report['totals']['hang']} hangs",
                  file=sys.stderr, flush=True)

    report = fuzz.fuzz(args.datasets, args.files, args.seed, args.timeout, args.workers, progress)
    print(fuzz.format_table(report))
    print(fuzz.write_report(report, args.output))
    return 1 if report["totals"]["crash"] or report["totals"]["hang"] else 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
