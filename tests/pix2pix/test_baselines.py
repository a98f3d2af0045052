import importlib

import numpy as np
import pytest
import tensorflow as tf

from pipelines import augment
from tf_models import metrics
from tf_models.pix2pix import baselines


def flat_plus_edge(size=64):
    image = np.full((size, size, 1), 0.3, np.float32)
    image[:, size // 2:] = 0.7
    return image


def degraded(recipe, seed=(4, 2)):
    return augment.degrade(tf.constant(flat_plus_edge()), recipe, seed).numpy()


def error(image):
    return metrics.image_quality(image, flat_plus_edge())["mse"]


@pytest.mark.parametrize("name, recipe", [("bm3d", "noise:0.08"), ("nlmeans", "noise:0.08"),
                                          ("bm3d-blind", "noise:0.08"), ("nlmeans-blind", "noise:0.08"),
                                          ("bm3d", "poisson:30"), ("nlmeans", "poisson:30"),
                                          ("bicubic", "down:2"), ("lanczos", "down:2")])
def test_each_baseline_lowers_the_error_of_a_noisy_flat_plus_edge_image(name, recipe):
    noisy = degraded("noise:0.08" if recipe.startswith("down") else recipe)
    restored = baselines.make_baseline(name, recipe)(noisy)
    assert restored.shape == noisy.shape and restored.dtype == np.float32
    assert 0.0 <= restored.min() and restored.max() <= 1.0
    assert error(restored) < 0.6 * error(noisy), (error(restored), error(noisy))


def test_denoisers_use_the_sigma_of_the_recipe():
    noisy = degraded("noise:0.08")
    strong = baselines.make_baseline("nlmeans", "noise:0.08")(noisy)
    weak = baselines.make_baseline("nlmeans", "noise:0.005")(noisy)
    assert error(strong) < 0.5 * error(weak)


def test_blind_sigma_estimate_is_close_to_the_truth():
    noisy = augment.degrade(tf.fill((128, 128, 1), 0.5), "noise:0.05", [0, 0]).numpy()
    assert abs(baselines.estimated_sigma(noisy[..., 0]) - 0.05) < 0.005


@pytest.mark.parametrize("name", ["bicubic", "lanczos"])
def test_resampling_by_one_is_the_identity(name):
    image = np.random.default_rng(0).uniform(0, 1, (37, 50, 1)).astype(np.float32)
    np.testing.assert_array_equal(baselines.make_baseline(name, "down:1")(image), image)


def test_bicubic_and_lanczos_differ_on_a_factor_two():
    image = degraded("down:2")
    assert not np.allclose(baselines.make_baseline("bicubic", "down:2")(image),
                           baselines.make_baseline("lanczos", "down:2")(image))


def test_exact_unbiased_inverse_anscombe_round_trip():
    rates = np.array([0.0, 0.3, 1.0, 2.5, 7.0, 40.0, 300.0, 2000.0])
    np.testing.assert_allclose(baselines.inverse_anscombe(baselines.expected_anscombe(rates)), rates,
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("rate", [1.0, 3.0])
def test_inverse_anscombe_is_unbiased_where_the_algebraic_inverse_is_not(rate):
    counts = np.random.default_rng(0).poisson(rate, 1_000_000)
    mean_transform = baselines.anscombe(counts).mean()
    assert abs(baselines.inverse_anscombe(mean_transform) - rate) < 0.01 * rate
    assert abs((mean_transform / 2.0) ** 2 - 3.0 / 8.0 - rate) > 0.05 * rate


def test_anscombe_stabilises_the_variance_to_one():
    for rate in (20.0, 200.0):
        counts = np.random.default_rng(1).poisson(rate, 200_000)
        assert abs(baselines.anscombe(counts).var() - 1.0) < 0.03


@pytest.mark.parametrize("names, recipe, message", [
    ("bm4d", "noise:0.05", "Unknown baseline 'bm4d'.*choose from bm3d, nlmeans"),
    ("bicubic", "noise:0.05", "bicubic: it undoes a single down: step.*use bm3d, nlmeans, bm3d-blind"),
    ("bm3d", "down:2", "use bicubic, lanczos"),
    ("bm3d", "down:2+noise:0.02", "one step alone"),
    ("bm3d-blind", "poisson:100", "single noise: step"),
    ("bm3d", "noise:0.01-0.08", "--noise-levels, or use bm3d-blind"),
    ("nlmeans,nlmeans", "noise:0.05", "twice"),
])
def test_bad_baselines_name_the_fix(names, recipe, message):
    with pytest.raises(ValueError, match=message):
        baselines.parse_baselines(names, recipe)


def test_a_missing_package_names_the_pip_command(monkeypatch):
    real_import = importlib.import_module

    def without_bm3d(name, *args, **kwargs):
        if name == "bm3d":
            raise ImportError("No module named 'bm3d'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", without_bm3d)
    with pytest.raises(ValueError, match=r"needs the 'bm3d' module: pip install bm3d==4\.0\.3"):
        baselines.parse_baselines("bm3d", "noise:0.05")
    assert baselines.parse_baselines("nlmeans", "noise:0.05")
