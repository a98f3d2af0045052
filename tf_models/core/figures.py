"""Figures every task draws: training curves from history.csv, image rows."""

import csv
import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tf_models.core import runs  # noqa: E402


def read_history(path):
    """history.csv -> {column: [float, ...]} (NA and empty cells become NaN)."""
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    if not rows:
        raise ValueError(f"{path}: no epochs recorded yet.")

    def number(text):
        try:
            return float(text)
        except (TypeError, ValueError):
            return math.nan

    return {key: [number(row[key]) for row in rows] for key in rows[0]}


def save_figure(figure, path):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return runs.atomic_write_bytes(path, buffer.getvalue())


def plot_history(history, path, metrics=None, title=""):
    """One panel per metric, training and validation curves against the epoch."""
    epochs = np.asarray(history.get("epoch", range(len(next(iter(history.values())))))) + 1
    names = metrics or [k for k in history if k != "epoch" and not k.startswith("val_")
                        and not all(math.isnan(v) for v in history[k])]
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for axis, name in zip(axes.flat, names):
        axis.plot(epochs, history[name], label="train")
        validation = history.get(f"val_{name}")
        if validation is not None and not all(math.isnan(v) for v in validation):
            axis.plot(epochs, validation, label="validation")
        axis.set_title(name)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend()
    for axis in list(axes.flat)[len(names):]:
        axis.axis("off")
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)


def plot_image_rows(rows, column_titles, path, row_titles=None, cmap="gray", value_range=(0.0, 1.0),
                    panel_inches=3.0):
    """A grid of images: one row per example, e.g. Input | Ground truth | Predicted."""
    count, columns = len(rows), len(column_titles)
    figure, axes = plt.subplots(count, columns, figsize=(panel_inches * columns, panel_inches * count),
                                squeeze=False)
    for row_index, row in enumerate(rows):
        for column_index, image in enumerate(row):
            axis = axes[row_index, column_index]
            image = np.asarray(image)
            image = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
            axis.imshow(image, cmap=cmap if image.ndim == 2 else None, vmin=value_range[0], vmax=value_range[1])
            axis.set_xticks([])
            axis.set_yticks([])
            if row_index == 0:
                axis.set_title(column_titles[column_index])
        if row_titles:
            axes[row_index, 0].set_ylabel(row_titles[row_index], fontsize=8)
    return save_figure(figure, path)


def plot_runs(histories, metrics, path, title=""):
    """One panel per metric, one curve per run: `histories` is {run label: read_history(...)}."""
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.8 * len(metrics), 3.4), squeeze=False)
    for axis, name in zip(axes.flat, metrics):
        for label, history in histories.items():
            if name in history:
                axis.plot(np.arange(1, len(history[name]) + 1), history[name], marker="o", markersize=3, label=label)
        axis.set_title(name)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend()
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)
