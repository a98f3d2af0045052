"""Export: SavedModel in TF Serving's layout, TFLite conversion, and runners over both.

TF Serving reads `<model_base_path>/<version>/saved_model.pb`, so a run's
SavedModels go to `saved_models/<task>/<run>/serving/<version>/`. TFLite files
run through LiteRT (`ai_edge_litert`). `tf_models.core.formats` writes every
deployment format of a run and compares each with Keras.
"""

import pathlib
import shutil
import tempfile
import warnings

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert import interpreter as litert
from tensorflow.lite.tools import flatbuffer_utils

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


def export_tflite(saved_model_dir, path, mode="float", representative_inputs=None, float_ops=(), float_nodes=()):
    """Converts the SavedModel's `serving_default` signature to TFLite.

    Args:
        mode: `float` (float32), `dynamic` (dynamic-range int8 weights) or
            `int8` (full integer, needs `representative_inputs`).
        representative_inputs: list of input dicts (signature name -> array)
            used to calibrate `int8`.
        float_ops, float_nodes: `int8` only: op types (`DIV`) and nodes (by
            output tensor name) left in float32 (TF's selective quantization).
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
        if float_ops or float_nodes:
            options = tf.lite.experimental.QuantizationDebugOptions(
                denylisted_ops=list(float_ops), denylisted_nodes=list(float_nodes))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the debugger runs TF's own deprecated tf.lite.Interpreter
                debugger = tf.lite.experimental.QuantizationDebugger(
                    converter=converter, debug_dataset=converter.representative_dataset, debug_options=options)
                content = debugger.get_nondebug_quantized_model()
            return runs.atomic_write_bytes(path, content)
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


def export_static_tflite(trackable, endpoint, example_inputs, path, mode="int8", representative_inputs=None,
                         float_ops=(), float_nodes=()):
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
        return export_tflite(saved_model_dir, path, mode, representative_inputs, float_ops, float_nodes)


def op_counts(path):
    """`{TFLite op name: count}` of a TFLite file (the graph as converted, before any delegate)."""
    interpreter = litert.Interpreter(model_path=str(path))
    names = [entry["op_name"] for entry in interpreter._get_ops_details()]
    return {name: names.count(name) for name in sorted(set(names))}


def op_sequence(path):
    """(op names, output tensor names) of a TFLite file's main subgraph, in execution order."""
    model = flatbuffer_utils.read_model(str(path))
    subgraph = model.subgraphs[0]
    names = [flatbuffer_utils.opcode_to_name(model, operator.opcodeIndex) for operator in subgraph.operators]
    outputs = [subgraph.tensors[operator.outputs[0]].name.decode() for operator in subgraph.operators]
    return names, outputs


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


def signature_inputs(saved_model_dir, signature="serving_default"):
    """`{input name: tf.TensorSpec}` of a SavedModel signature."""
    loaded = tf.saved_model.load(str(saved_model_dir))
    if signature not in loaded.signatures:
        raise ValueError(f"{saved_model_dir}: no signature {signature!r}; it has {', '.join(loaded.signatures)}.")
    return dict(loaded.signatures[signature].structured_input_signature[1])


def rest_request(inputs, signature="serving_default"):
    """The body of a TF Serving REST `:predict` request (columnar `inputs` format) for NumPy inputs."""
    return {"signature_name": signature, "inputs": {name: np.asarray(value).tolist() for name, value in inputs.items()}}


def take_examples(dataset, count):
    """The first `count` examples of a batched dataset, as NumPy arrays (one per component)."""
    parts = []
    for batch in dataset:
        parts.append([np.asarray(component) for component in (batch if isinstance(batch, tuple) else (batch,))])
        if sum(len(part[0]) for part in parts) >= count:
            break
    return [np.concatenate(component)[:count] for component in zip(*parts)]

