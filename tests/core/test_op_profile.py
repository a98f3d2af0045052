"""The per-op profile of TFLite files and what an int8 file keeps in float32."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_models.core import export, op_profile
from tf_models.core import formats as formats_lib


@pytest.fixture(scope="module")
def tflite_files(tmp_path_factory):
    """A small CNN (conv, pool, dense, sigmoid head) as float and full-integer int8 TFLite files."""
    root = tmp_path_factory.mktemp("op_profile")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 1), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    endpoints = {"serving_default": (lambda image: {"probability": model(image)},
                                     [tf.TensorSpec([None, 16, 16, 1], tf.float32, name="image")])}
    serving = export.export_saved_model(model, endpoints, root / "serving")
    rng = np.random.default_rng(0)
    calibration = [{"image": rng.random((1, 16, 16, 1), dtype=np.float32)} for _ in range(8)]
    files = {mode: export.export_tflite(serving, root / f"{mode}.tflite", mode, calibration)
             for mode in ("float", "int8")}
    return files, calibration[0]


def test_every_op_is_timed_once_in_execution_order(tflite_files):
    files, example = tflite_files
    for path in files.values():
        rows = op_profile.profile_ops(path, example, repeats=3)
        names, _ = export.op_sequence(path)
        assert [row["op"] for row in rows] == names
        assert [row["index"] for row in rows] == list(range(len(names)))
        assert all(row["ms"] > 0 for row in rows)
        counts = {op: entry["count"] for op, entry in op_profile.by_op(rows).items()}
        assert counts == export.op_counts(path)


def test_the_float_convolution_runs_in_xnnpack_with_its_recorded_shape(tflite_files):
    files, example = tflite_files
    rows = op_profile.profile_ops(files["float"], example, repeats=3)
    (convolution,) = [row for row in rows if row["op"] == "CONV_2D"]
    assert convolution["delegated"] and convolution["dtype"] == "FLOAT32"
    assert convolution["shape"] == [1, 16, 16, 8]


def test_the_summary_shares_add_up_and_the_table_lists_every_file(tflite_files):
    files, example = tflite_files
    summaries = {mode: op_profile.summary(path, example, repeats=3) for mode, path in files.items()}
    for summary in summaries.values():
        assert sum(entry["share"] for entry in summary["ops"].values()) == pytest.approx(1.0, abs=1e-3)
        assert summary["sum_ms"] == pytest.approx(sum(entry["ms"] for entry in summary["ops"].values()), abs=1e-3)
    table = op_profile.format_table(summaries)
    assert "| CONV_2D |" in table and "float ms" in table and "int8 ms" in table


def test_the_head_after_the_last_weighted_op_stays_float(tflite_files):
    files, example = tflite_files
    profiles = {mode: op_profile.summary(path, example, repeats=3) for mode, path in files.items()}
    parts = formats_lib.int8_float_parts(files["int8"], profiles["int8"], profiles["float"])
    names, outputs = export.op_sequence(files["int8"])
    last_weighted = max(index for index, name in enumerate(names) if name in formats_lib.WEIGHTED_OPS)
    assert names[last_weighted] == "FULLY_CONNECTED"
    assert parts["float_nodes"] == outputs[last_weighted + 1:] and parts["float_nodes"]


def test_op_types_xnnpack_takes_only_in_float_are_kept_in_float():
    float_profile = {"ops": {"DIV": {"delegated": 1, "dtypes": ["FLOAT32"]},
                             "CONV_2D": {"delegated": 3, "dtypes": ["FLOAT32"]},
                             "TRANSPOSE_CONV": {"delegated": 0, "dtypes": ["FLOAT32"]},
                             "CAST": {"delegated": 1, "dtypes": ["FLOAT32"]}}}
    int8_profile = {"ops": {"DIV": {"delegated": 0, "dtypes": ["INT8"]},
                            "CONV_2D": {"delegated": 3, "dtypes": ["INT8"]},
                            "TRANSPOSE_CONV": {"delegated": 0, "dtypes": ["INT8"]},
                            "CAST": {"delegated": 0, "dtypes": ["FLOAT32"]}}}
    assert formats_lib.float_only_ops(int8_profile, float_profile) == ["DIV"]
