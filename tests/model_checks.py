"""Checks every model's tests run the same way: the config round trip and the layer dtypes of a policy."""

import copy

import keras


def assert_config_round_trip(model, model_class=None):
    """A model rebuilt from its config has the same config and the same weight shapes; returns the clone.

    `model_class` is the subclassed model's class (DCGAN, Pix2Pix); functional models rebuild through
    `keras.Model.from_config`.
    """
    config = model.get_config()
    clone = (model_class or keras.Model).from_config(copy.deepcopy(config))
    assert clone.get_config() == config
    assert [tuple(weight.shape) for weight in clone.weights] == [tuple(weight.shape) for weight in model.weights]
    return clone


def assert_policy_dtypes(model, compute_dtype):
    """Every layer computes in `compute_dtype` (its outputs cast to float32 at the boundary excepted) and every
    weight is stored in float32, as Keras' mixed-precision policies do."""
    for weight in model.weights:
        assert weight.dtype == "float32", f"{weight.path} is stored as {weight.dtype}"
    computing = [layer for layer in _layers(model) if layer.weights]
    assert computing, f"{model.name} has no layer with weights"
    for layer in computing:
        assert layer.compute_dtype in (compute_dtype, "float32"), f"{layer.name}: {layer.compute_dtype}"
    assert any(layer.compute_dtype == compute_dtype for layer in computing), f"no layer of {model.name} computes " \
                                                                             f"in {compute_dtype}"


def _layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        else:
            yield layer
