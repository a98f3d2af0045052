"""One runner for every task: run folder, precision, strategy, checkpoints, loop, export.

A task is a `Task` subclass (below): every method the runner, the export and
the bench call is declared there once, with what it receives and returns.
Tasks are listed in `tf_models/registry.py`.
"""

import contextlib
import dataclasses
import json
import shutil
import signal
import sys
import tempfile
import threading

import keras
import tensorflow as tf

from tf_models.core import callbacks as callbacks_lib
from tf_models.core import checkpoints, faults, loop, precision, provenance, runs
from tf_models.core import config as config_lib
from tf_models.core import formats as formats_lib
from tf_models.core import strategy as strategy_lib
from tf_models.tools import machine


class Task:
    """The interface between a task and the shared runtime; a task overrides what differs.

    Training calls `resolve`, `build_data`, `build_model`, `checkpoint_items`,
    `learning_rates` and `callbacks`; the export (`export_run`, at the end of
    training and in `scripts/export.py`) calls `before_export`,
    `inference_model`, `serving_endpoints`, `deployment_examples`,
    `deployment_score` and `export_metadata`; `load_run` calls
    `adopt_saved_model`.
    """

    name = ""
    # What the end of training exports besides model.keras (names of `formats_lib.FORMATS`).
    export_formats = ("savedmodel", "tflite")

    def resolve(self, config):
        """The config with the values that depend on the data filled in (e.g. image size 0 -> the data's)."""
        return config

    def build_data(self, config):
        """An object with `make_dataset(epoch)` (a batched tf.data.Dataset), `num_examples` and, optionally,
        `validation_dataset`."""
        raise NotImplementedError

    def build_model(self, config, data):
        """The compiled Keras model (called inside the strategy scope); `data` is what `build_data` returned,
        or None where no data is at hand (e.g. reading a checkpoint)."""
        raise NotImplementedError

    def checkpoint_items(self, model):
        """`{name: trackable}` saved in every checkpoint besides the model (e.g. fixed sample noise)."""
        return {}

    def learning_rates(self, model, config):
        """`[(optimizer, rate)]`, applied after a restore so that a resumed run uses the rates it is given."""
        return [(model.optimizer, config.learning_rate)]

    def callbacks(self, model, paths, config):
        """Task-specific Keras callbacks (sample grids, overlays, scores), run before the standard ones."""
        return []

    def before_export(self, model, paths, config):
        """Files the exported model depends on (e.g. a threshold chosen on validation); returns their paths."""
        return []

    def inference_model(self, model):
        """The network the artifacts serve (a GAN's generator, its weight average where kept)."""
        return model

    def serving_endpoints(self, model, paths):
        """`{signature name: (function, input_signature)}`, with `serving_default`; raw inputs (uint8 images,
        latents) so that clients need no Python preprocessing."""
        raise NotImplementedError

    def deployment_examples(self, model, config, split, count):
        """`(inputs, targets)`: `count` real examples of `split` ("train" or "validation") as
        `{input name: array}` in the signature's raw form, and what `deployment_score` compares with (or None)."""
        raise NotImplementedError

    def deployment_score(self, outputs, targets):
        """The task metric (a dict) of served outputs against `targets`; {} where the task has none."""
        return {}

    def export_metadata(self, config):
        """Facts a user of the exported model needs beyond its signatures (added to the export reports)."""
        return {}

    def adopt_saved_model(self, model, saved, config):
        """The model a run's model.keras gives: `model` (built from the config) with `saved`'s weights."""
        model.set_weights(saved.get_weights())
        return model


def print_written(paths):
    print("\nWrote:")
    for path in paths:
        print(f"  {path}")


@dataclasses.dataclass
class RunResult:
    paths: runs.RunPaths
    model: keras.Model
    history: dict
    restored_from: str
    written: list
    config: object = None


def float32_model(task, model, config, data):
    """The trained `model` rebuilt under the float32 policy with its weights, or itself under float32.

    Under a mixed policy the layers compute in bfloat16 or float16, which
    TFLite's builtin kernels reject; the exports serve the same weights in
    float32, as `scripts/export.py` (`load_run`) does for a finished run.
    """
    if config.precision == "float32":
        return model
    with precision.policy_scope("float32"):
        rebuilt = task.build_model(config, data)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def export_run(task, model, config, paths, formats=None, examples=32):
    """model.keras, the task's own files (`Task.before_export`) and `formats` (default: the task's
    `export_formats`) through `formats_lib.export_task`, which `scripts/export.py` calls too."""
    formats = task.export_formats if formats is None else formats
    written = [runs.save_keras_model(model, paths.keras_file)]
    written += task.before_export(model, paths, config)
    if formats:
        written += formats_lib.export_task(task, model, config, paths, formats, examples=examples,
                                          calibration_examples=min(examples, 128))[0]
    return written


