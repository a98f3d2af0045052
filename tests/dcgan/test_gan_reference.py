import json
import subprocess
import sys

import numpy as np
import pytest

from tf_models.dcgan import reference as gan_reference
from tests.dcgan.evaluators import train_digits_evaluator
from tests.conftest import REPO_ROOT


def test_variants_parse_and_bad_ones_are_refused():
    assert gan_reference.parse_variant("blur:0.5") == ("blur", 0.5)
    assert gan_reference.parse_variant("train") == ("train", 0.0)
    for text, message in (("sharpen:1", "Unknown variant"), ("blur:x", "needs a number"), ("noise:0", "positive"),
                          ("shift:1.5", "whole"), ("real:2", "takes no amount")):
        with pytest.raises(ValueError, match=message):
            gan_reference.parse_variant(text)


def test_the_train_variant_is_left_out_when_the_halves_are_training_images():
    assert "train" in gan_reference.default_variants("test")
    assert gan_reference.default_variants("train") == [
        variant for variant in gan_reference.DEFAULT_VARIANTS if variant != "train"]
    assert set(gan_reference.check_variants(["real", "train"], "test")) == {"real", "train"}
    with pytest.raises(ValueError, match="leave out the train variant"):
        gan_reference.check_variants(["real", "train"], "train")


def test_degradations_do_what_they_say():
    images = np.full((2, 9, 9, 1), -1.0, np.float32)
    images[:, 4, 4] = 1.0
    shifted = gan_reference.degrade(images, "shift", 2)
    assert shifted[0, 6, 6, 0] == 1.0 and shifted[0, 4, 4, 0] == -1.0
    blurred = gan_reference.degrade(images, "blur", 1.0)
    assert blurred[0, 4, 4, 0] < 1.0 and blurred[0, 4, 5, 0] > -1.0
    assert blurred[0, 4, 4, 0] > blurred[0, 4, 5, 0] > blurred[0, 4, 6, 0]
    gray = np.zeros((4, 32, 32, 1), np.float32)
    noisy = gan_reference.degrade(gray, "noise", 0.1, seed=3)
    assert abs(noisy.std() - 0.1) < 0.01
    np.testing.assert_array_equal(noisy, gan_reference.degrade(gray, "noise", 0.1, seed=3))
    np.testing.assert_array_equal(gan_reference.degrade(images, "real", 0.0), images)


@pytest.mark.slow
def test_reference_scores_grow_with_the_damage(tmp_path):
    train_digits_evaluator(tmp_path)
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "evaluate.py"), "--task", "gan-reference", "--evaluator",
         "digits28", "--data", "digits", "--image-size", "28", "--variants", "real", "train", "noise:0.5",
         "--samples", "150", "--logs-root", str(tmp_path / "logs"), "--models-root", str(tmp_path / "models")],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.loads((tmp_path / "logs" / "gan_reference" / "digits28" / "metrics.json").read_text())
    assert scores["samples"] == 150
    variants = scores["variants"]
    assert set(variants) == {"real", "train", "noise:0.5"}
    assert variants["noise:0.5"]["fcd"] > 3 * variants["real"]["fcd"]
    assert variants["noise:0.5"]["kid"] > variants["real"]["kid"]
    assert all(np.isfinite(value) for row in variants.values() for value in row.values())
    assert "| noise:0.5 |" in result.stdout

    on_train = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "evaluate.py"), "--task", "gan-reference", "--evaluator",
         "digits28", "--data", "digits", "--image-size", "28", "--real-split", "train", "--samples", "150",
         "--logs-root", str(tmp_path / "logs"), "--models-root", str(tmp_path / "models")],
        capture_output=True, text=True, timeout=600,
    )
    assert on_train.returncode == 0, on_train.stderr[-2000:]
    train_scores = json.loads((tmp_path / "logs" / "gan_reference" / "digits28-train" / "metrics.json").read_text())
    assert train_scores["real_split"] == "train"
    assert set(train_scores["variants"]) == set(gan_reference.DEFAULT_VARIANTS) - {"train"}
    assert train_scores["variants"]["real"]["fcd"] != variants["real"]["fcd"]


def test_the_table_gives_distances_as_differences_from_the_real_row():
    variants = {"real": {"realism": 0.99, "inception_score": 9.6, "fcd": 0.1, "kid": -0.005},
                "blur:1.0": {"realism": 0.9, "inception_score": 4.8, "fcd": 35.1, "kid": 0.92}}
    text = gan_reference.table({"variants": variants})
    assert "| real | 0.990 | 9.600 | 100 % | 0.100 | +0.000 | -0.0050 | +0.0000 |" in text
    assert "| blur:1.0 | 0.900 | 4.800 | 50 % | 35.100 | +35.000 | 0.9200 | +0.9250 |" in text
    assert "x |" not in text
