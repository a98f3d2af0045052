import json
import subprocess
import sys

import numpy as np
import pytest

from pipelines import sources
from tf_models.core import config as config_lib
from tf_models.core import runner
from tf_models.dcgan import task as dcgan_task
from tf_models.dcgan import evaluation as gan_evaluation
from tests.dcgan.evaluators import train_digits_evaluator
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("gan_eval")
    train_digits_evaluator(root)
    config = config_lib.make_config(
        dcgan_task.DCGANConfig, data="digits", run_name="gan", epochs=1, steps_per_epoch=5, batch_size=32,
        generator_filters=8, discriminator_filters=8, latent_dim=16, sample_count=4, export=True,
        logs_root=str(root / "logs"), models_root=str(root / "models"),
    )
    runner.train(dcgan_task.DCGANTask(), config, verbose=0)
    return root


def evaluate(root, *extra):
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "evaluate.py"), "--task", "gan", "--run", "gan",
         "--logs-root", str(root / "logs"), "--models-root", str(root / "models"), *extra],
        capture_output=True, text=True, timeout=600,
    )


def test_evaluate_writes_generated_and_real_scores(trained):
    result = evaluate(trained, "--evaluator", "digits28", "--samples", "100", "--batch-size", "50")
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.loads((trained / "logs" / "dcgan" / "gan" / "evaluation" / "metrics.json").read_text())
    assert scores["samples"] == 100
    for side in ("generated", "real"):
        assert set(scores[side]) == set(gan_evaluation.SCORE_KEYS)
        assert all(np.isfinite(value) for value in scores[side].values())
    assert scores["real"]["inception_score"] > scores["generated"]["inception_score"]
    assert scores["real"]["fcd"] < scores["generated"]["fcd"]
    assert "| inception_score |" in result.stdout


def test_an_evaluator_for_other_images_is_refused(trained):
    card_file = trained / "models" / "evaluator" / "digits28" / "card.json"
    card = json.loads(card_file.read_text())
    other = trained / "models" / "evaluator" / "other"
    other.mkdir(exist_ok=True)
    (other / "model.keras").write_bytes((card_file.parent / "model.keras").read_bytes())
    (other / "card.json").write_text(json.dumps({**card, "image_size": 32}))
    result = evaluate(trained, "--evaluator", "other", "--samples", "20")
    assert result.returncode != 0 and "image_size 32" in result.stderr


def test_training_logs_quality_scores_every_epoch(trained):
    config = config_lib.make_config(
        dcgan_task.DCGANConfig, data="digits", run_name="watched", epochs=2, steps_per_epoch=3, batch_size=32,
        generator_filters=8, discriminator_filters=8, latent_dim=16, sample_count=4, export=False,
        evaluator="digits28", evaluation_samples=50,
        logs_root=str(trained / "logs"), models_root=str(trained / "models"),
    )
    result = runner.train(dcgan_task.DCGANTask(), config, verbose=0)
    assert len(result.history["quality_inception_score"]) == 2
    assert list((result.paths.log_dir / "quality").glob("events.out.tfevents.*"))
    history = (result.paths.log_dir / "history.csv").read_text().splitlines()[0]
    assert "quality_fcd" in history


def test_truncated_latents_stay_inside_the_bound_and_zero_keeps_the_normal():
    latent = gan_evaluation.sample_latent(np.random.default_rng(1), 2000, 8, truncation=0.5)
    assert latent.shape == (2000, 8) and latent.dtype == np.float32
    assert np.abs(latent).max() <= 0.5
    # A standard normal truncated at +-0.5 has standard deviation 0.2839.
    assert abs(latent.std() - 0.2839) < 0.01
    np.testing.assert_array_equal(gan_evaluation.sample_latent(np.random.default_rng(1), 5, 3),
                                  np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32))
    with pytest.raises(ValueError, match="--truncation"):
        gan_evaluation.sample_latent(np.random.default_rng(0), 1, 1, truncation=-1.0)


def test_truncation_is_scored_apart(trained):
    result = evaluate(trained, "--evaluator", "digits28", "--samples", "100", "--batch-size", "50",
                      "--truncation", "0.5")
    assert result.returncode == 0, result.stderr[-2000:]
    run_dir = trained / "logs" / "dcgan" / "gan"
    truncated = json.loads((run_dir / "evaluation-truncation-0.5" / "metrics.json").read_text())
    assert truncated["truncation"] == 0.5
    refused = evaluate(trained, "--evaluator", "digits28", "--truncation", "-2")
    assert refused.returncode != 0 and "--truncation" in refused.stderr


def test_real_training_images_as_many_as_the_test_split():
    test = gan_evaluation.real_images("digits", 1)
    train = gan_evaluation.real_images("digits", 1, real_split="train")
    assert train.num_examples == test.num_examples == 360
    all_train = np.stack([image.numpy() for image, _ in sources.load("digits", "train").dataset])
    drawn = np.stack([image.numpy() for image, _ in train.dataset])
    assert len(drawn) == 360
    assert all((all_train == image).all(axis=(1, 2, 3)).any() for image in drawn[:20])
    with pytest.raises(ValueError, match="--real-split"):
        gan_evaluation.real_images("digits", 1, real_split="validation")


def test_scores_against_training_images_go_to_their_own_folder(trained):
    run_dir = trained / "logs" / "dcgan" / "gan"
    result = evaluate(trained, "--evaluator", "digits28", "--samples", "100", "--batch-size", "50")
    assert result.returncode == 0, result.stderr[-2000:]
    on_test = (run_dir / "evaluation" / "metrics.json").read_text()
    result = evaluate(trained, "--evaluator", "digits28", "--samples", "100", "--batch-size", "50",
                      "--real-split", "train")
    assert result.returncode == 0, result.stderr[-2000:]
    on_train = json.loads((run_dir / "evaluation-train" / "metrics.json").read_text())
    assert on_train["real_split"] == "train" and on_train["samples"] == 100
    assert on_train["real"]["fcd"] != json.loads(on_test)["real"]["fcd"]
    assert (run_dir / "evaluation" / "metrics.json").read_text() == on_test
