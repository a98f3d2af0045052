"""Using a calibrated pneumonia run: evaluation (own split, external folders, TTA), classify.py, the app, serving."""

import hashlib
import json
import pathlib
import subprocess
import sys

import imageio.v3 as iio
import keras
import numpy as np
import pytest

from pipelines import classification
from scripts import classify as predict_script
from scripts import evaluate as evaluate_script
from tests.conftest import REPO_ROOT
from tests.pneumonia.test_pneumonia import tiny_model, write_kermany
from tf_models.app import models as app_models
from tf_models.core import export as export_lib
from tf_models.core import formats as formats_lib
from tf_models.core import runs
from tf_models.pneumonia import calibration, inference, robustness
from tf_models.pneumonia import task as pneumonia_task

RUN = "calibrated"
TEMPERATURE = 3.0


def make_run(root, data, temperature=TEMPERATURE, threshold=0.4):
    """A pneumonia run folder with a tiny model, its config and a stored calibrated decision."""
    paths = runs.RunPaths("pneumonia", RUN, root / "logs", root / "models").make_dirs()
    model = tiny_model(32)
    runs.save_keras_model(model, paths.keras_file)
    runs.write_json(paths.config_file, {"data": str(data), "image_size": 32, "validation_fraction": 0.25, "seed": 0,
                                        "threshold_policy": "youden", "temperature_scaling": True})
    pneumonia_task.store_threshold(paths, threshold, "youden", "test fixture", temperature=temperature,
                                   calibrated=True, validation_prevalence=0.5)
    return paths, model


def run_flags(root):
    return ["--run", RUN, "--logs-root", str(root / "logs"), "--models-root", str(root / "models")]


