"""ONNX export of a serving function (tf2onnx) and its onnxruntime runner.

The ONNX file holds the same function as the SavedModel's `serving_default`:
the same raw-image input, the same named outputs (`mask`, `probability`,
`enhanced`, ...), preprocessing and thresholds included, so an onnxruntime
client needs no Python preprocessing either.

Keras' own `model.export(format="onnx")` converts with tf2onnx as well, but
only the network's `call` (float inputs, an output named `Identity:0`), so
the serving function is converted instead.
"""

import contextlib
import logging

import onnx
import onnxruntime
import tensorflow as tf
import tf2onnx

from tf_models.core import runs

OPSET = 17


class _Recorder(logging.Handler):
    """Keeps the converter's error messages (the first line of each) instead of printing them."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage().splitlines()[0])


@contextlib.contextmanager
def recorded_converter_errors():
    """Silences tf2onnx's log for the duration; yields the list its error messages go to."""
    logger = logging.getLogger("tf2onnx")
    recorder = _Recorder()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(recorder)
    logger.setLevel(logging.ERROR)
    logger.propagate = False
    try:
        yield recorder.messages
    finally:
        logger.removeHandler(recorder)
        logger.setLevel(level)
        logger.propagate = propagate


def unconverted_ops(graph):
    """Sorted types of the nodes of `graph` and its subgraphs that are not ONNX operators.

    tf2onnx leaves a TensorFlow op it has no conversion for in the graph as it
    was (logging it), so such a file would only fail later, when a runtime
    loads it.
    """
    names = set()
    for node in graph.node:
        if not onnx.defs.has(node.op_type, node.domain):
            names.add(node.op_type)
        for attribute in node.attribute:
            subgraphs = [attribute.g] if attribute.HasField("g") else list(attribute.graphs)
            for subgraph in subgraphs:
                names.update(unconverted_ops(subgraph))
    return sorted(names)


def export_onnx(function, input_signature, path, opset=OPSET):
    """Converts `function` (an endpoint as given to `export.export_saved_model`) to an ONNX file at `path`.

    Raises:
        ValueError: naming the TensorFlow ops without an ONNX conversion, or
            the node tf2onnx failed on.
    """
    traced = tf.function(function, input_signature=input_signature)
    with recorded_converter_errors() as errors:
        try:
            model_proto, _ = tf2onnx.convert.from_function(traced, input_signature=input_signature, opset=opset)
        except Exception as error:  # tf2onnx re-raises whatever a node's handler raised
            detail = f" ({errors[0]})" if errors else ""
            raise ValueError(f"{path}: ONNX conversion failed: {type(error).__name__}: {error}{detail}. "
                             "Export the other formats (--formats savedmodel,tflite).") from error
    missing = unconverted_ops(model_proto.graph)
    if missing:
        raise ValueError(
            f"{path}: the graph cannot be converted to ONNX: TensorFlow op(s) {', '.join(missing)} have no "
            f"conversion in tf2onnx {tf2onnx.__version__} (opset {opset}). Replace the layer that uses them, "
            "or export the other formats (--formats savedmodel,tflite)."
        )
    return runs.atomic_write_bytes(path, model_proto.SerializeToString())


def onnx_runner(path, threads=None):
    """A function `{input name: array} -> {output name: array}` over one onnxruntime CPU session."""
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    input_names = [node.name for node in session.get_inputs()]
    output_names = [node.name for node in session.get_outputs()]

    def run(inputs):
        outputs = session.run(output_names, {name: inputs[name] for name in input_names})
        return dict(zip(output_names, outputs))

    return run
