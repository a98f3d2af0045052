"""Atomic artifacts: temporary names renamed into place, stale temporaries removed, history.csv and best.keras."""

import os

import keras
import pytest

from tf_models.core import callbacks as callbacks_lib
from tf_models.core import runs


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = runs.atomic_write_text(tmp_path / "metrics.json", "old")

    def crash(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        runs.atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["metrics.json"]


def tiny_model():
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(1)(inputs))


def test_keras_model_is_saved_under_a_temporary_name_then_renamed(tmp_path, monkeypatch):
    model = tiny_model()
    seen = []
    original_save = keras.Model.save

    def save(self, path, *args, **kwargs):
        seen.append(os.path.basename(path))
        return original_save(self, path, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save", save)
    path = runs.save_keras_model(model, tmp_path / "model.keras")
    assert seen[0].startswith(".model.keras.tmp-") and seen[0].endswith(".keras")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
    assert keras.saving.load_model(path, safe_mode=True).count_params() == 4


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    keep = [tmp_path / "model.keras", tmp_path / "serving" / "1" / "saved_model.pb", tmp_path / ".hidden_note",
            tmp_path / "checkpoints" / "ckpt-3.index"]
    stale = [tmp_path / ".model.keras.tmp-x1.keras", tmp_path / "serving" / ".2.tmp-y" / "saved_model.pb",
             tmp_path / "checkpoints" / "ckpt-6_temp" / "part-00000-of-00001.index"]
    for path in keep + stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    removed = runs.remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == [".2.tmp-y", ".model.keras.tmp-x1.keras", "ckpt-6_temp"]
    assert all(path.exists() for path in keep)
    assert not any(path.exists() for path in stale)


def test_history_csv_replaces_a_repeated_epoch_and_adds_late_columns(tmp_path):
    history = callbacks_lib.HistoryCSV(tmp_path / "history.csv")
    history.on_epoch_end(0, {"loss": 0.5})
    history.on_epoch_end(1, {"loss": 0.4})
    history.on_epoch_end(1, {"loss": 0.3, "quality_kid": 0.1})
    rows = callbacks_lib.read_history_rows(tmp_path / "history.csv")
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert rows[1] == {"epoch": "1", "loss": "0.3", "quality_kid": "0.1"} and rows[0]["quality_kid"] == ""
    assert not [p for p in tmp_path.iterdir() if p.name != "history.csv"]


def test_best_model_beats_the_best_logged_value_before_replacing_the_file(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,val_auc\n0,0.7\n1,0.9\n")
    best = tmp_path / "best.keras"
    runs.save_keras_model(tiny_model(), best)
    before = best.read_bytes()
    callback = callbacks_lib.BestModel(best, "val_auc", "max", tmp_path / "history.csv")
    callback.set_model(tiny_model())
    callback.on_epoch_end(2, {"val_auc": 0.8})
    assert best.read_bytes() == before
    callback.on_epoch_end(3, {"val_auc": float("nan")})
    assert best.read_bytes() == before
    callback.on_epoch_end(4, {"val_auc": 0.95})
    assert best.read_bytes() != before and callback.best == pytest.approx(0.95)
    assert keras.saving.load_model(best, safe_mode=True).count_params() == 4
