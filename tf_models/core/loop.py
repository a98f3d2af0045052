"""The one training driver every task uses.

`train` runs a model's own `train_step` (a compiled Keras model's, or a GAN's
custom one) under any `tf.distribute` strategy, with the standard Keras
callbacks, a checkpoint every N steps and at each epoch's end, exact resume
(step, epoch and position inside the epoch), and a guard that stops on a
non-finite loss without overwriting the last good checkpoint.

Why not `Model.fit`: `fit` always restarts an epoch from its first batch and
does not run under `MultiWorkerMirroredStrategy` in Keras 3
(keras-team/keras#20585). The driver below reuses `train_step` and
`test_step` unchanged, so nothing task-specific is written twice, and a model
trained here can still be trained with `fit`.
"""

import math
import time

import keras
import tensorflow as tf

from tf_models.core import faults


class NonFiniteLossError(RuntimeError):
    """Raised when a training metric becomes NaN or infinite."""


def make_step_function(step, strategy, jit_compile, counters=()):
    """Wraps `step(batch)` into `function(iterator)` running on every replica.

    The per-step work is compiled with XLA when `jit_compile` is true; the
    iterator is read outside the compiled part, as XLA cannot hold it.
    `counters` are incremented in the same call as the weights are updated,
    so an interrupt never separates the two.
    """
    compiled_step = tf.function(step, jit_compile=bool(jit_compile))

    @tf.function
    def step_on_iterator(iterator):
        outputs = strategy.run(compiled_step, args=(next(iterator),))
        for counter in counters:
            counter.assign_add(1)
        return tf.nest.map_structure(
            lambda value: strategy.experimental_local_results(value)[0], outputs
        )

    return step_on_iterator


def _global_logs(model, logs, strategy):
    """The step's logs over all replicas.

    A step returns the first replica's values; metrics read outside the
    replicas (cross-replica context) sum their states over all replicas, so
    every worker sees the same, global numbers (what `fit` reports at epoch end).
    """
    if strategy.num_replicas_in_sync == 1:
        return logs
    results = model.get_metrics_result()
    return {name: results.get(name, value) for name, value in logs.items()}


def _to_floats(logs):
    return {name: float(keras.ops.convert_to_numpy(value)) for name, value in logs.items()}


def _check_finite(logs, step, keeper):
    bad = {name: value for name, value in logs.items() if not math.isfinite(value)}
    if bad:
        raise NonFiniteLossError(
            f"Training stopped at step {step}: non-finite values {bad}. "
            f"The last good checkpoint is kept: {keeper.latest}. Lower the learning "
            "rate or check the input data, then run again with the same --run-name."
        )


def _reset_metrics(model):
    for metric in model.metrics:
        metric.reset_state()


def evaluate(model, dataset, steps=None, strategy=None, jit_compile=False):
    """Runs `model.test_step` over `dataset`; returns the metric results."""
    strategy = strategy or tf.distribute.get_strategy()
    test_function = make_step_function(model.test_step, strategy, jit_compile)
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    _reset_metrics(model)
    logs = {}
    step = 0
    while steps is None or step < steps:
        try:
            logs = _global_logs(model, test_function(iterator), strategy)
        except (StopIteration, tf.errors.OutOfRangeError):
            break
        step += 1
    return _to_floats(logs)


def _save_mid_epoch(keeper, callback_list, first_step):
    """Checkpoints, after the callbacks with an `on_checkpoint(steps)` method (run totals) have written theirs.

    `steps` is the number of steps this invocation has taken by the checkpoint's
    own counter, which an interrupt inside a step may have advanced without a
    batch-end callback. At an epoch's end `on_epoch_end` plays this part.
    """
    steps = int(keeper.state.step.numpy()) - first_step
    for callback in callback_list.callbacks:
        if hasattr(callback, "on_checkpoint"):
            callback.on_checkpoint(steps)
    keeper.save()


