"""Export: SavedModel in TF Serving's layout, TFLite, ONNX, and the parity check.

TF Serving reads `<model_base_path>/<version>/saved_model.pb`, so a run's
SavedModels go to `saved_models/<task>/<run>/serving/<version>/`. TFLite files
run through LiteRT (`ai_edge_litert`), ONNX files through onnxruntime.
"""

import os
import pathlib
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert import interpreter as litert

from tf_models.core import onnx_export, runs
from tf_models.tools import benchmark

TFLITE_MODES = ("float", "dynamic", "int8")


def next_version(serving_dir):
    versions = [int(p.name) for p in pathlib.Path(serving_dir).glob("*") if p.name.isdigit()]
    return max(versions, default=0) + 1


def checked_shapes(function, input_signature):
    """`function` with its inputs checked against `input_signature` when called.

    A loaded SavedModel does not check the shapes of what it is given: a
    wrong rank (an image without its batch axis) reaches the kernels, and
    oneDNN's convolution then aborts the whole process. With the check the
    caller gets an `InvalidArgumentError` naming the expected shape.
    """

    def endpoint(*inputs):
        return function(*[tf.ensure_shape(value, spec.shape) for value, spec in zip(inputs, input_signature)])

    return endpoint


def export_saved_model(trackable, endpoints, serving_dir, version=None):
    """Writes a SavedModel to `serving_dir/<version>/`.

    Args:
        trackable: the Keras model (or layer) whose variables the endpoints use.
        endpoints: `{name: (function, input_signature)}`; the first one is
            also exported as `serving_default` unless that name is given.
        serving_dir: the model base path of TF Serving.
        version: the version folder; the next free number when None.
    Returns:
        The path of the version folder.
    """
    version = version or next_version(serving_dir)
    target = pathlib.Path(serving_dir) / str(version)
    archive = keras.export.ExportArchive()
    archive.track(trackable)
    for name, (function, input_signature) in endpoints.items():
        archive.add_endpoint(name=name, fn=checked_shapes(function, input_signature), input_signature=input_signature)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = pathlib.Path(tempfile.mkdtemp(dir=target.parent, prefix=runs.temporary_prefix(target)))
    try:
        archive.write_out(str(temporary), verbose=False)
        if target.exists():
            shutil.rmtree(target)
        temporary.rename(target)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary)
    return target


