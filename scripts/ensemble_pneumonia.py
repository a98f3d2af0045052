"""Average trained pneumonia runs into one model (a deep ensemble) and export it as a run of its own.

Examples:
  python scripts/ensemble_pneumonia.py --members xray-std xray-strong xray-frame --run-name xray-ensemble
  python scripts/evaluate.py --task pneumonia --run xray-ensemble

The members must share --data, --image-size, --seed and --validation-fraction.
The ensemble's logit is the mean of the members' logits; its temperature and
threshold are chosen on the shared validation split (never test/). Writes
saved_models/pneumonia/<run>/ (model.keras, threshold.json, serving/<N>/,
model.tflite, export.json) and logs/pneumonia/<run>/config.json.
"""

import argparse
import sys

from tf_models.pneumonia import calibration
from tf_models.core import cli, provenance, runner
from tf_models.pneumonia import task as pneumonia_task


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", nargs="+", required=True, help="trained runs under saved_models/pneumonia/")
    parser.add_argument("--run-name", required=True, help="name of the ensemble run")
    parser.add_argument("--threshold-policy", default="youden", type=calibration.check_policy,
                        help="youden, accuracy, sensitivity:T or specificity:T (e.g. sensitivity:0.95)")
    parser.add_argument("--temperature-scaling", default=True, action=argparse.BooleanOptionalAction,
                        help="fit a temperature on validation so that P(PNEUMONIA) is calibrated")
    parser.add_argument("--logs-root", default="logs")
    parser.add_argument("--models-root", default="saved_models")
    args = parser.parse_args(argv)
    written = pneumonia_task.build_ensemble_run(args.members, args.run_name, args.logs_root, args.models_root,
                                                args.threshold_policy, args.temperature_scaling,
                                                command=provenance.command_line(None if argv is None else [sys.argv[0], *argv]))
    runner.print_written(written)
    print(f"Evaluate: python scripts/evaluate.py --task pneumonia --run {args.run_name}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