def train(
    model,
    make_dataset,
    *,
    epochs,
    steps_per_epoch,
    keeper,
    callbacks=(),
    validation_dataset=None,
    validation_steps=None,
    save_every_steps=0,
    jit_compile=False,
    strategy=None,
    verbose=1,
    time_budget_seconds=0,
):
    """Trains `model` from its last checkpoint to `epochs` epochs.

    Args:
        model: a compiled `keras.Model` (built, optimizers built).
        make_dataset: `epoch -> tf.data.Dataset` of global batches, endless
            and deterministic for a given epoch, so a resumed epoch sees the
            batches it had not seen yet.
        epochs: the total number of epochs of the run.
        steps_per_epoch: batches per epoch.
        keeper: a `CheckpointKeeper` whose checkpoint holds the model.
        callbacks: Keras callbacks, called as `fit` calls them.
        validation_dataset: finite dataset for `model.test_step` at epoch end.
        save_every_steps: also checkpoint every this many steps (0: epoch end only).
        jit_compile: compile the train step with XLA.
        strategy: the `tf.distribute.Strategy` the model was built under.
        time_budget_seconds: stop after this much training time (0: no limit);
            the epoch in progress is then validated and checkpointed, and a
            later run with the same name carries on from there.

    A callback that sets `model.stop_training` in `on_train_begin` (a run
    that early stopping ended, run again) ends training before any step.

    The epoch's callbacks (history row, sample grid, best model) run before
    its checkpoint is saved: a crash between the two runs the end of the
    epoch again on resume, instead of losing what those callbacks write.

    Returns:
        The `keras.callbacks.History` of this invocation.
    """
    strategy = strategy or tf.distribute.get_strategy()
    state = keeper.state
    callback_list = keras.callbacks.CallbackList(
        list(callbacks),
        add_history=True,
        add_progbar=verbose > 0,
        model=model,
        verbose=verbose,
        epochs=epochs,
        steps=steps_per_epoch,
    )
    train_function = make_step_function(
        model.train_step, strategy, jit_compile, counters=(state.step, state.step_in_epoch)
    )
    model.stop_training = False
    first_step = int(state.step.numpy())
    callback_list.on_train_begin()
    deadline = time.monotonic() + time_budget_seconds if time_budget_seconds else math.inf
    logs = {}
    try:
        for epoch in range(int(state.epoch.numpy()), epochs):
            if model.stop_training:
                break
            first_batch = int(state.step_in_epoch.numpy())
            dataset = make_dataset(epoch).skip(first_batch)
            iterator = iter(strategy.experimental_distribute_dataset(dataset))
            _reset_metrics(model)
            callback_list.on_epoch_begin(epoch)
            for batch in range(first_batch, steps_per_epoch):
                callback_list.on_train_batch_begin(batch)
                with faults.region("train_step"):
                    logs = _to_floats(_global_logs(model, train_function(iterator), strategy))
                _check_finite(logs, int(state.step.numpy()), keeper)
                callback_list.on_train_batch_end(batch, logs)
                if save_every_steps and int(state.step.numpy()) % save_every_steps == 0:
                    _save_mid_epoch(keeper, callback_list, first_step)
                if time.monotonic() > deadline:
                    model.stop_training = True
                if model.stop_training:
                    break
            epoch_logs = dict(logs)
            if validation_dataset is not None:
                validation_logs = evaluate(
                    model, validation_dataset, validation_steps, strategy, jit_compile
                )
                epoch_logs.update({f"val_{name}": value for name, value in validation_logs.items()})
            callback_list.on_epoch_end(epoch, epoch_logs)
            state.epoch.assign(epoch + 1)
            state.step_in_epoch.assign(0)
            keeper.save()
            logs = epoch_logs
            if model.stop_training:
                break
    except KeyboardInterrupt:
        _save_mid_epoch(keeper, callback_list, first_step)
        raise
    callback_list.on_train_end(logs)
    return model.history
