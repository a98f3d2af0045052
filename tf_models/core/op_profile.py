"""Per-op latency of a TFLite file, each op timed alone on the values it meets in the model.

LiteRT's Python interpreter has no op profiler, so every operator is cut out
into a one-op model of its own (its weights kept, its activation inputs made
model inputs), fed the tensors it receives when the whole model runs, and
timed with the same interpreter options (XNNPACK where it takes the op).
The sum over ops is close to the whole model's latency; what it leaves out is
the cost of the boundaries between XNNPACK and TFLite's own kernels.
"""

import collections
import warnings

import numpy as np
from ai_edge_litert import interpreter as litert
from tensorflow.lite.tools import flatbuffer_utils

from tf_models.core import timing


def _is_constant(model, subgraph, tensor_index):
    data = model.buffers[subgraph.tensors[tensor_index].buffer].data
    return data is not None and len(data) > 0


def _recorded_tensors(path, inputs, threads):
    """The interpreter of the whole file after one run on `inputs`, every intermediate tensor kept."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # keeping every tensor is what the profile needs
        interpreter = litert.Interpreter(model_path=str(path), num_threads=threads,
                                         experimental_preserve_all_tensors=True)
    details = interpreter.get_input_details()
    for entry in details:
        interpreter.resize_tensor_input(entry["index"], inputs[entry["index"]].shape)
    interpreter.allocate_tensors()
    for entry in details:
        interpreter.set_tensor(entry["index"], inputs[entry["index"]])
    interpreter.invoke()
    return interpreter


def _single_op_interpreter(model, operator, activations, threads):
    """An interpreter over a copy of `model` that holds `operator` alone, its activations as inputs."""
    subgraph = model.subgraphs[0]
    kept = {subgraph.tensors[index].buffer for index in list(operator.inputs) + list(operator.outputs) if index >= 0}
    saved = [(buffer, buffer.data) for position, buffer in enumerate(model.buffers) if position not in kept]
    operators, inputs, outputs = subgraph.operators, subgraph.inputs, subgraph.outputs
    signatures = model.signatureDefs
    try:
        for buffer, _ in saved:
            buffer.data = None
        subgraph.operators, subgraph.inputs, subgraph.outputs = [operator], activations, list(operator.outputs)
        model.signatureDefs = []
        content = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    finally:
        for buffer, data in saved:
            buffer.data = data
        subgraph.operators, subgraph.inputs, subgraph.outputs = operators, inputs, outputs
        model.signatureDefs = signatures
    return litert.Interpreter(model_content=content, num_threads=threads)


def tensor_inputs(path, inputs):
    """`{input tensor index: array}` of a file, from `inputs` keyed by signature input name."""
    details = litert.Interpreter(model_path=str(path)).get_signature_runner().get_input_details()
    return {details[name]["index"]: np.asarray(value).astype(details[name]["dtype"]) for name, value in inputs.items()}


def profile_ops(path, inputs, threads=None, warmup=3, repeats=20):
    """One row per operator of the file's main subgraph, in execution order.

    `inputs`: one example `{signature input name: array}` the whole file is
    run on first, to record what each op receives.

    Each row: `index`, `op` (the TFLite op name), `ms` (median latency of the
    op alone over `repeats` calls), `delegated` (XNNPACK runs it), `dtype` of
    its first output and that output's `shape`.
    """
    recorded = _recorded_tensors(path, tensor_inputs(path, inputs), threads)
    model = flatbuffer_utils.read_model(str(path))
    subgraph = model.subgraphs[0]
    rows = []
    for index, operator in enumerate(list(subgraph.operators)):
        activations = [tensor for tensor in operator.inputs if tensor >= 0 and not _is_constant(model, subgraph, tensor)]
        interpreter = _single_op_interpreter(model, operator, activations, threads)
        details = interpreter.get_input_details()
        for entry, tensor in zip(details, activations):
            interpreter.resize_tensor_input(entry["index"], recorded.get_tensor(tensor).shape)
        interpreter.allocate_tensors()
        for entry, tensor in zip(details, activations):
            interpreter.set_tensor(entry["index"], recorded.get_tensor(tensor))
        seconds = timing.median_seconds(interpreter.invoke, warmup, repeats)
        output = subgraph.tensors[operator.outputs[0]]
        rows.append({
            "index": index,
            "op": flatbuffer_utils.opcode_to_name(model, operator.opcodeIndex),
            "ms": 1000.0 * seconds,
            "delegated": any(entry["op_name"] == "DELEGATE" for entry in interpreter._get_ops_details()),
            "dtype": flatbuffer_utils.type_to_name(output.type),
            "shape": [int(size) for size in recorded.get_tensor(operator.outputs[0]).shape],
        })
    return rows


def by_op(rows):
    """The rows summed per op name, slowest first: `{op: {count, ms, share, delegated, dtypes}}`."""
    total = sum(row["ms"] for row in rows) or 1.0
    summary = collections.defaultdict(lambda: {"count": 0, "ms": 0.0, "delegated": 0, "dtypes": set()})
    for row in rows:
        entry = summary[row["op"]]
        entry["count"] += 1
        entry["ms"] += row["ms"]
        entry["delegated"] += int(row["delegated"])
        entry["dtypes"].add(row["dtype"])
    ordered = sorted(summary.items(), key=lambda item: -item[1]["ms"])
    return {op: {**entry, "ms": round(entry["ms"], 4), "share": round(entry["ms"] / total, 4),
                 "dtypes": sorted(entry["dtypes"])} for op, entry in ordered}


def summary(path, inputs, threads=None, repeats=20):
    """`{sum_ms, ops: by_op(...), slowest: the five slowest single ops}` of one file, for the export report."""
    rows = profile_ops(path, inputs, threads=threads, repeats=repeats)
    slowest = sorted(rows, key=lambda row: -row["ms"])[:5]
    return {"sum_ms": round(sum(row["ms"] for row in rows), 4), "ops": by_op(rows),
            "slowest": [{key: row[key] for key in ("index", "op", "ms", "delegated", "dtype", "shape")}
                        for row in slowest]}


def format_table(reports, limit=8):
    """Markdown: op name, then ms (delegated / count) per file of `{label: summary}`; the slowest ops first."""
    labels = list(reports)
    totals = collections.Counter()
    for report in reports.values():
        for op, entry in report["ops"].items():
            totals[op] += entry["ms"]
    lines = ["| op | " + " | ".join(f"{label} ms (XNNPACK/count)" for label in labels) + " |",
             "|---|" + "---|" * len(labels)]
    for op, _ in totals.most_common(limit):
        cells = []
        for label in labels:
            entry = reports[label]["ops"].get(op)
            cells.append(f"{entry['ms']:.3f} ({entry['delegated']}/{entry['count']})" if entry else "-")
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    lines.append("| **sum of ops** | " + " | ".join(f"{reports[label]['sum_ms']:.3f}" for label in labels) + " |")
    return "\n".join(lines)
