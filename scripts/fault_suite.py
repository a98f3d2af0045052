"""Kill every trainer at random and at chosen moments, resume it, and report what was lost.

Examples:
  python scripts/fault_suite.py --kills 6 --output fault_report.json
  python scripts/fault_suite.py --tasks dcgan,unet --kills 2 --work-dir /tmp/faults

Each trainer runs tiny settings on small copies of ../shared/datasets (made
under --work-dir). The report (JSON) has, per trainer: kills tried and
delivered, resumes checked and succeeded, the most steps repeated against
the save interval, corrupted files (must be none) and whether the final
model.keras, SavedModel and TFLite load. See tf_models/tools/fault_suite.py.
"""

import argparse
import json
import sys
import tempfile

from tf_models.core import cli, runs
from tf_models.tools import fault_suite


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="../shared/datasets", help="the real data folders")
    parser.add_argument("--tasks", default="dcgan,pix2pix,unet,pneumonia", help="comma-separated trainers")
    parser.add_argument("--kills", type=int, default=6,
                        help="crashes per trainer, the last one during export (6: each kind of fault once)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault plan and kill moments")
    parser.add_argument("--work-dir", default="", help="where runs go (default: a new temporary folder)")
    parser.add_argument("--output", default="fault_report.json", help="the JSON report")
    args = parser.parse_args(argv)
    if args.kills < 0:
        raise ValueError(f"--kills must be 0 or more, got {args.kills}.")
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="fault_suite_")
    trainers = fault_suite.default_trainers(fault_suite.make_subsets(args.datasets, f"{work_dir}/data"))
    unknown = set(args.tasks.split(",")) - set(trainers)
    if unknown:
        raise ValueError(f"Unknown --tasks {', '.join(sorted(unknown))}; choose from {', '.join(trainers)}.")
    selected = {name: trainers[name] for name in args.tasks.split(",")}
    report = fault_suite.run_suite(selected, args.kills, work_dir, seed=args.seed)
    report["command"] = " ".join(["python", "scripts/fault_suite.py", *(argv or sys.argv[1:])])
    runs.write_json(args.output, report)
    print(json.dumps(report["totals"], indent=2))
    print(f"\nWrote:\n  {args.output}\n  {work_dir}")
    return 0 if report["totals"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(cli.run(main))