def tree_hashes(*folders, skip=()):
    hashes = {}
    for folder in folders:
        for path in sorted(pathlib.Path(folder).rglob("*")):
            if path.is_file() and not any(part in skip for part in path.parts):
                hashes[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def expected_probabilities(model, images, temperature=TEMPERATURE):
    logits = np.asarray(model(np.asarray(images, np.float32), training=False))[:, 0]
    return 1 / (1 + np.exp(-logits / temperature))


def test_stored_temperature_is_used_by_predict_the_app_and_the_saved_model(tmp_path, capsys):
    paths, model = make_run(tmp_path, tmp_path / "unused")
    films = np.random.default_rng(0).integers(0, 256, size=(3, 32, 32, 1), dtype=np.uint8)
    files = []
    for index, film in enumerate(films):
        files.append(tmp_path / f"film{index}.png")
        iio.imwrite(files[-1], film[..., 0])
    expected = expected_probabilities(model, films)
    assert np.abs(expected - expected_probabilities(model, films, 1.0)).max() > 1e-3, "the temperature must matter"

    assert predict_script.main(["--run", RUN, "--models-root", str(tmp_path / "models"), *map(str, files)]) == 0
    printed = [line.split("\t") for line in capsys.readouterr().out.splitlines() if "\t" in line]
    np.testing.assert_allclose([float(row[1]) for row in printed], expected, atol=1e-4)
    assert [row[2] for row in printed] == ["PNEUMONIA" if p >= 0.4 else "NORMAL" for p in expected]

    classifier = app_models.load_classifier(paths.keras_file)
    result = app_models.run_classify(classifier, films[0])
    assert result["probability"] == pytest.approx(expected[0], abs=1e-5)
    assert result["label"] == ("PNEUMONIA" if expected[0] >= 0.4 else "NORMAL")
    assert "Calibrated" in result["explanation"] and "50 %" in result["explanation"]

    written = export_run_files(model, paths, films)
    served = export_lib.run_saved_model(written[0], {"images": films})
    np.testing.assert_allclose(served["probability"], expected, atol=1e-5)
    np.testing.assert_array_equal(served["label"], (expected >= 0.4).astype(np.int32))
    interpreted = export_lib.run_tflite(paths.tflite_file, {"images": films})
    np.testing.assert_allclose(interpreted["probability"], expected, atol=1e-5)


def export_run_files(model, paths, films):
    """The run's SavedModel and TFLite file, through the task's serving endpoints (its stored decision)."""
    endpoints = pneumonia_task.PneumoniaTask().serving_endpoints(model, paths)
    written, _ = formats_lib.export_formats(model, endpoints, paths.model_dir, ("savedmodel", "tflite"),
                                           {"images": films})
    return written


def test_a_record_without_a_temperature_reads_as_uncalibrated(tmp_path):
    runs.write_json(tmp_path / pneumonia_task.THRESHOLD_FILE, {"threshold": 0.7, "policy": "youden", "chosen_on": "x"})
    record = pneumonia_task.load_threshold(tmp_path)
    assert record["temperature"] == 1.0 and not record["calibrated"] and record["threshold"] == 0.7


def test_own_evaluation_fits_and_stores_the_decision_with_the_policy(tmp_path, capsys):
    data = write_kermany(tmp_path / "xray")
    paths, model = make_run(tmp_path, data, temperature=1.0, threshold=0.5)
    assert evaluate_script.main(["--task", "pneumonia", *run_flags(tmp_path),
                                 "--threshold-policy", "sensitivity:0.95", "--grad-cam-count", "2"]) == 0
    report = json.loads((paths.log_dir / "evaluation" / "metrics.json").read_text())
    stored = pneumonia_task.load_threshold(paths.model_dir)
    assert stored["policy"] == "sensitivity:0.95" and stored["calibrated"]
    assert stored["threshold"] == report["decision"]["threshold"] and stored["temperature"] == report["decision"]["temperature"]
    assert report["validation"]["sensitivity"] >= 0.95 and report["threshold"] == stored["threshold"]
    assert report["test"]["ece"] == report["calibration"]["test"]["calibrated"]["ece"]
    assert set(report["policies"]) == set(calibration.THRESHOLD_POLICIES)
    for split in ("validation", "test"):
        scores = report["calibration"][split]
        assert set(scores) == {"uncalibrated", "calibrated"} and 0 <= scores["calibrated"]["ece"] <= 1
    assert report["calibration"]["validation"]["calibrated"]["nll"] <= report["calibration"]["validation"]["uncalibrated"]["nll"] + 1e-9
    for figure in ("reliability.png", "confusion_matrix.png", "roc_curve.png", "grad_cam.png"):
        assert (paths.log_dir / "evaluation" / figure).is_file()
    assert set(report["film_changes"]) == set(robustness.FILM_CHANGES)
    assert report["film_changes"]["none"]["roc_auc"] == report["validation"]["roc_auc"]
    output = capsys.readouterr().out
    assert "ECE before" in output and "specificity:0.95" in output and "zoom in 15 %" in output


@pytest.mark.parametrize("layout", ["kermany", "flat"])
def test_external_evaluation_leaves_the_run_unchanged(tmp_path, layout):
    paths, model = make_run(tmp_path, write_kermany(tmp_path / "xray"))
    external = write_kermany(tmp_path / "other-hospital", per_class=5)
    if layout == "flat":
        external = external / "test"
    export_run_files(model, paths, np.zeros((2, 32, 32, 1), np.uint8))
    before = tree_hashes(paths.log_dir, paths.model_dir)
    assert evaluate_script.main(["--task", "pneumonia", *run_flags(tmp_path), "--data", str(external),
                                 "--grad-cam-count", "2"]) == 0
    output_dir = paths.log_dir / f"evaluation-{external.name}"
    assert tree_hashes(paths.log_dir, paths.model_dir, skip=(output_dir.name,)) == before
    report = json.loads((output_dir / "metrics.json").read_text())
    assert report["examples"] == 10 and report["external"]["count"] == 10
    assert report["decision"]["threshold"] == 0.4 and report["decision"]["temperature"] == TEMPERATURE
    images = np.concatenate([np.asarray(batch) for batch, _ in classification.pneumonia_test_folder(
        external, 32, 16)[0]])
    probabilities = expected_probabilities(model, images)
    labels = np.repeat([0, 1], 5)
    expected = calibration.binary_metrics(labels, probabilities, 0.4)
    assert report["external"]["accuracy"] == pytest.approx(expected["accuracy"])
    assert report["calibration"]["external"]["calibrated"]["brier"] == pytest.approx(
        calibration.brier_score(labels, probabilities), abs=1e-6)
    assert (output_dir / "reliability.png").is_file()


def test_external_folder_without_classes_is_explained(tmp_path):
    make_run(tmp_path, write_kermany(tmp_path / "xray"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="class"):
        evaluate_script.main(["--task", "pneumonia", *run_flags(tmp_path), "--data", str(tmp_path / "empty")])
    with pytest.raises(ValueError, match="folder not found"):
        evaluate_script.main(["--task", "pneumonia", *run_flags(tmp_path), "--data", str(tmp_path / "missing")])


def test_flip_tta_of_a_flip_invariant_model_equals_no_tta():
    images = np.random.default_rng(0).uniform(0, 255, size=(4, 16, 16, 1)).astype(np.float32)
    invariant = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1)])
    np.testing.assert_allclose(inference.predict_logits(invariant, images, tta=True),
                               inference.predict_logits(invariant, images), atol=1e-5)
    asymmetric = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    mirrored = inference.predict_logits(asymmetric, images[:, :, ::-1])
    np.testing.assert_allclose(inference.predict_logits(asymmetric, images, tta=True),
                               (inference.predict_logits(asymmetric, images) + mirrored) / 2, atol=1e-5)
    assert np.abs(mirrored - inference.predict_logits(asymmetric, images)).max() > 1e-3


def test_the_former_script_name_still_runs_the_classifier(tmp_path):
    result = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "predict.py"), "--help"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--threshold" in result.stdout and "scripts/classify.py" in result.stderr
