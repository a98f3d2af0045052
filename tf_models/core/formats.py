"""Deployment formats of a run: SavedModel, TFLite (float, dynamic range, int8), ONNX, and their report.

`export_task` writes every requested format of a trained model and scores
each on the task's validation examples against Keras (largest and mean
difference, batch-1 latency, the task metric and its drop), in
`export_formats.json`; `fastest_format` names the quickest file that keeps the
metric.
"""

import os
import pathlib
import tempfile

import numpy as np
import tensorflow as tf

from tf_models.core import export, onnx_export, op_profile, runs, timing


def score_drop_points(drop, score):
    """A drop in points: metrics in [0, 1] (Dice, accuracy, AUC) x 100, others (PSNR in dB) as they are."""
    return 100.0 * drop if 0.0 <= score <= 1.0 else drop


def fastest_format(report, tolerance_points=0.5):
    """The converted format (TFLite, ONNX) with the lowest batch-1 latency whose every metric drops <= `tolerance_points`.

    Returns {format, batch1_latency_ms, ratio_to_float, worst_drop_points}
    (None when no format was scored); ratios are to float TFLite.
    """
    scored = {name: entry for name, entry in report["formats"].items() if "score_drop" in entry}
    if not scored:
        return None
    float_latency = report["formats"].get("tflite", {}).get("batch1_latency_ms")

    def worst(entry):
        return max((score_drop_points(drop, report["keras_score"][metric])
                    for metric, drop in entry["score_drop"].items()), default=0.0)

    eligible = {name: entry for name, entry in scored.items() if worst(entry) <= tolerance_points}
    if not eligible:
        return {"format": None, "tolerance_points": tolerance_points}
    name = min(eligible, key=lambda key: eligible[key]["batch1_latency_ms"])
    latency = eligible[name]["batch1_latency_ms"]
    return {"format": name, "batch1_latency_ms": latency, "tolerance_points": tolerance_points,
            "ratio_to_float": latency / float_latency if float_latency else None,
            "worst_drop_points": worst(eligible[name])}


def max_abs_difference(reference, candidate):
    """Largest absolute difference per output name, as floats."""
    return {
        name: float(np.max(np.abs(reference[name].astype(np.float64) - candidate[name].astype(np.float64))))
        for name in reference
    }


# Deployment formats of `scripts/export.py` and `scripts/bench.py`: name -> (TFLite mode, file name).
TFLITE_FORMATS = {
    "tflite": ("float", "model.tflite"),
    "tflite-dynamic": ("dynamic", "model_dynamic.tflite"),
    "tflite-int8": ("int8", "model_int8.tflite"),
}
# Formats converted with every input shape fixed to one example: name -> (TFLite mode, file name).
STATIC_TFLITE_FORMATS = {"tflite-int8-batch1": ("int8", "model_int8_batch1.tflite")}
# name -> file name; converted from the `serving_default` function, run with onnxruntime.
ONNX_FORMATS = {"onnx": "model.onnx"}
FORMATS = ("savedmodel",) + tuple(TFLITE_FORMATS) + tuple(STATIC_TFLITE_FORMATS) + tuple(ONNX_FORMATS)


def _tflite_mode(name):
    return {**TFLITE_FORMATS, **STATIC_TFLITE_FORMATS}.get(name, (None,))[0]


def parse_formats(text):
    """'savedmodel,tflite-int8' -> ('savedmodel', 'tflite-int8'), refusing unknown names."""
    formats = tuple(name.strip() for name in str(text).split(",") if name.strip())
    unknown = [name for name in formats if name not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"Unknown export format(s) {unknown or text!r}; choose from {', '.join(FORMATS)}.")
    return formats


