"""ONNX export (tf2onnx, onnxruntime) and LiteRT: signatures, refused graphs, refused runs, no deprecated interpreter."""

import logging
import pathlib
import warnings

import numpy as np
import onnx
import pytest
import tensorflow as tf

from scripts import export as export_script
from tf_models.core import export, onnx_export, runs
from tf_models.core import formats as formats_lib
from tf_models.tools import artifact_checks
from tf_models.unet import task as unet_task
from tf_models.unet import model as unet


@pytest.fixture(scope="module")
def unet_files(tmp_path_factory):
    """A tiny U-Net's serving function converted to ONNX and TFLite."""
    root = tmp_path_factory.mktemp("onnx")
    model = unet.build_unet((16, 24, 1), depth=2, base_filters=4)
    endpoints = unet_task.serving_endpoints(model)
    serving_dir = export.export_saved_model(model, endpoints, root / "serving")
    function, signature = endpoints["serving_default"]
    onnx_path = onnx_export.export_onnx(function, signature, root / "model.onnx")
    tflite_path = export.export_tflite(serving_dir, root / "model.tflite")
    images = np.random.default_rng(0).integers(0, 256, (3, 16, 24, 1), dtype=np.uint8)
    expected = export.call_endpoint(tf.function(function), signature, {"images": images})
    return dict(model=model, onnx=onnx_path, tflite=tflite_path, images=images, expected=expected)


def test_onnx_file_takes_the_raw_uint8_images_and_names_the_serving_outputs(unet_files):
    graph = onnx.load(str(unet_files["onnx"])).graph
    (graph_input,) = graph.input
    assert graph_input.name == "images"
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [dim.dim_value for dim in graph_input.type.tensor_type.shape.dim[1:]] == [16, 24, 1]
    assert sorted(output.name for output in graph.output) == ["mask", "mask_probability"]


def test_onnxruntime_outputs_match_keras_for_any_batch_size(unet_files):
    run = onnx_export.onnx_runner(unet_files["onnx"], threads=1)
    for count in (1, 3):
        outputs = run({"images": unet_files["images"][:count]})
        expected = {name: value[:count] for name, value in unet_files["expected"].items()}
        assert outputs["mask"].dtype == np.uint8
        assert formats_lib.max_abs_difference(expected, outputs)["mask_probability"] < 1e-5
        assert np.mean(outputs["mask"] != expected["mask"]) < 1e-3


def test_tflite_runs_through_litert_without_the_deprecation_warning(unet_files):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outputs = export.run_tflite(unet_files["tflite"], {"images": unet_files["images"]})
    assert not [warning for warning in caught if "tf.lite.Interpreter" in str(warning.message)]
    assert formats_lib.max_abs_difference(unet_files["expected"], outputs)["mask_probability"] < 1e-5


def lgamma_function(values):
    return {"result": tf.math.lgamma(values)}


def matrix_exponential_function(values):
    return {"result": tf.linalg.expm(tf.reshape(values, [-1, 2, 2]))}


@pytest.mark.parametrize("function, operation", [(lgamma_function, "Lgamma"),
                                                 (matrix_exponential_function, "MatrixSolve")])
def test_a_graph_that_cannot_convert_names_the_op_and_writes_nothing(tmp_path, caplog, function, operation):
    signature = [tf.TensorSpec([None, 4], tf.float32, name="values")]
    with caplog.at_level(logging.INFO):
        with pytest.raises(ValueError, match=f"model.onnx: .*TensorFlow op\\(s\\) {operation} .*--formats"):
            onnx_export.export_onnx(function, signature, tmp_path / "model.onnx")
    assert not list(tmp_path.iterdir())
    assert not [record for record in caplog.records if record.name.startswith("tf2onnx")]


def test_onnx_request_for_a_run_without_a_model_names_the_folder_and_the_fix(tmp_path):
    paths = runs.RunPaths("unet", "untrained", tmp_path / "logs", tmp_path / "models").make_dirs()
    runs.write_json(paths.config_file, {"run_name": "untrained"})
    flags = ["--run", "unet/untrained", "--formats", "onnx", "--logs-root", str(tmp_path / "logs"),
             "--models-root", str(tmp_path / "models")]
    message = f"{paths.model_dir}: no model.keras and no checkpoint .* as onnx. Train the run first " \
              r"\(python scripts/train_unet.py --run-name untrained\)"
    with pytest.raises(ValueError, match=message):
        export_script.main(flags)


def test_onnx_format_is_listed_and_parsed():
    assert "onnx" in formats_lib.FORMATS
    assert formats_lib.parse_formats("savedmodel, onnx") == ("savedmodel", "onnx")
    with pytest.raises(ValueError, match="choose from savedmodel, .*tflite-int8-batch1, onnx"):
        formats_lib.parse_formats("onnx2")


def test_scan_reports_a_damaged_onnx_file_and_accepts_a_good_one(unet_files, tmp_path):
    log_dir, model_dir = tmp_path / "logs" / "run", tmp_path / "models" / "run"
    model_dir.mkdir(parents=True)
    (model_dir / "model.onnx").write_bytes(pathlib.Path(unet_files["onnx"]).read_bytes())
    (model_dir / "model.tflite").write_bytes(pathlib.Path(unet_files["tflite"]).read_bytes())
    (model_dir / "cut.onnx").write_bytes(pathlib.Path(unet_files["onnx"]).read_bytes()[:500])
    corrupted, _ = artifact_checks.scan_run(log_dir, model_dir)
    assert [pathlib.Path(path).name for path, _ in corrupted] == ["cut.onnx"]
