"""Floating-point operations of a Keras model, counted layer by layer from its graph.

A multiply-add counts as 2 FLOPs. Per layer, for one example:

- convolutions (`Conv1D/2D/3D`, `DepthwiseConv2D`, `SeparableConv2D`):
  2 x output elements x the multiply-adds of one output (`prod(kernel.shape[:-1])`),
  plus 1 per output element for the bias;
- transposed convolutions: 2 x input elements x `prod(kernel.shape[:-1])`
  (every input value is spread over `kernel_size x filters` outputs), plus the bias;
- `Dense` (`EinsumDense` alike): 2 x inputs x units per row, plus the bias;
- normalisation: `BatchNormalization` 2 per element (a scale and a shift at
  inference), `LayerNormalization` and `GroupNormalization` 5 per element
  (statistics, normalise, scale, shift);
- activations, `Rescaling`, dropout-free elementwise layers: 1 (2 for
  `Rescaling`) per output element; `Add`/`Multiply`/`Subtract`/`Average`: one
  per output element per extra input; pooling: one per window element;
  bilinear resizing 4 per output element;
- layout layers (`Reshape`, `Concatenate`, `Cropping`, `ZeroPadding`,
  nearest-neighbour `UpSampling`, `Dropout`, casts): 0.

Nested models are traced through, so a model made of a generator and a
discriminator is counted network by network. Layers without a rule are
listed in `FlopCount.uncounted` (none of the project's networks has one
that holds weights).

Training: a backward pass costs twice its forward pass (the gradients with
respect to the inputs and to the weights, each about one forward's
multiply-adds), so one plain training step costs 3x the forward FLOPs per
example. A model whose `train_step` runs its networks a different number of
times declares `training_passes = {network attribute: (forward passes,
backward passes)}` per example, and `training_flops_per_example` adds them up.
"""

import dataclasses
import math

import keras

ELEMENTWISE = {"ReLU": 1, "LeakyReLU": 1, "PReLU": 2, "ELU": 1, "Softmax": 3, "Activation": 1, "Rescaling": 2,
               "BatchNormalization": 2, "LayerNormalization": 5, "GroupNormalization": 5,
               "UnitNormalization": 3, "Normalization": 2, "GaussianNoise": 1,
               "PerImageStandardization": 3}
MERGE = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
LAYOUT = ("InputLayer", "Reshape", "Flatten", "Concatenate", "Permute", "RepeatVector", "Dropout", "SpatialDropout1D",
          "SpatialDropout2D", "SpatialDropout3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D",
          "Cropping2D", "Cropping3D", "Identity", "Cast", "ActivityRegularization", "Masking")
POOLING = ("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
           "AveragePooling3D")
GLOBAL_POOLING = ("GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
                  "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D")
CONVOLUTIONS = ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D")
TRANSPOSED = ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")


@dataclasses.dataclass
class FlopCount:
    """FLOPs of one forward pass: the total and one `(layer path, class, FLOPs)` row per layer."""

    total: int
    layers: list
    uncounted: list


def _elements(shape):
    return math.prod(int(size) for size in shape)


def _bias(layer, output_elements):
    return output_elements if getattr(layer, "use_bias", False) else 0


