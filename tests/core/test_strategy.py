import keras
import numpy as np
import tensorflow as tf

from tf_models.core import strategy


def test_the_same_strategy_serves_every_run_of_a_process():
    assert strategy.get_strategy("mirrored") is strategy.get_strategy("mirrored")
    assert strategy.get_strategy("default") is tf.distribute.get_strategy()


def test_replica_dropout_drops_at_its_rate_and_rescales_the_rest():
    layer = strategy.dropout(0.3, seed=1)
    inputs = np.ones((100, 10, 10), dtype=np.float32)
    np.testing.assert_array_equal(layer(inputs, training=False), inputs)
    outputs = np.asarray(layer(inputs, training=True))
    kept = outputs[outputs != 0]
    np.testing.assert_allclose(kept, 1 / 0.7, rtol=1e-6)
    assert abs(1 - kept.size / outputs.size - 0.3) < 0.02
    assert not np.array_equal(outputs, np.asarray(layer(inputs, training=True)))


def test_replica_dropout_keeps_float16_and_its_config():
    layer = strategy.dropout(0.5, name="drop", dtype="mixed_float16")
    outputs = layer(np.ones((4, 8), dtype=np.float16), training=True)
    assert outputs.dtype == "float16"
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(clone, strategy.ReplicaDropout) and clone.rate == 0.5 and clone.name == "drop"