def steps_per_epoch(config, num_examples):
    return config.steps_per_epoch or max(1, num_examples // config.batch_size)


def prepare_run(task, config, chief=True, command=None):
    """Creates (or reopens) the run folders and records the config.

    A non-chief worker gets the same layout under a scratch folder, so it
    runs the same callbacks as the chief while writing nothing the chief writes.
    """
    if not chief:
        scratch = tempfile.mkdtemp(prefix=f"worker_{task.name}_")
        config = dataclasses.replace(config, logs_root=scratch, models_root=scratch)
    paths = runs.RunPaths(task.name, config.run_name, config.logs_root, config.models_root)
    if config.fresh and chief:
        shutil.rmtree(paths.log_dir, ignore_errors=True)
        shutil.rmtree(paths.model_dir, ignore_errors=True)
    paths.make_dirs()
    if chief:
        runs.remove_stale_temporaries(paths.log_dir, paths.model_dir)
        if command:
            provenance.record(paths.log_dir, command)
    runs.write_config(paths, config)
    return paths


def _raise_keyboard_interrupt(signal_number, frame):
    raise KeyboardInterrupt(f"signal {signal_number}")


@contextlib.contextmanager
def _sigterm_as_keyboard_interrupt():
    """SIGTERM (preemption, `kill`) is handled like Ctrl-C: the loop saves a checkpoint, then exits."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def train(task, config, verbose=None, command=None):
    """Trains `task` as `config` says, resuming the run if it exists.

    One process at a time trains a run (a lock file beside its model folder).
    Every worker runs the same steps, callbacks and checkpoint saves (their
    collectives must match); only the chief writes into the run folders and
    exports. All workers resume from the chief's checkpoints, which must
    therefore be readable by every worker (a shared filesystem). `command`,
    when given (the scripts give theirs), is recorded in the run's
    provenance.jsonl with the date, the commit and the machine.
    """
    # First: MultiWorkerMirroredStrategy must exist before any other TensorFlow op runs.
    strategy = strategy_lib.get_strategy(config.strategy, config.tpu or None)
    chief = strategy_lib.is_chief(strategy)
    config = task.resolve(config)
    config = dataclasses.replace(config, run_name=config.run_name or runs.default_run_name())
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    run_paths = runs.RunPaths(task.name, config.run_name, config.logs_root, config.models_root)
    lock = runs.RunLock(run_paths.lock_file) if chief else contextlib.nullcontext()
    with lock, _sigterm_as_keyboard_interrupt():
        paths = prepare_run(task, config, chief, command)
        return _train(task, config, strategy, chief, paths, run_paths.checkpoint_dir, verbose)


def _train(task, config, strategy, chief, paths, checkpoint_dir, verbose):
    runs.set_seed(config.seed)
    precision.set_policy(config.precision)
    accelerators = tf.config.list_logical_devices("GPU") + tf.config.list_logical_devices("TPU")
    warning = precision.emulation_warning(config.precision, machine.cpu_features(), accelerators)
    if warning and chief:
        print(f"warning: {warning}", file=sys.stderr)
    data = task.build_data(config)
    with strategy.scope():
        model = task.build_model(config, data)
        keeper = checkpoints.CheckpointKeeper(
            checkpoint_dir, write=chief, model=model, **task.checkpoint_items(model)
        )
    # With --fresh the chief is deleting the old checkpoints; other workers must not read them.
    restored = keeper.restore() if chief or not config.fresh else None
    if config.init_from and not restored:
        initialise_from_run(task, model, config)
    for optimizer, rate in task.learning_rates(model, config):
        optimizer.learning_rate = rate
    if restored and verbose:
        state = keeper.state.as_dict()
        print(f"Resuming {paths.run_name} from {restored} (epoch {state['epoch']}, step {state['step']}).")
    # The clock first, so that it times the other callbacks too; task callbacks before the standard ones,
    # so the scores they add to the logs reach history.csv and TensorBoard.
    clock = callbacks_lib.TrainingClock(paths.log_dir / callbacks_lib.TrainingClock.FILE_NAME)
    budget_seconds = remaining_budget_seconds(config, clock.path)
    if budget_seconds < 0:
        print(f"{paths.run_name}: its {config.time_budget_minutes:g}-minute training budget is spent "
              f"({clock.path}); not training further.")
    history = None if budget_seconds < 0 else loop.train(
        model,
        data.make_dataset,
        epochs=config.epochs,
        steps_per_epoch=steps_per_epoch(config, data.num_examples),
        keeper=keeper,
        callbacks=[clock] + task.callbacks(model, paths, config) + schedules(task, model, paths, config)
        + callbacks_lib.standard_callbacks(paths),
        validation_dataset=getattr(data, "validation_dataset", None),
        save_every_steps=config.save_every_steps,
        jit_compile=config.jit_compile,
        strategy=strategy,
        verbose=verbose if chief else 0,
        time_budget_seconds=budget_seconds,
    )
    written = [paths.log_dir, keeper.latest]
    if config.export and chief:
        with faults.region("export"):
            written += export_run(task, float32_model(task, model, config, data), config, paths)
    return RunResult(paths, model, history.history if history else {}, restored, written, config)


def initialise_from_run(task, model, config):
    """Copies the weights of run `config.init_from` of the same task into `model`, which then trains on from them."""
    paths = runs.RunPaths(task.name, config.init_from, config.logs_root, config.models_root)
    if not paths.keras_file.is_file():
        raise ValueError(f"--init-from {config.init_from}: no {paths.keras_file}; train that run to its end first.")
    saved = keras.saving.load_model(paths.keras_file, compile=False)
    try:
        model.set_weights(saved.get_weights())
    except ValueError as error:
        raise ValueError(f"--init-from {config.init_from}: its weights do not fit this model ({error}); give the "
                         "same architecture flags (filters, depth, classes) as that run.") from error


def schedules(task, model, paths, config):
    """With --cosine-decay, one cosine schedule per optimizer of `task.learning_rates`, on the run's clock."""
    if not config.cosine_decay:
        return []
    return callbacks_lib.cosine_decays(task.learning_rates(model, config), paths.log_dir,
                                       config.time_budget_minutes, config.epochs)


def remaining_budget_seconds(config, clock_file):
    """What is left of `--time-budget-minutes` after the training time the run has recorded.

    The budget is the run's total training time over all its invocations, so
    a resumed run trains only for the rest of it. 0 means no budget; a
    negative value means the budget is spent.
    """
    if not config.time_budget_minutes:
        return 0.0
    remaining = config.time_budget_minutes * 60.0 - callbacks_lib.TrainingClock.read(clock_file)["seconds"]
    return remaining if remaining > 0 else -1.0


def stored_config(paths, config_class):
    """The config a run was trained with (its config.json), as `config_class`."""
    if not paths.config_file.is_file():
        raise ValueError(f"{paths.config_file}: no config; is {paths.task}/{paths.run_name} a trained run?")
    stored = json.loads(paths.config_file.read_text())
    fields = {field.name for field in dataclasses.fields(config_class)}
    return config_class(**{key: value for key, value in stored.items() if key in fields})


def restore_latest_checkpoint(task, model, paths):
    """Restores the run's latest readable checkpoint into `model`; ValueError when there is none."""
    keeper = checkpoints.CheckpointKeeper(paths.checkpoint_dir, model=model, **task.checkpoint_items(model))
    if keeper.restore() is None:
        raise ValueError(f"{paths.checkpoint_dir}: no checkpoint to restore.")
    return model


def load_run(task, config_class, run_name, logs_root="logs", models_root="saved_models"):
    """(model, config, paths) of a trained run: its config.json, then model.keras or the latest checkpoint.

    The task's data is built first (a model may take its shape from it, and
    the deployment examples come from it).
    """
    paths = runs.RunPaths(task.name, run_name, logs_root, models_root)
    config = stored_config(paths, config_class)
    data = task.build_data(config)
    model = task.build_model(config, data)
    if paths.keras_file.is_file():
        trained = keras.saving.load_model(paths.keras_file, compile=False)
        return task.adopt_saved_model(model, trained, config), config, paths
    return restore_latest_checkpoint(task, model, paths), config, paths


def main(task, config_class, presets, doc, argv=None, extra_paths=(), next_step=""):
    """The body of every `scripts/train_*.py`: flags -> config -> train -> the paths written."""
    config = config_lib.parse_config(config_class, argv, description=doc.splitlines()[0], epilog=doc,
                                     presets=presets)
    result = train(task, config, command=provenance.command_line(None if argv is None else [sys.argv[0], *argv]))
    print_written(result.written + [result.paths.log_dir / name for name in extra_paths])
    print(f"TensorBoard: tensorboard --logdir {result.paths.log_dir}")
    if next_step:
        print(next_step.format(run=result.paths.run_name))
    return 0
