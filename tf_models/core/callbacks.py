"""Callbacks shared by the tasks: sample grids, the evolution GIF, standard logs."""

import csv
import io
import json
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

from tf_models.core import images as image_helpers
from tf_models.core import runs


class SampleGrid(keras.callbacks.Callback):
    """Saves a grid of images rendered from fixed inputs after every epoch.

    Writes `samples/epoch_NNNN.png` (epoch 0 is the untrained model), logs the
    grid to TensorBoard and rebuilds the evolution GIF from all grids so far,
    so a killed run still leaves a complete GIF of what it did.

    Args:
        render: callable returning float images in [-1, 1], shape [N, H, W, C].
        samples_dir: folder of the PNG grids.
        gif_path: the evolution GIF, or None.
        log_dir: TensorBoard folder, or None.
        scale: integer upscaling of the grid, for small images.
        columns: images per grid row (default: a square grid).
        name: the TensorBoard image tag.
    """

    def __init__(self, render, samples_dir, gif_path=None, log_dir=None, scale=2, columns=None, name="samples"):
        super().__init__()
        self.render = render
        self.columns = columns
        self.name = name
        self.samples_dir = pathlib.Path(samples_dir)
        self.gif_path = gif_path
        self.scale = scale
        self.writer = tf.summary.create_file_writer(str(pathlib.Path(log_dir) / "train")) if log_dir else None

    def _write(self, epoch):
        grid = image_helpers.tile_images(image_helpers.to_uint8(self.render()), columns=self.columns, scale=self.scale)
        path = runs.atomic_write_bytes(self.samples_dir / f"epoch_{epoch:04d}.png", image_helpers.encode_png(grid))
        if self.writer is not None:
            with self.writer.as_default():
                tf.summary.image(self.name, grid[None], step=epoch)
            self.writer.flush()
        if self.gif_path is not None:
            image_helpers.write_gif(self.gif_path, sorted(self.samples_dir.glob("epoch_*.png")))
        return path

    def on_train_begin(self, logs=None):
        if not (self.samples_dir / "epoch_0000.png").exists():
            self._write(0)

    def on_epoch_end(self, epoch, logs=None):
        self._write(epoch + 1)


class TrainingClock(keras.callbacks.Callback):
    """Adds up a run's training time and steps over all its invocations, in `training_time.json`.

    The time runs from the start of training to its end (a step's first call,
    which compiles it, and the other callbacks included; data preparation and
    export not). It is written just before every checkpoint the loop saves
    (`on_checkpoint`, and `on_epoch_end` before the epoch's), and at the end
    of training, so a killed run's clock holds at least the steps and time
    of its last checkpoint. The runner puts it first among the callbacks, so
    that it also counts at least the time `--time-budget-minutes` allows.
    """

    FILE_NAME = "training_time.json"

    def __init__(self, path):
        super().__init__()
        self.path = pathlib.Path(path)
        self.start = None
        self.recorded = {"seconds": 0.0, "steps": 0}
        self.steps = 0

    @staticmethod
    def read(path):
        """{"seconds": float, "steps": int} recorded so far (zeros for a new run)."""
        path = pathlib.Path(path)
        return json.loads(path.read_text()) if path.is_file() else {"seconds": 0.0, "steps": 0}

    def _write(self):
        total = {"seconds": self.recorded["seconds"] + time.monotonic() - self.start,
                 "steps": self.recorded["steps"] + self.steps}
        runs.write_json(self.path, total)

    def on_train_begin(self, logs=None):
        self.recorded = self.read(self.path)
        self.steps = 0
        self.start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1

    def on_epoch_end(self, epoch, logs=None):
        self._write()

    def on_checkpoint(self, steps):
        self.steps = steps
        self._write()

    def on_train_end(self, logs=None):
        self._write()


