import json

import keras
import numpy as np
import pytest

from tf_models.core import callbacks as callbacks_lib


def rates_over_epochs(epochs, steps, tmp_path):
    optimizer = keras.optimizers.Adam(0.01)
    decay = callbacks_lib.CosineDecay(optimizer, 0.01, tmp_path / "training_time.json", epochs=epochs)
    decay.set_params({"steps": steps})
    decay.on_train_begin()
    rates = []
    for epoch in range(epochs):
        decay.on_epoch_begin(epoch)
        for batch in range(steps):
            decay.on_train_batch_begin(batch)
            rates.append(float(optimizer.learning_rate))
    return rates


def test_the_rate_falls_along_a_half_cosine_over_the_epochs(tmp_path):
    rates = rates_over_epochs(epochs=2, steps=4, tmp_path=tmp_path)
    expected = [0.01 * 0.5 * (1 + np.cos(np.pi * step / 8)) for step in range(8)]
    np.testing.assert_allclose(rates, expected, rtol=1e-5)


def test_with_a_budget_a_resumed_run_continues_the_schedule_from_its_recorded_time(tmp_path):
    clock = tmp_path / "training_time.json"
    clock.write_text(json.dumps({"seconds": 300.0, "steps": 100}))
    optimizer = keras.optimizers.Adam(0.01)
    decay = callbacks_lib.CosineDecay(optimizer, 0.01, clock, budget_seconds=600.0, epochs=50)
    decay.set_params({"steps": 10})
    decay.on_train_begin()
    decay.on_epoch_begin(0)
    decay.on_train_batch_begin(0)
    assert float(optimizer.learning_rate) == pytest.approx(0.005, rel=1e-3)
    decay.recorded_seconds = 900.0
    decay.on_train_batch_begin(1)
    assert float(optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)
