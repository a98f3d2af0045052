import json
import shutil
import subprocess

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf

from scripts import export as export_script
from scripts import serving_request
from tf_models.core import export, runner, runs
from tf_models.core import formats as formats_lib
from tf_models.tools import bench
from tf_models import registry
from tests.conftest import REPO_ROOT
from tests.deployment_fixtures import tiny_overrides

IMAGE_TASKS = ("pix2pix", "unet", "pneumonia")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each task's tiny (untrained) model exported to every format."""
    root = tmp_path_factory.mktemp("deployment")
    overrides = tiny_overrides(root)
    results = {}
    for name in registry.names():
        task, config = bench.make_config(name, overrides[name])
        model = task.build_model(config, task.build_data(config))
        paths = runs.RunPaths(name, "tiny", root / "logs", root / "models").make_dirs()
        written, report = formats_lib.export_task(task, model, config, paths, formats_lib.FORMATS, None, 8, 4)
        results[name] = dict(task=task, model=model, config=config, paths=paths, written=written, report=report)
    return results


@pytest.mark.parametrize("name", sorted(registry.names()))
def test_every_format_loads_back_and_agrees_with_keras(exported, name):
    entry = exported[name]
    task, paths, report = entry["task"], entry["paths"], entry["report"]
    assert set(report["formats"]) == set(formats_lib.FORMATS)
    inputs, _ = task.deployment_examples(entry["model"], entry["config"], "validation", 3)
    function, signature = task.serving_endpoints(entry["model"], paths)["serving_default"]
    expected = export.call_endpoint(tf.function(function), signature, inputs)
    runners = {name: formats_lib.format_runner(name, entry["path"]) for name, entry in report["formats"].items()}
    for format_name, run in runners.items():
        outputs = run(inputs)
        assert set(outputs) == set(expected), format_name
        for key, value in expected.items():
            assert np.asarray(outputs[key]).shape == value.shape, (format_name, key)
    for format_name in ("tflite", "onnx"):
        float_outputs = runners[format_name](inputs)
        for key, value in expected.items():
            assert float_outputs[key].dtype == value.dtype, (format_name, key)
            step = 1.0 if value.dtype == np.uint8 else 1e-4
            assert np.max(np.abs(float_outputs[key].astype(np.float64) - value)) <= step, (format_name, key)
    sizes = {name: entry["size_bytes"] for name, entry in report["formats"].items()}
    assert sizes["tflite-int8"] < sizes["tflite"] and sizes["tflite-dynamic"] < sizes["tflite"]
    assert json.loads((paths.model_dir / "export_formats.json").read_text())["formats"].keys() == sizes.keys()


def test_a_generator_is_scored_by_its_fidelity_to_the_keras_images(exported):
    report = exported["dcgan"]["report"]
    assert report["keras_score"]["ssim_to_keras"] == pytest.approx(1.0)
    assert report["formats"]["onnx"]["score"]["ssim_to_keras"] > 0.999
    assert report["fastest_within_tolerance"]["format"] is not None


def test_the_fixed_shape_int8_enhancer_stays_close_to_keras(exported):
    """Its head in int8 once rounded every pixel to black or white (131 grey levels off)."""
    entry = exported["pix2pix"]["report"]["formats"]["tflite-int8-batch1"]
    assert entry["float32_nodes"], "the head after the last convolution is kept in float32"
    assert entry["max_abs_vs_keras"]["enhanced"] <= 32
    assert abs(entry["score_drop"]["psnr"]) < 1.0


@pytest.mark.parametrize("name", sorted(registry.names()))
def test_every_tflite_file_has_a_per_op_profile(exported, name):
    for format_name, entry in exported[name]["report"]["formats"].items():
        if format_name in formats_lib.TFLITE_FORMATS or format_name in formats_lib.STATIC_TFLITE_FORMATS:
            profile = entry["op_profile"]
            assert {op: value["count"] for op, value in profile["ops"].items()} == entry["ops"], format_name
            assert profile["sum_ms"] > 0 and profile["slowest"]


def test_the_standardisation_of_the_int8_classifier_runs_in_float(exported):
    entry = exported["pneumonia"]["report"]["formats"]["tflite-int8"]
    assert "DIV" in entry["float32_ops"]
    assert entry["op_profile"]["ops"]["DIV"]["dtypes"] == ["FLOAT32"]
    assert entry["full_integer_batch1_latency_ms"] > 0


@pytest.mark.parametrize("name", IMAGE_TASKS)
def test_serving_default_takes_uint8_images(exported, name):
    specs = export.signature_inputs(exported[name]["paths"].serving_dir / "1")
    (spec,) = specs.values()
    assert spec.dtype == tf.uint8 and spec.shape.rank == 4


