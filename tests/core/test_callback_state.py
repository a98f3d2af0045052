"""CallbackState: EarlyStopping / ReduceLROnPlateau state through a checkpoint; optional checkpoint items."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_models.core import callback_state, checkpoints


def tiny_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def stateful_callbacks(patience=4):
    early_stopping = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=patience,
                                                   restore_best_weights=True)
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_auc", mode="max", patience=2)
    return early_stopping, plateau


def kept_state(model):
    return callback_state.CallbackState(model, early_stopping=True, reduce_learning_rate=True,
                                        early_stopping_weights=True)


def start(model, early_stopping, plateau, keep):
    for callback in (early_stopping, plateau, keep):
        callback.set_model(model)
        callback.on_train_begin()


def test_state_round_trips_through_a_checkpoint(tmp_path):
    model = tiny_model()
    state = kept_state(model)
    early_stopping, plateau = stateful_callbacks()
    keep = state.callback(early_stopping=early_stopping, reduce_learning_rate=plateau)
    start(model, early_stopping, plateau, keep)
    early_stopping.wait, early_stopping.best, early_stopping.best_epoch = 3, 0.8125, 2
    early_stopping.best_weights = [np.full_like(weight, 7.0) for weight in model.get_weights()]
    plateau.wait, plateau.cooldown_counter = 1, 0
    keep.on_epoch_end(4)
    path = tf.train.Checkpoint(callbacks=state).write(str(tmp_path / "ckpt"))

    other_model = tiny_model()
    restored = kept_state(other_model)
    assert not restored.restored
    tf.train.Checkpoint(callbacks=restored).read(path).assert_consumed()
    assert restored.restored
    early_stopping, plateau = stateful_callbacks()
    start(other_model, early_stopping, plateau, restored.callback(early_stopping=early_stopping,
                                                                  reduce_learning_rate=plateau))
    assert (early_stopping.wait, early_stopping.best, early_stopping.best_epoch) == (3, 0.8125, 2)
    assert (plateau.wait, plateau.cooldown_counter, plateau.best) == (1, 0, None)
    assert all(np.all(weights == 7.0) for weights in early_stopping.best_weights)
    assert not other_model.stop_training


def test_a_stopped_run_stays_stopped_unless_its_patience_was_raised():
    model = tiny_model()
    state = kept_state(model)
    early_stopping, plateau = stateful_callbacks(patience=2)
    keep = state.callback(early_stopping=early_stopping, reduce_learning_rate=plateau)
    start(model, early_stopping, plateau, keep)
    early_stopping.wait, early_stopping.stopped_epoch = 2, 5
    keep.on_epoch_end(5)

    for patience, stopped in ((2, True), (3, False)):
        model.stop_training = False
        early_stopping, plateau = stateful_callbacks(patience=patience)
        start(model, early_stopping, plateau, state.callback(early_stopping=early_stopping,
                                                             reduce_learning_rate=plateau))
        assert model.stop_training is stopped
        assert early_stopping.stopped_epoch == (5 if stopped else 0)


def test_learning_rate_keeps_the_plateaus_unless_a_new_rate_is_given():
    model = tiny_model()
    state = kept_state(model)
    assert state.learning_rate(model.optimizer, 1e-3) == 1e-3
    early_stopping, plateau = stateful_callbacks()
    keep = state.callback(early_stopping=early_stopping, reduce_learning_rate=plateau)
    start(model, early_stopping, plateau, keep)
    model.optimizer.learning_rate = 2.5e-4
    keep.on_epoch_end(0)
    assert state.learning_rate(model.optimizer, 1e-3) == pytest.approx(2.5e-4)
    assert state.learning_rate(model.optimizer, 1e-4) == 1e-4
    assert state.learning_rate(model.optimizer, 1e-4) == pytest.approx(2.5e-4)


def test_callback_names_and_kinds_are_checked():
    state = callback_state.CallbackState(tiny_model(), early_stopping=True)
    early_stopping, plateau = stateful_callbacks()
    with pytest.raises(ValueError, match="keeps early_stopping"):
        state.callback(early_stopping=early_stopping, reduce_learning_rate=plateau)
    with pytest.raises(ValueError, match="EarlyStopping"):
        state.callback(early_stopping=plateau)


def test_an_optional_item_missing_from_an_older_checkpoint_is_left_as_built(tmp_path):
    model = tiny_model()
    older = checkpoints.CheckpointKeeper(tmp_path / "older", model=model)
    older.save()
    extra = tf.Variable(3.0)
    keeper = checkpoints.CheckpointKeeper(tmp_path / "older", model=model, extra=checkpoints.OptionalItem(extra))
    assert keeper.restore() is not None
    assert float(extra.numpy()) == 3.0

    extra.assign(5.0)
    keeper.state.step.assign(1)
    keeper.save()
    reopened_extra = tf.Variable(0.0)
    reopened = checkpoints.CheckpointKeeper(tmp_path / "older", model=model,
                                            extra=checkpoints.OptionalItem(reopened_extra))
    assert reopened.restore() == keeper.latest
    assert float(reopened_extra.numpy()) == 5.0
    checkpoints.CheckpointKeeper(tmp_path / "without", model=model).save()
    with pytest.raises(RuntimeError, match="None of the checkpoints"):
        checkpoints.CheckpointKeeper(tmp_path / "without", model=model, extra=tf.Variable(0.0)).restore()