def export_tflite(saved_model_dir, path, mode="float", representative_inputs=None):
    """Converts the SavedModel's `serving_default` signature to TFLite.

    Args:
        mode: `float` (float32), `dynamic` (dynamic-range int8 weights) or
            `int8` (full integer, needs `representative_inputs`).
        representative_inputs: list of input dicts (signature name -> array)
            used to calibrate `int8`.
    """
    if mode not in TFLITE_MODES:
        raise ValueError(f"Unknown TFLite mode {mode!r}; choose one of {', '.join(TFLITE_MODES)}.")
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model_dir), signature_keys=["serving_default"]
    )
    if mode in ("dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "int8":
        if not representative_inputs:
            raise ValueError("int8 TFLite export needs representative inputs from the task's data.")
        converter.representative_dataset = lambda: iter(calibration_samples(representative_inputs))
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
    return runs.atomic_write_bytes(path, converter.convert())


def calibration_samples(representative_inputs):
    """Input dicts as the int8 calibrator takes them: one-input examples as `[array]`.

    Given dicts, TensorFlow's calibrator maps the names through a
    `tf.lite.Interpreter` of its own (deprecated, with a warning); a list
    holds the same arrays in the order of the model's inputs.
    """
    return [list(example.values()) if len(example) == 1 else example for example in representative_inputs]


def run_saved_model(saved_model_dir, inputs, signature="serving_default"):
    loaded = tf.saved_model.load(str(saved_model_dir))
    outputs = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
    return {name: value.numpy() for name, value in outputs.items()}


def run_tflite(path, inputs, signature="serving_default"):
    return tflite_runner(path, signature)(inputs)


def saved_model_runner(saved_model_dir, signature="serving_default"):
    """A function `{input name: array} -> {output name: array}` over a SavedModel loaded once."""
    function = tf.saved_model.load(str(saved_model_dir)).signatures[signature]

    def run(inputs):
        outputs = function(**{name: tf.constant(value) for name, value in inputs.items()})
        return {name: value.numpy() for name, value in outputs.items()}

    return run


def tflite_runner(path, signature="serving_default", threads=None):
    """A function `{input name: array} -> {output name: array}` over one TFLite interpreter.

    A file converted for one example at a time (`export_static_tflite`) is
    run one example after the other on larger batches.
    """
    interpreter = litert.Interpreter(model_path=str(path), num_threads=threads)
    runner = interpreter.get_signature_runner(signature)
    static = is_static_batch1(interpreter, signature)

    def run(inputs):
        if static:
            return run_batched(lambda part: runner(**part), inputs, batch_size=1)
        return runner(**inputs)

    return run


def is_static_batch1(interpreter, signature="serving_default"):
    """Whether every input of the interpreter's `signature` has a fixed batch of 1."""
    details = interpreter.get_signature_runner(signature).get_input_details().values()
    return all(len(entry["shape_signature"]) and entry["shape_signature"][0] == 1 for entry in details)


def export_static_tflite(trackable, endpoint, example_inputs, path, mode="int8", representative_inputs=None):
    """TFLite of `endpoint` with every input shape fixed to the shape of one of `example_inputs`.

    With fixed shapes the converter folds the shape arithmetic of transposed
    convolutions (`SHAPE`, `STRIDED_SLICE`, `PACK` feeding `TRANSPOSE_CONV`'s
    output shape) into constants, so XNNPACK takes the whole graph instead of
    leaving int8 `TRANSPOSE_CONV` to TFLite's reference kernel. The file then
    takes one example per call (`tflite_runner` loops over larger batches).
    """
    function, input_signature = endpoint
    specs = [tf.TensorSpec((1, *np.shape(example_inputs[spec.name])[1:]), spec.dtype, name=spec.name)
             for spec in input_signature]
    with tempfile.TemporaryDirectory() as scratch:
        saved_model_dir = export_saved_model(trackable, {"serving_default": (function, specs)}, scratch, 1)
        return export_tflite(saved_model_dir, path, mode, representative_inputs)


def op_counts(path):
    """`{TFLite op name: count}` of a TFLite file (the graph as converted, before any delegate)."""
    interpreter = litert.Interpreter(model_path=str(path))
    names = [entry["op_name"] for entry in interpreter._get_ops_details()]
    return {name: names.count(name) for name in sorted(set(names))}


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


def parse_formats(text):
    """'savedmodel,tflite-int8' -> ('savedmodel', 'tflite-int8'), refusing unknown names."""
    formats = tuple(name.strip() for name in str(text).split(",") if name.strip())
    unknown = [name for name in formats if name not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"Unknown export format(s) {unknown or text!r}; choose from {', '.join(FORMATS)}.")
    return formats


def call_endpoint(function, input_signature, inputs):
    """Runs an endpoint function (as given to `export_saved_model`) on NumPy inputs keyed by input name."""
    arguments = [tf.constant(inputs[spec.name], dtype=spec.dtype) for spec in input_signature]
    return {name: np.asarray(value) for name, value in function(*arguments).items()}


def batched(inputs, batch_size):
    """Splits `{name: array [N, ...]}` into a list of `{name: array [<=batch_size, ...]}`."""
    count = len(next(iter(inputs.values())))
    return [{name: value[start:start + batch_size] for name, value in inputs.items()}
            for start in range(0, count, batch_size)]


def run_batched(run, inputs, batch_size=32):
    """`run(inputs)` over slices of at most `batch_size` examples, outputs concatenated."""
    outputs = [run(part) for part in batched(inputs, batch_size)]
    return {name: np.concatenate([np.asarray(part[name]) for part in outputs]) for name in outputs[0]}


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
        return call_endpoint(compiled, input_signature, part)

    keras_outputs = run_batched(keras_run, inputs)
    single = {name: value[:1] for name, value in inputs.items()}
    report = {"examples": len(next(iter(inputs.values()))), "formats": {},
              "keras_batch1_latency_ms": batch1_latency_ms(keras_run, single)}
    if score is not None:
        report["keras_score"] = score(keras_outputs, targets)
    written = []
    with tempfile.TemporaryDirectory() as scratch:
        serving_root = model_dir / "serving" if "savedmodel" in formats else pathlib.Path(scratch)
        serving_dir = export_saved_model(trackable, endpoints, serving_root, version)
        saved_model_run = saved_model_runner(serving_dir)
        served = run_batched(saved_model_run, inputs)
        if "savedmodel" in formats:
            written.append(serving_dir)
            report["formats"]["savedmodel"] = {
                "path": str(serving_dir), "size_bytes": directory_size(serving_dir),
                "max_abs_vs_keras": max_abs_difference(keras_outputs, served),
                "mean_abs_vs_keras": mean_abs_difference(keras_outputs, served),
                "batch1_latency_ms": batch1_latency_ms(saved_model_run, single),
            }
        for name in formats:
            if name == "savedmodel":
                continue
            if name in STATIC_TFLITE_FORMATS:
                path, converted_run = write_static_format(name, trackable, endpoints["serving_default"], single,
                                                          model_dir, representative_inputs)
            else:
                path, converted_run = write_format(name, serving_dir, endpoints["serving_default"], model_dir,
                                                   representative_inputs)
            converted = run_batched(converted_run, inputs)
            entry = {"path": str(path), "size_bytes": path.stat().st_size,
                     "max_abs_vs_keras": max_abs_difference(keras_outputs, converted),
                     "mean_abs_vs_keras": mean_abs_difference(keras_outputs, converted),
                     "batch1_latency_ms": batch1_latency_ms(converted_run, single)}
            if score is not None:
                entry["score"] = score(converted, targets)
                entry["score_drop"] = {
                    key: report["keras_score"][key] - value for key, value in entry["score"].items()
                }
            if name not in ONNX_FORMATS:
                entry["ops"] = op_counts(path)
            report["formats"][name] = entry
            written.append(path)
    report["fastest_within_tolerance"] = fastest_format(report)
    return written, report


def write_format(name, serving_dir, endpoint, model_dir, representative_inputs=None):
    """Writes the TFLite or ONNX format `name` into `model_dir`; returns (path, runner over the file)."""
    threads = len(os.sched_getaffinity(0))
    if name in ONNX_FORMATS:
        function, input_signature = endpoint
        path = onnx_export.export_onnx(function, input_signature, pathlib.Path(model_dir) / ONNX_FORMATS[name])
        return path, onnx_export.onnx_runner(path, threads=threads)
    mode, file_name = TFLITE_FORMATS[name]
    path = export_tflite(serving_dir, pathlib.Path(model_dir) / file_name, mode, representative_inputs)
    return path, tflite_runner(path, threads=threads)


def write_static_format(name, trackable, endpoint, example_inputs, model_dir, representative_inputs=None):
    """Writes the fixed-shape TFLite format `name` (`STATIC_TFLITE_FORMATS`); returns (path, runner over the file)."""
    mode, file_name = STATIC_TFLITE_FORMATS[name]
    path = export_static_tflite(trackable, endpoint, example_inputs, pathlib.Path(model_dir) / file_name, mode,
                                representative_inputs)
    return path, tflite_runner(path, threads=len(os.sched_getaffinity(0)))


def format_runner(name, path, threads=None):
    """A runner `{input name: array} -> {output name: array}` over a file written for format `name`."""
    if name == "savedmodel":
        return saved_model_runner(path)
    if name in ONNX_FORMATS:
        return onnx_export.onnx_runner(path, threads=threads)
    return tflite_runner(path, threads=threads)


def batch1_latency_ms(run, single_input, warmup=3, repeats=20):
    """Median milliseconds of `run(single_input)` (one example), after warm-up calls."""
    return 1000.0 * benchmark.median_seconds(lambda: run(single_input), warmup, repeats)


def mean_abs_difference(reference, candidate):
    """Mean absolute difference per output name (for thresholded outputs: the share of flips times the step)."""
    return {
        name: float(np.mean(np.abs(reference[name].astype(np.float64) - candidate[name].astype(np.float64))))
        for name in reference
    }


def directory_size(folder):
    return sum(path.stat().st_size for path in pathlib.Path(folder).rglob("*") if path.is_file())


def signature_inputs(saved_model_dir, signature="serving_default"):
    """`{input name: tf.TensorSpec}` of a SavedModel signature."""
    loaded = tf.saved_model.load(str(saved_model_dir))
    if signature not in loaded.signatures:
        raise ValueError(f"{saved_model_dir}: no signature {signature!r}; it has {', '.join(loaded.signatures)}.")
    return dict(loaded.signatures[signature].structured_input_signature[1])


def rest_request(inputs, signature="serving_default"):
    """The body of a TF Serving REST `:predict` request (columnar `inputs` format) for NumPy inputs."""
    return {"signature_name": signature, "inputs": {name: np.asarray(value).tolist() for name, value in inputs.items()}}


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
    if "tflite-int8" in formats:
        calibration_inputs, _ = task.deployment_examples(model, config, "train", calibration_examples)
        calibration = batched(calibration_inputs, 1)
    written, report = export_formats(
        task.inference_model(model), task.serving_endpoints(model, paths), paths.model_dir, formats, inputs,
        version=version, representative_inputs=calibration, targets=targets, score=task.deployment_score,
    )
    report.update(task=task.name, run=paths.run_name, calibration_examples=calibration_examples
                  if calibration else 0, evaluated_on="validation", **task.export_metadata(config))
    written.append(runs.write_json(paths.model_dir / "export_formats.json", report))
    return written, report


def take_examples(dataset, count):
    """The first `count` examples of a batched dataset, as NumPy arrays (one per component)."""
    parts = []
    for batch in dataset:
        parts.append([np.asarray(component) for component in (batch if isinstance(batch, tuple) else (batch,))])
        if sum(len(part[0]) for part in parts) >= count:
            break
    return [np.concatenate(component)[:count] for component in zip(*parts)]