@pytest.mark.parametrize("format_name", ["tflite-int8", "onnx"])
def test_report_scores_the_task_metric_before_and_after(exported, format_name):
    for name, metric in (("unet", "dice"), ("pneumonia", "accuracy"), ("pix2pix", "psnr"), ("dcgan", "ssim_to_keras")):
        report = exported[name]["report"]
        entry = report["formats"][format_name]
        assert metric in report["keras_score"] and metric in entry["score"]
        assert entry["score_drop"][metric] == pytest.approx(report["keras_score"][metric] - entry["score"][metric])
        assert entry["batch1_latency_ms"] > 0 and entry["size_bytes"] > 0


@pytest.mark.parametrize("name", ["unet", "pneumonia"])
def test_saved_model_cli_lists_the_uint8_signature(exported, name):
    cli = shutil.which("saved_model_cli", path=str(REPO_ROOT / ".venv" / "bin")) or shutil.which("saved_model_cli")
    if cli is None:
        pytest.fail("saved_model_cli is not installed; it comes with tensorflow")
    output = subprocess.run(
        [cli, "show", "--dir", str(exported[name]["paths"].serving_dir / "1"), "--tag_set", "serve",
         "--signature_def", "serving_default"], capture_output=True, text=True, check=True,
    ).stdout
    assert "inputs['images']" in output and "DT_UINT8" in output


@pytest.mark.parametrize("name", sorted(registry.names()))
def test_request_body_runs_through_the_loaded_saved_model(exported, name, tmp_path):
    serving_dir = exported[name]["paths"].serving_dir / "1"
    specs = export.signature_inputs(serving_dir)
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / "photo.png", image)
    inputs = serving_request.build_inputs(specs, [tmp_path / "photo.png"] * 2, count=2, seed=3)
    body = json.loads(json.dumps(export.rest_request(inputs)))
    assert body["signature_name"] == "serving_default"
    signature = tf.saved_model.load(str(serving_dir)).signatures["serving_default"]
    arguments = {key: tf.constant(value, dtype=specs[key].dtype) for key, value in body["inputs"].items()}
    outputs = signature(**arguments)
    assert all(value.shape[0] == 2 for value in outputs.values())
    if name in ("unet", "pneumonia"):
        height, width = specs["images"].shape[1:3]
        assert np.asarray(body["inputs"]["images"]).shape == (2, height, width, specs["images"].shape[3])


def test_export_script_reads_a_checkpoint_or_model_keras(tmp_path):
    overrides = tiny_overrides(tmp_path)["unet"]
    roots = dict(logs_root=str(tmp_path / "logs"), models_root=str(tmp_path / "models"))
    task, config = bench.make_config("unet", {**overrides, **roots, "run_name": "tiny", "epochs": 1,
                                              "steps_per_epoch": 2, "save_every_steps": 0})
    result = runner.train(task, config, verbose=0)
    flags = ["--run", "unet/tiny", "--logs-root", roots["logs_root"], "--models-root", roots["models_root"],
             "--examples", "4", "--calibration-examples", "2"]
    assert export_script.main(flags + ["--formats", "savedmodel,tflite-int8", "--version", "7"]) == 0
    model_dir = result.paths.model_dir
    assert (model_dir / "serving" / "7" / "saved_model.pb").is_file() and (model_dir / "model_int8.tflite").is_file()
    runs.save_keras_model(result.model, result.paths.keras_file)
    assert export_script.main(flags + ["--formats", "savedmodel"]) == 0
    served = export.run_saved_model(model_dir / "serving" / "8", {"images": np.zeros((1, 32, 48, 1), np.uint8)})
    expected = export.run_saved_model(model_dir / "serving" / "7", {"images": np.zeros((1, 32, 48, 1), np.uint8)})
    np.testing.assert_allclose(served["mask_probability"], expected["mask_probability"], atol=1e-6)
    with pytest.raises(ValueError, match="TASK/RUN"):
        export_script.main(["--run", "tiny"])


def test_the_batch1_int8_format_alone_is_calibrated_on_training_images(tmp_path):
    task, config = bench.make_config("pneumonia", tiny_overrides(tmp_path)["pneumonia"])
    model = task.build_model(config, task.build_data(config))
    paths = runs.RunPaths("pneumonia", "tiny", tmp_path / "logs", tmp_path / "models").make_dirs()
    written, report = formats_lib.export_task(task, model, config, paths, ("tflite-int8-batch1",), None, 4, 2)
    assert report["calibration_examples"] == 2 and (paths.model_dir / "model_int8_batch1.tflite") in written
    assert report["formats"]["tflite-int8-batch1"]["ops"].get("QUANTIZE")


def test_pix2pix_export_report_tells_the_enhancer_its_tile_size(exported):
    from tf_models.pix2pix import inference as pix2pix_inference

    entry = exported["pix2pix"]
    assert entry["report"]["tile_size"] == entry["config"].image_size
    enhancer = pix2pix_inference.load_enhancer(entry["paths"].serving_dir / "1")
    assert (enhancer.tile_size, enhancer.size_multiple) == (entry["config"].image_size,
                                                           2**entry["config"].generator_depth)