def export_formats(trackable, endpoints, model_dir, formats, inputs, version=None, representative_inputs=None,
                   targets=None, score=None):
    """Writes the deployment `formats` of one model and a parity report.

    Args:
        trackable: the Keras model whose variables the endpoints use.
        endpoints: `{name: (function, input_signature)}` with `serving_default`.
        model_dir: the run's model folder (serving/<N>/, the TFLite and ONNX files go there).
        formats: names from `FORMATS`; the SavedModel is written in any case,
            as TFLite converts from it (to a temporary folder when not asked for);
            ONNX converts the `serving_default` function itself.
        inputs: real inputs `{input name: array}` in the signature's raw form,
            on which every format is compared with Keras.
        version: the serving version folder; the next free number when None.
        representative_inputs: calibration inputs for `tflite-int8` (a list
            of input dicts, one example batch each), from training data.
        targets, score: when given, `score(outputs, targets)` (a dict of task
            metrics) is reported for Keras and for every TFLite and ONNX file.
    Returns:
        (paths written, report dict).
    """
    model_dir = pathlib.Path(model_dir)
    function, input_signature = endpoints["serving_default"]
    compiled = tf.function(function)

    def keras_run(part):
        return export.call_endpoint(compiled, input_signature, part)

    keras_outputs = export.run_batched(keras_run, inputs)
    single = {name: value[:1] for name, value in inputs.items()}
    report = {"examples": len(next(iter(inputs.values()))), "formats": {},
              "keras_batch1_latency_ms": batch1_latency_ms(keras_run, single)}
    if score is not None:
        report["keras_score"] = score(keras_outputs, targets)
    written = []
    with tempfile.TemporaryDirectory() as scratch:
        serving_root = model_dir / "serving" if "savedmodel" in formats else pathlib.Path(scratch)
        serving_dir = export.export_saved_model(trackable, endpoints, serving_root, version)
        saved_model_run = export.saved_model_runner(serving_dir)
        served = export.run_batched(saved_model_run, inputs)
        if "savedmodel" in formats:
            written.append(serving_dir)
            report["formats"]["savedmodel"] = {
                "path": str(serving_dir), "size_bytes": directory_size(serving_dir),
                "max_abs_vs_keras": max_abs_difference(keras_outputs, served),
                "mean_abs_vs_keras": mean_abs_difference(keras_outputs, served),
                "batch1_latency_ms": batch1_latency_ms(saved_model_run, single),
            }
        profiles = {}

        def float_profile():
            if "tflite" not in profiles:
                float_path, _ = write_format("tflite", serving_dir, endpoints["serving_default"], scratch)
                profiles["tflite"] = op_profile.summary(float_path, single, repeats=PROFILE_REPEATS)
            return profiles["tflite"]

        for name in formats:
            if name == "savedmodel":
                continue
            selective = {}
            if name in STATIC_TFLITE_FORMATS:
                def write(**parts):
                    return write_static_format(name, trackable, endpoints["serving_default"], single, model_dir,
                                               representative_inputs, **parts)
            else:
                def write(**parts):
                    return write_format(name, serving_dir, endpoints["serving_default"], model_dir,
                                        representative_inputs, **parts)
            path, converted_run = write()
            if name not in ONNX_FORMATS:
                profiles[name] = op_profile.summary(path, single, repeats=PROFILE_REPEATS)
            if _tflite_mode(name) == "int8":
                parts = int8_float_parts(path, profiles[name], float_profile())
                if parts["float_ops"] or parts["float_nodes"]:
                    selective = {"full_integer_batch1_latency_ms": batch1_latency_ms(converted_run, single),
                                 "float32_ops": parts["float_ops"], "float32_nodes": parts["float_nodes"]}
                    path, converted_run = write(**parts)
                    profiles[name] = op_profile.summary(path, single, repeats=PROFILE_REPEATS)
            converted = export.run_batched(converted_run, inputs)
            entry = {"path": str(path), "size_bytes": path.stat().st_size,
                     "max_abs_vs_keras": max_abs_difference(keras_outputs, converted),
                     "mean_abs_vs_keras": mean_abs_difference(keras_outputs, converted),
                     "batch1_latency_ms": batch1_latency_ms(converted_run, single), **selective}
            if score is not None:
                entry["score"] = score(converted, targets)
                entry["score_drop"] = {
                    key: report["keras_score"][key] - value for key, value in entry["score"].items()
                }
            if name not in ONNX_FORMATS:
                entry["ops"] = export.op_counts(path)
                entry["op_profile"] = profiles[name]
            report["formats"][name] = entry
            written.append(path)
    report["fastest_within_tolerance"] = fastest_format(report)
    return written, report


def write_format(name, serving_dir, endpoint, model_dir, representative_inputs=None, float_ops=(), float_nodes=()):
    """Writes the TFLite or ONNX format `name` into `model_dir`; returns (path, runner over the file).

    `float_ops`, `float_nodes`: what an int8 file keeps in float32 (see `int8_float_parts`).
    """
    threads = len(os.sched_getaffinity(0))
    if name in ONNX_FORMATS:
        function, input_signature = endpoint
        path = onnx_export.export_onnx(function, input_signature, pathlib.Path(model_dir) / ONNX_FORMATS[name])
        return path, onnx_export.onnx_runner(path, threads=threads)
    mode, file_name = TFLITE_FORMATS[name]
    path = export.export_tflite(serving_dir, pathlib.Path(model_dir) / file_name, mode, representative_inputs,
                                float_ops, float_nodes)
    return path, export.tflite_runner(path, threads=threads)


