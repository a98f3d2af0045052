"""Export a trained run to SavedModel (TF Serving layout), TFLite and ONNX, with a parity report.

Examples:
  python scripts/export.py --run unet/carvana96
  python scripts/export.py --run pneumonia/xray --formats savedmodel,tflite,tflite-dynamic,tflite-int8 --version 2
  python scripts/export.py --run pix2pix/mammo --formats onnx

Loads saved_models/<task>/<run>/model.keras (else the latest checkpoint), writes
serving/<N>/ and model.tflite, model_dynamic.tflite, model_int8.tflite (int8
calibrated on training images), model.onnx (the serving_default signature,
run with onnxruntime), and export_formats.json: for each format the largest
difference from Keras on validation examples, its batch-1 latency and the task
metric (Dice, accuracy, PSNR; for a generator its SSIM to the Keras images)
before and after conversion, and each TFLite file's time per op type. An int8
file keeps in float32 its head (what follows the last layer with weights) and
the op types that XNNPACK takes in float32 but not in int8; the report lists
them beside the full-integer file's latency.
"""

import argparse
import json
import sys

from tf_models.core import cli, op_profile, runner, runs
from tf_models.core import formats as formats_lib
from tf_models import registry


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="TASK/RUN, e.g. unet/carvana96")
    parser.add_argument("--formats", default=",".join(formats_lib.FORMATS),
                        help=f"comma-separated: {', '.join(formats_lib.FORMATS)}")
    parser.add_argument("--version", type=int, default=0, help="serving version folder (0: the next free number)")
    parser.add_argument("--examples", type=int, default=256, help="validation examples for parity and the task metric")
    parser.add_argument("--calibration-examples", type=int, default=128, help="training examples that calibrate int8")
    parser.add_argument("--logs-root", default="logs")
    parser.add_argument("--models-root", default="saved_models")
    args = parser.parse_args(argv)
    task_name, run_name = registry.parse_run(args.run)
    formats = formats_lib.parse_formats(args.formats)
    task, config_class, _ = registry.lookup(task_name)
    formats_lib.check_exportable(runs.RunPaths(task_name, run_name, args.logs_root, args.models_root), formats)
    model, config, paths = runner.load_run(task, config_class, run_name, args.logs_root, args.models_root)
    written, report = formats_lib.export_task(task, model, config, paths, formats, args.version or None, args.examples,
                                         args.calibration_examples)
    print(json.dumps({name: {key: value for key, value in entry.items() if key not in ("path", "op_profile")}
                      for name, entry in report["formats"].items()}, indent=2))
    profiles = {name: entry["op_profile"] for name, entry in report["formats"].items() if "op_profile" in entry}
    if profiles:
        print("\nBatch-1 milliseconds per op type, each op timed alone (export_formats.json has every op):\n")
        print(op_profile.format_table(profiles))
    runner.print_written(written)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
