"""EarlyStopping and ReduceLROnPlateau that resume: their counters travel in the run's checkpoint.

Keras resets these callbacks in `on_train_begin`, so a resumed run would
restart its patience, forget the best value (and, with
`restore_best_weights`, the best weights) and, since the runner re-applies
the given learning rate after a restore, undo the plateau's reductions.
`CallbackState` holds what they decide with in variables that a task returns
from `checkpoint_items` (before the checkpoint is restored); the callback
made by `CallbackState.callback`, placed after them, writes the restored
values back into them after their `on_train_begin` and copies their new
values at each epoch's end, before the loop saves the epoch's checkpoint.
A run split in two then makes the decisions of one uninterrupted run.

    state = callback_state.CallbackState(model, early_stopping=True, reduce_learning_rate=True)
    ...
    callbacks = [early_stopping, plateau, state.callback(early_stopping=early_stopping, reduce_learning_rate=plateau)]
"""

import math

import keras
import numpy as np
import tensorflow as tf

FIELDS = {
    "early_stopping": ("wait", "stopped_epoch", "best", "best_epoch"),
    "reduce_learning_rate": ("wait", "cooldown_counter", "best"),
}
CALLBACK_CLASSES = {
    "early_stopping": keras.callbacks.EarlyStopping,
    "reduce_learning_rate": keras.callbacks.ReduceLROnPlateau,
}


def _variable(field):
    """`best` is a float (NaN: no best value yet); the counters are integers."""
    if field == "best":
        return tf.Variable(math.nan, dtype=tf.float64, trainable=False, name=field)
    return tf.Variable(0, dtype=tf.int64, trainable=False, name=field)


class CallbackState(tf.Module):
    """The state of a run's EarlyStopping and ReduceLROnPlateau callbacks, as checkpoint variables.

    Args:
        model: the model being trained; with `early_stopping_weights`, a copy of its
            weights holds EarlyStopping's best weights.
        early_stopping: keep an `EarlyStopping`'s wait, best value, best epoch and stop.
        reduce_learning_rate: keep a `ReduceLROnPlateau`'s wait, cooldown and best value.
        early_stopping_weights: also keep the best weights (`restore_best_weights=True`).
    """

    def __init__(self, model, early_stopping=False, reduce_learning_rate=False, early_stopping_weights=False):
        super().__init__(name="callback_state")
        names = [name for name, wanted in (("early_stopping", early_stopping),
                                           ("reduce_learning_rate", reduce_learning_rate)) if wanted]
        self.values = {name: {field: _variable(field) for field in FIELDS[name]} for name in names}
        self.saved = tf.Variable(0, dtype=tf.int64, trainable=False, name="saved")
        self.given_learning_rate = tf.Variable(math.nan, dtype=tf.float64, trainable=False,
                                               name="given_learning_rate")
        self.has_best_weights = tf.Variable(0, dtype=tf.int64, trainable=False, name="has_best_weights")
        self.best_weights = [tf.Variable(tf.zeros(weight.shape, weight.dtype), trainable=False)
                             for weight in (model.weights if early_stopping_weights else [])]

    @property
    def restored(self):
        """Whether the variables hold a previous run's values (a checkpoint saved after an epoch)."""
        return bool(self.saved.numpy())

    def learning_rate(self, optimizer, given):
        """The rate a (resumed) run trains with: the optimizer's restored rate, as ReduceLROnPlateau left it,
        when `given` is the rate the checkpoint's run was given, else `given` (a new `--learning-rate`)."""
        previous = float(self.given_learning_rate.numpy())
        self.given_learning_rate.assign(given)
        if self.restored and previous == float(given):
            return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        return given

    def callback(self, **callbacks):
        """The Keras callback that keeps `callbacks` ({name: callback}, the names given to the constructor)."""
        if set(callbacks) != set(self.values):
            raise ValueError(f"CallbackState keeps {', '.join(sorted(self.values)) or 'nothing'}; "
                             f"got {', '.join(sorted(callbacks))}.")
        for name, kept in callbacks.items():
            if not isinstance(kept, CALLBACK_CLASSES[name]):
                raise ValueError(f"{name} must be a keras.callbacks.{CALLBACK_CLASSES[name].__name__}.")
        return KeepCallbackState(self, callbacks)

    def write_into(self, callbacks):
        for name, kept in callbacks.items():
            for field, variable in self.values[name].items():
                value = variable.numpy()
                if field == "best":
                    setattr(kept, field, None if math.isnan(value) else float(value))
                else:
                    setattr(kept, field, int(value))
        early_stopping = callbacks.get("early_stopping")
        if early_stopping is not None and self.best_weights and self.has_best_weights.numpy():
            early_stopping.best_weights = [variable.numpy() for variable in self.best_weights]

    def read_from(self, callbacks):
        for name, kept in callbacks.items():
            for field, variable in self.values[name].items():
                value = getattr(kept, field)
                variable.assign(math.nan if value is None and field == "best" else np.asarray(value).item())
        early_stopping = callbacks.get("early_stopping")
        if early_stopping is not None and self.best_weights and early_stopping.best_weights is not None:
            for variable, weight in zip(self.best_weights, early_stopping.best_weights):
                variable.assign(weight)
            self.has_best_weights.assign(1)
        self.saved.assign(1)


class KeepCallbackState(keras.callbacks.Callback):
    """Restores the kept callbacks after their `on_train_begin`; records them at each epoch's end.

    A run that EarlyStopping had stopped stays stopped when run again (the
    loop then takes no step), unless its patience was raised past its wait.
    Put it after the callbacks it keeps.
    """

    def __init__(self, state, callbacks):
        super().__init__()
        self.state = state
        self.kept = callbacks

    def on_train_begin(self, logs=None):
        if not self.state.restored:
            return
        self.state.write_into(self.kept)
        early_stopping = self.kept.get("early_stopping")
        if early_stopping is not None and early_stopping.stopped_epoch > 0:
            if early_stopping.wait >= early_stopping.patience:
                self.model.stop_training = True
            else:
                early_stopping.stopped_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        self.state.read_from(self.kept)
