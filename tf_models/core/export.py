"""Export: SavedModel in TF Serving's layout, TFLite, and the parity check.

TF Serving reads `<model_base_path>/<version>/saved_model.pb`, so a run's
SavedModels go to `saved_models/<task>/<run>/serving/<version>/`.
"""

import pathlib
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from tf_models.core import runs

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
        converter.representative_dataset = lambda: iter(representative_inputs)
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
    return runs.atomic_write_bytes(path, converter.convert())


def run_saved_model(saved_model_dir, inputs, signature="serving_default"):
    loaded = tf.saved_model.load(str(saved_model_dir))
    outputs = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
    return {name: value.numpy() for name, value in outputs.items()}


def run_tflite(path, inputs, signature="serving_default"):
    interpreter = tf.lite.Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner(signature)
    return runner(**inputs)


def max_abs_difference(reference, candidate):
    """Largest absolute difference per output name, as floats."""
    return {
        name: float(np.max(np.abs(reference[name].astype(np.float64) - candidate[name].astype(np.float64))))
        for name in reference
    }
