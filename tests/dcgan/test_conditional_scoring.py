"""Scoring a conditional DCGAN run: class accuracy, an external test set, the experiments table."""

import argparse
import hashlib
import importlib.util
import json

import numpy as np
import pytest

from tests.dcgan.evaluators import train_digits_evaluator
from tests.conftest import REPO_ROOT, write_idx
from tf_models.core import config as config_lib
from tf_models.core import runner, runs
from tf_models.dcgan import evaluation as gan_evaluation
from tf_models.dcgan import experiments as gan_experiments
from tf_models.dcgan import task as dcgan_task


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("conditional_scoring")
    train_digits_evaluator(root)
    config = config_lib.make_config(
        dcgan_task.DCGANConfig, data="digits", conditional=True, run_name="cond", epochs=1, steps_per_epoch=3,
        batch_size=32, generator_filters=8, discriminator_filters=8, latent_dim=16, sample_count=10, export=False,
        save_every_steps=0, logs_root=str(root / "logs"), models_root=str(root / "models"))
    result = runner.train(dcgan_task.DCGANTask(), config, verbose=0)
    runs.save_keras_model(result.model, result.paths.keras_file)
    return root


def evaluate(root, data=None):
    parser = argparse.ArgumentParser()
    gan_evaluation.add_arguments(parser)
    args = parser.parse_args(["--run", "cond", "--evaluator", "digits28", "--samples", "100", "--batch-size", "100",
                              "--logs-root", str(root / "logs"), "--models-root", str(root / "models")]
                             + (["--data", data] if data else []))
    return gan_evaluation.evaluate(args)


def folder_hashes(folder):
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_evaluation_reports_class_accuracy_per_class_with_the_evaluator_as_ceiling(scored_run):
    evaluate(scored_run)
    folder = scored_run / "logs" / "dcgan" / "cond" / "evaluation"
    result = json.loads((folder / "metrics.json").read_text())
    accuracy = result["class_accuracy"]
    assert 0.0 <= accuracy["overall"] <= 1.0 and len(accuracy["per_class"]) == 10
    assert accuracy["overall"] == pytest.approx(np.mean(accuracy["per_class"]))
    assert result["class_names"] == [str(d) for d in range(10)]
    table = (folder / "metrics.md").read_text()
    assert f"{result['evaluator_test_accuracy']:.4f} (evaluator test accuracy)" in table
    assert "| class_accuracy: 9 |" in table


def test_an_external_test_set_is_scored_apart_and_changes_no_file_of_the_run(scored_run, tmp_path):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, size=(60, 28, 28), dtype=np.uint8), np.arange(60) % 10
    external = tmp_path / "other_digits"
    write_idx(external, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", images, labels)
    write_idx(external, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", images, labels)
    evaluate(scored_run)
    run_logs, run_models = scored_run / "logs" / "dcgan" / "cond", scored_run / "models" / "dcgan" / "cond"
    before = folder_hashes(run_logs), folder_hashes(run_models)
    written = evaluate(scored_run, str(external))
    assert written[0] == run_logs / "evaluation-other_digits" / "metrics.json"
    result = json.loads(written[0].read_text())
    assert result["data"] == str(external) and result["samples"] == 30
    after = folder_hashes(run_logs), folder_hashes(run_models)
    new_files = {name for name in after[0] if name not in before[0]}
    assert new_files == {"evaluation-other_digits/metrics.json", "evaluation-other_digits/metrics.md"}
    assert {name: after[0][name] for name in before[0]} == before[0] and after[1] == before[1]


def test_the_experiments_table_adds_class_accuracy_for_conditional_rows():
    scores = dict(realism=0.8, distinct_fraction=1.0, class_entropy=2.0, inception_score=6.0, fcd=4.5, kid=0.02)
    comparison = {"evaluator": "fashion64", "evaluator_test_accuracy": 0.92, "num_classes": 10, "samples": 100,
                  "real": dict(scores, inception_score=8.0), "runs": [
                      {"label": "baseline", "run": "f-baseline", "scores": scores, "steps": 10,
                       "training_seconds": 60.0, "images_per_second": 5.0},
                      {"label": "fashion64_conditional", "run": "f-cond", "scores": scores, "steps": 10,
                       "training_seconds": 60.0, "images_per_second": 5.0,
                       "class_accuracy": {"overall": 0.812, "per_class": [0.812] * 10}}]}
    lines = gan_experiments.markdown_table(comparison).splitlines()
    assert "class accuracy" in lines[0]
    rows = {line.split("|")[1].strip().split(" ")[0]: line.split("|")[9].strip() for line in lines[2:5]}
    assert rows == {"baseline": "-", "fashion64_conditional": "0.812", "real": "0.920"}


def test_run_experiments_conditional_adds_the_conditional_preset(monkeypatch):
    spec = importlib.util.spec_from_file_location("run_experiments", REPO_ROOT / "scripts" / "run_experiments.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    calls = []
    monkeypatch.setattr(gan_experiments, "run_presets", lambda presets, *args: calls.append(presets) or [])
    script.main(["--data", "digits", "--evaluator", "e", "--conditional"])
    assert calls == [["baseline", "more_epochs", "low_lr_d", "fashion64_conditional"]]
    assert dcgan_task.PRESETS["fashion64_conditional"]["conditional"]