class CosineDecay(keras.callbacks.Callback):
    """Lowers an optimizer's learning rate from `rate` to 0 along a half cosine over the run.

    With a time budget the run's progress is its training time (all its
    invocations, from `training_time.json`) over the budget, so the rate
    reaches 0 when the budget ends however many steps that allows; without
    one it is the share of `epochs` done. A resumed run continues the
    schedule where it stopped.
    """

    def __init__(self, optimizer, rate, clock_path, budget_seconds=0.0, epochs=1):
        super().__init__()
        self.optimizer, self.rate, self.clock_path = optimizer, rate, pathlib.Path(clock_path)
        self.budget_seconds, self.epochs = budget_seconds, epochs
        self.recorded_seconds, self.start, self.epoch = 0.0, None, 0

    def progress(self, batch):
        if self.budget_seconds:
            elapsed = self.recorded_seconds + time.monotonic() - self.start
            return min(1.0, elapsed / self.budget_seconds)
        steps = self.params.get("steps") or 1
        return min(1.0, (self.epoch + batch / steps) / self.epochs)

    def on_train_begin(self, logs=None):
        self.recorded_seconds = TrainingClock.read(self.clock_path)["seconds"]
        self.start = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.optimizer.learning_rate = self.rate * 0.5 * (1.0 + np.cos(np.pi * self.progress(batch)))



def cosine_decays(learning_rates, log_dir, time_budget_minutes, epochs):
    """One `CosineDecay` per `(optimizer, rate)`, all on the run's training clock."""
    clock_path = pathlib.Path(log_dir) / TrainingClock.FILE_NAME
    return [CosineDecay(optimizer, rate, clock_path, time_budget_minutes * 60.0, epochs)
            for optimizer, rate in learning_rates]


def read_history_rows(path):
    """The rows of a history.csv as dicts of strings ([] when there is none yet)."""
    path = pathlib.Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def best_logged_value(history_path, monitor, mode="max"):
    """The best value of column `monitor` in a history.csv (for resumed runs), or None."""
    values = []
    for row in read_history_rows(history_path):
        try:
            values.append(float(row.get(monitor) or "nan"))
        except ValueError:
            continue
    values = [value for value in values if np.isfinite(value)]
    if not values:
        return None
    return max(values) if mode == "max" else min(values)


class HistoryCSV(keras.callbacks.Callback):
    """history.csv with one row per epoch, rewritten atomically at each epoch's end.

    Unlike `keras.callbacks.CSVLogger`, a crash never leaves a half-written
    row, an epoch run again after a crash replaces its row instead of adding a
    second one, and columns that appear later (scores logged every N epochs)
    are added to the header; missing cells stay empty.
    """

    def __init__(self, path):
        super().__init__()
        self.path = pathlib.Path(path)

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": str(epoch)}
        row.update({key: repr(float(value)) if np.ndim(value) == 0 else str(value)
                    for key, value in (logs or {}).items()})
        rows = [old for old in read_history_rows(self.path) if old.get("epoch") != row["epoch"]] + [row]
        rows.sort(key=lambda item: int(item["epoch"]))
        columns = ["epoch"] + sorted({key for item in rows for key in item} - {"epoch"})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        runs.atomic_write_text(self.path, buffer.getvalue())


class BestModel(keras.callbacks.Callback):
    """Keeps `path` as the model with the best `monitor` value so far, written atomically.

    Args:
        path: the `.keras` file (e.g. `saved_models/<task>/<run>/best.keras`).
        monitor: the epoch log to compare, e.g. `val_auc`.
        mode: `max` or `min`.
        history_path: a history.csv whose best `monitor` value a resumed run
            must beat before it replaces the file.
    """

    def __init__(self, path, monitor, mode="max", history_path=None):
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"BestModel mode must be 'max' or 'min', got {mode!r}.")
        self.path = pathlib.Path(path)
        self.monitor = monitor
        self.sign = 1.0 if mode == "max" else -1.0
        best = best_logged_value(history_path, monitor, mode) if history_path and self.path.is_file() else None
        self.best = -np.inf if best is None else self.sign * best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not np.isfinite(float(value)) or self.sign * float(value) <= self.best:
            return
        self.best = self.sign * float(value)
        runs.save_keras_model(self.model, self.path)


def standard_callbacks(paths):
    """TensorBoard scalars (train/ and validation/) and history.csv (one row per epoch, kept on resume)."""
    return [
        keras.callbacks.TensorBoard(log_dir=str(paths.log_dir), write_graph=False),
        HistoryCSV(paths.log_dir / "history.csv"),
    ]
