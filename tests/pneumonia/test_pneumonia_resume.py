"""Pneumonia: EarlyStopping and ReduceLROnPlateau decide the same in a run split in two as in one run."""

import pathlib

import imageio.v3 as iio
import numpy as np

from tf_models.core import callbacks as callbacks_lib
from tf_models.core import config as config_lib
from tf_models.core import runner, runs
from tf_models.pneumonia import task as pneumonia_task

PATIENCE = 5


def write_plateau_kermany(root, per_class=8, size=32):
    """A Kermany folder whose images are all the same: every prediction ties, so val_auc stays at 0.5
    and the callbacks' decisions (a halved rate every 2 epochs, a stop after PATIENCE) are known."""
    image = np.random.default_rng(0).integers(0, 256, (size, size), dtype=np.uint8)
    for split in ("train", "test"):
        for name, stem in (("NORMAL", "IM-{:04d}-0001"), ("PNEUMONIA", "person{}_bacteria_1")):
            folder = pathlib.Path(root) / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(per_class):
                iio.imwrite(folder / f"{stem.format(index)}.png", image)
    return pathlib.Path(root)


def plateau_config(root, run_name, epochs, learning_rate=1e-3):
    return config_lib.make_config(
        pneumonia_task.PneumoniaConfig, pneumonia_task.PRESETS, preset="tiny", data=str(root / "xray"),
        run_name=run_name, image_size=32, filters=4, blocks=2, dense_units=8, batch_size=4, steps_per_epoch=2,
        epochs=epochs, patience=PATIENCE, learning_rate=learning_rate, augment=False, validation_fraction=0.25,
        export=False, logs_root=str(root / "logs"), models_root=str(root / "models"),
    )


def decisions(root, run_name):
    """(learning rate of each epoch, val_auc of each epoch), from the run's history.csv."""
    paths = runs.RunPaths("pneumonia", run_name, root / "logs", root / "models")
    rows = callbacks_lib.read_history_rows(paths.log_dir / "history.csv")
    return [float(row["learning_rate"]) for row in rows], [float(row["val_auc"]) for row in rows]


def train(root, run_name, epochs, learning_rate=1e-3):
    return runner.train(pneumonia_task.PneumoniaTask(), plateau_config(root, run_name, epochs, learning_rate),
                        verbose=0)


def test_a_run_split_in_two_lowers_the_rate_and_stops_like_one_run(tmp_path):
    write_plateau_kermany(tmp_path / "xray")
    whole = train(tmp_path, "whole", epochs=12)
    whole_rates, whole_auc = decisions(tmp_path, "whole")
    assert whole_auc == [0.5] * len(whole_auc)
    # Stopped at epoch PATIENCE (wait reached the patience), with the rate halved after every 2 epochs.
    assert len(whole_rates) == PATIENCE + 1
    np.testing.assert_allclose(whole_rates, [1e-3] * 3 + [5e-4] * 2 + [2.5e-4], rtol=1e-6)

    train(tmp_path, "split", epochs=3)
    assert decisions(tmp_path, "split")[0] == whole_rates[:3]
    resumed = train(tmp_path, "split", epochs=12)
    assert resumed.restored_from
    split_rates, split_auc = decisions(tmp_path, "split")
    assert split_rates == whole_rates and split_auc == whole_auc
    assert_same_weights(resumed.model, whole.model)  # EarlyStopping's best weights (epoch 0's), both times

    again = train(tmp_path, "split", epochs=12)
    assert decisions(tmp_path, "split")[0] == whole_rates, "a stopped run stays stopped when run again"
    assert again.history == {}
    assert_same_weights(again.model, whole.model)


def assert_same_weights(model, expected_model):
    for weights, expected in zip(model.get_weights(), expected_model.get_weights(), strict=True):
        np.testing.assert_allclose(weights, expected, atol=1e-6)


def test_a_new_learning_rate_on_resume_replaces_the_plateaus(tmp_path):
    write_plateau_kermany(tmp_path / "xray")
    train(tmp_path, "changed", epochs=3)
    np.testing.assert_allclose(decisions(tmp_path, "changed")[0][-1], 1e-3, rtol=1e-6)
    train(tmp_path, "changed", epochs=4, learning_rate=2e-4)
    np.testing.assert_allclose(decisions(tmp_path, "changed")[0][-1], 2e-4, rtol=1e-6)