def write_static_format(name, trackable, endpoint, example_inputs, model_dir, representative_inputs=None,
                        float_ops=(), float_nodes=()):
    """Writes the fixed-shape TFLite format `name` (`STATIC_TFLITE_FORMATS`); returns (path, runner over the file)."""
    mode, file_name = STATIC_TFLITE_FORMATS[name]
    path = export.export_static_tflite(trackable, endpoint, example_inputs, pathlib.Path(model_dir) / file_name, mode,
                                       representative_inputs, float_ops, float_nodes)
    return path, export.tflite_runner(path, threads=len(os.sched_getaffinity(0)))


# Ops with weights: an int8 file's head is what follows the last of them.
WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "BATCH_MATMUL")
PROFILE_REPEATS = 10


def int8_float_parts(int8_path, int8_profile, float_profile):
    """What an int8 file is better off keeping in float32: `{float_ops, float_nodes}`.

    - `float_nodes`: the head, every node after the last op with weights
      (output scaling to grey levels, thresholds, probabilities). It costs
      little in float32, and its int8 ranges are where the quantizer goes
      wrong: a fixed-shape Pix2Pix file gave its ReLU before the x255 the
      output's scale of 1.0, which rounded every pixel to black or white.
    - `float_ops`: op types XNNPACK runs in the float32 file but not in int8,
      so that int8 left them to TFLite's slower reference kernels (the
      per-image standardisation's DIV and SQUARED_DIFFERENCE, for one).
    """
    names, output_names = export.op_sequence(int8_path)
    weighted = [index for index, name in enumerate(names) if name in WEIGHTED_OPS]
    head = output_names[weighted[-1] + 1:] if weighted else []
    return {"float_ops": float_only_ops(int8_profile, float_profile), "float_nodes": head}


def float_only_ops(int8_profile, float_profile):
    """Op types that run outside XNNPACK in int8 (every instance) while XNNPACK takes them in float32."""
    return sorted(
        op for op, entry in int8_profile["ops"].items()
        if "INT8" in entry["dtypes"] and entry["delegated"] == 0
        and float_profile["ops"].get(op, {}).get("delegated", 0) > 0
    )


def format_runner(name, path, threads=None):
    """A runner `{input name: array} -> {output name: array}` over a file written for format `name`."""
    if name == "savedmodel":
        return export.saved_model_runner(path)
    if name in ONNX_FORMATS:
        return onnx_export.onnx_runner(path, threads=threads)
    return export.tflite_runner(path, threads=threads)


def batch1_latency_ms(run, single_input, warmup=3, repeats=20):
    """Median milliseconds of `run(single_input)` (one example), after warm-up calls."""
    return 1000.0 * timing.median_seconds(lambda: run(single_input), warmup, repeats)


def mean_abs_difference(reference, candidate):
    """Mean absolute difference per output name (for thresholded outputs: the share of flips times the step)."""
    return {
        name: float(np.mean(np.abs(reference[name].astype(np.float64) - candidate[name].astype(np.float64))))
        for name in reference
    }


def directory_size(folder):
    return sum(path.stat().st_size for path in pathlib.Path(folder).rglob("*") if path.is_file())


def check_exportable(paths, formats=FORMATS):
    """ValueError naming the run's model folder when it holds no model to export (no model.keras, no checkpoint)."""
    if paths.keras_file.is_file() or any(pathlib.Path(paths.checkpoint_dir).glob("*.index")):
        return
    raise ValueError(
        f"{paths.model_dir}: no model.keras and no checkpoint in checkpoints/, so there is no inference model "
        f"to export as {', '.join(formats)}. Train the run first (python scripts/train_{paths.task}.py "
        f"--run-name {paths.run_name}), or pass the --models-root that holds {paths.task}/{paths.run_name}/."
    )


def export_task(task, model, config, paths, formats=FORMATS, version=None, examples=256, calibration_examples=128):
    """Every requested format of a run's model, scored on the task's validation data.

    Writes the files under `paths.model_dir` and the report to
    `export_formats.json` there; returns (paths written, report).
    """
    inputs, targets = task.deployment_examples(model, config, "validation", examples)
    calibration = None
    if any(_tflite_mode(name) == "int8" for name in formats):
        calibration_inputs, _ = task.deployment_examples(model, config, "train", calibration_examples)
        calibration = export.batched(calibration_inputs, 1)
    written, report = export_formats(
        task.inference_model(model), task.serving_endpoints(model, paths), paths.model_dir, formats, inputs,
        version=version, representative_inputs=calibration, targets=targets, score=task.deployment_score,
    )
    report.update(task=task.name, run=paths.run_name, calibration_examples=calibration_examples
                  if calibration else 0, evaluated_on="validation", **task.export_metadata(config))
    written.append(runs.write_json(paths.model_dir / "export_formats.json", report))
    return written, report