def layer_flops(layer, input_shapes, output_shapes):
    """FLOPs of `layer` mapping tensors of `input_shapes` to `output_shapes` (batch included), or None.

    None means no rule covers the layer's class.
    """
    kind = type(layer).__name__
    inputs = [_elements(shape) for shape in input_shapes]
    output = sum(_elements(shape) for shape in output_shapes)
    if kind in CONVOLUTIONS or kind == "Dense" or kind == "EinsumDense":
        kernel = layer.kernel.shape
        multiply_adds = output * math.prod(kernel[:-1]) if kind != "EinsumDense" else (
            output * _elements(kernel) // kernel[-1])
        if kind.startswith("Depthwise"):
            multiply_adds = output * math.prod(kernel[:-2])
        return 2 * multiply_adds + _bias(layer, output)
    if kind in TRANSPOSED:
        return 2 * inputs[0] * math.prod(layer.kernel.shape[:-1]) + _bias(layer, output)
    if kind in ("SeparableConv1D", "SeparableConv2D"):
        depthwise = layer.depthwise_kernel.shape
        pointwise = layer.pointwise_kernel.shape
        spatial = output // pointwise[-1]
        return (2 * spatial * depthwise[-2] * depthwise[-1] * math.prod(depthwise[:-2])
                + 2 * output * pointwise[-2] + _bias(layer, output))
    if kind in ELEMENTWISE:
        return ELEMENTWISE[kind] * output
    if kind in MERGE:
        return (len(input_shapes) - 1) * output
    if kind in POOLING:
        return output * math.prod(layer.pool_size)
    if kind in GLOBAL_POOLING:
        return inputs[0]
    if kind in ("UpSampling1D", "UpSampling2D", "UpSampling3D", "Resizing"):
        method = getattr(layer, "interpolation", "nearest")
        return 0 if method == "nearest" else 4 * output
    if kind in LAYOUT or kind.endswith("Dropout"):
        return 0
    return None


def _graph(operation):
    """The functional graph of a model (a `Sequential` through its built functional twin), or None."""
    if isinstance(operation, keras.Sequential):
        return operation._functional
    if isinstance(operation, keras.Model) and hasattr(operation, "_nodes_by_depth"):
        return operation
    return None


def _shapes(structure):
    return [tensor.shape for tensor in keras.tree.flatten(structure) if hasattr(tensor, "shape")]


def _trace(graph, inputs, rows, uncounted, prefix):
    def call(operation, *args, **kwargs):
        inner = _graph(operation)
        if inner is not None:
            return _trace(inner, args[0] if len(args) == 1 else list(args), rows, uncounted,
                          f"{prefix}{operation.name}/")
        outputs = operation.compute_output_spec(*args, **kwargs)
        flops = layer_flops(operation, _shapes((args, kwargs)), _shapes(outputs))
        if flops is None:
            uncounted.append(type(operation).__name__)
            flops = 0
        rows.append((f"{prefix}{operation.name}", type(operation).__name__, int(flops)))
        return outputs

    return graph._run_through_graph(inputs, call_fn=call)


def input_shapes_of(model, batch_size=1, fill=None):
    """The shapes of `model`'s inputs with the batch set and other unknown sizes taken from `fill` in order."""
    shapes = []
    for tensor in keras.tree.flatten(_graph(model).inputs):
        sizes = list(fill or ())
        shape = [batch_size]
        for size in tensor.shape[1:]:
            if size is None and not sizes:
                raise ValueError(f"Model {model.name!r} has input {tensor.name!r} of shape {tensor.shape}; pass "
                                 "the unknown sizes (e.g. fill=(height, width)) to count its FLOPs.")
            shape.append(size if size is not None else sizes.pop(0))
        shapes.append(tuple(shape))
    return shapes


def count_flops(model, input_shapes=None):
    """A `FlopCount` of one forward pass of the functional (or Sequential) `model` on `input_shapes`.

    `input_shapes` defaults to the model's own input shapes at batch 1.
    """
    graph = _graph(model)
    if graph is None:
        raise ValueError(f"count_flops needs a functional or Sequential model; {type(model).__name__} "
                         "is subclassed: count its networks (e.g. model.generator) instead.")
    shapes = input_shapes or input_shapes_of(model)
    inputs = [keras.KerasTensor(shape, dtype=tensor.dtype)
              for shape, tensor in zip(shapes, keras.tree.flatten(graph.inputs))]
    rows, uncounted = [], []
    _trace(graph, inputs[0] if len(inputs) == 1 else inputs, rows, uncounted, "")
    return FlopCount(sum(row[2] for row in rows), rows, sorted(set(uncounted)))


def forward_flops_per_example(model, fill=None):
    """FLOPs of one forward pass per example (counted at batch 1)."""
    return count_flops(model, input_shapes_of(model, 1, fill)).total


def training_flops_per_example(model, fill=None):
    """FLOPs one `train_step` spends per example: 3x the forward pass, or the model's `training_passes`.

    `training_passes` maps a network attribute of `model` to (forward passes,
    backward passes) per example; each backward pass counts 2x the forward.
    """
    passes = getattr(model, "training_passes", None)
    if not passes:
        return 3 * forward_flops_per_example(model, fill)
    total = 0
    for attribute, (forward, backward) in passes.items():
        network = getattr(model, attribute)
        total += (forward + 2 * backward) * forward_flops_per_example(network, fill)
    return total
