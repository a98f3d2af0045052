import warnings

import numpy as np
import pytest

from tf_models import metrics


def one_hot(labels, num_classes=10):
    return np.eye(num_classes)[np.asarray(labels)]


def gaussian_features(samples=2000, dimensions=8, seed=0):
    return np.random.default_rng(seed).normal(size=(samples, dimensions))


def test_realism_of_one_hot_is_one_and_of_uniform_is_one_over_classes():
    assert metrics.realism(one_hot([3, 1, 4, 1, 5])) == pytest.approx(1.0)
    assert metrics.realism(np.full((6, 4), 0.25)) == pytest.approx(0.25)
    assert metrics.realism([[0.7, 0.3], [0.2, 0.8]]) == pytest.approx(0.75)


def test_diversity_of_a_one_class_generator():
    result = metrics.diversity(one_hot([7] * 50), num_classes=10)
    assert result["distinct_fraction"] == pytest.approx(0.1)
    assert result["class_entropy"] == pytest.approx(0.0)


def test_diversity_of_every_class_equally_often():
    result = metrics.diversity(one_hot(np.arange(100) % 10), num_classes=10)
    assert result["distinct_fraction"] == pytest.approx(1.0)
    assert result["class_entropy"] == pytest.approx(np.log(10))


def test_diversity_entropy_by_hand():
    result = metrics.diversity(one_hot([0, 0, 0, 1], num_classes=3), num_classes=3)
    assert result["distinct_fraction"] == pytest.approx(2 / 3)
    assert result["class_entropy"] == pytest.approx(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))


def test_diversity_refuses_more_columns_than_classes():
    with pytest.raises(ValueError, match="num_classes"):
        metrics.diversity(one_hot([1, 2]), num_classes=5)


def test_inception_score_of_uniform_predictions_is_one():
    assert metrics.inception_score(np.full((20, 10), 0.1)) == pytest.approx(1.0)


def test_inception_score_of_confident_predictions_uniform_over_classes_is_num_classes():
    assert metrics.inception_score(one_hot(np.arange(100) % 10)) == pytest.approx(10.0, rel=1e-9)


def test_inception_score_of_one_confident_class_is_one():
    assert metrics.inception_score(one_hot([4] * 30)) == pytest.approx(1.0)


def test_inputs_are_validated():
    with pytest.raises(ValueError, match="shape"):
        metrics.realism(np.ones(5))
    with pytest.raises(ValueError, match="NaN"):
        metrics.inception_score([[np.nan, 1.0]])
    with pytest.raises(ValueError, match="features_b has 3"):
        metrics.frechet_distance(np.ones((5, 2)), np.ones((5, 3)))


def test_frechet_distance_of_identical_sets_is_zero():
    features = gaussian_features()
    assert metrics.frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_of_shifted_gaussians_is_the_squared_shift():
    features = gaussian_features()
    shift = np.array([1.0, -2.0, 0.5, 0.0, 0.0, 3.0, 0.0, 1.0])
    expected = float(np.sum(shift**2))
    assert metrics.frechet_distance(features, features + shift) == pytest.approx(expected, abs=1e-6)
    independent = gaussian_features(seed=1) + shift
    assert metrics.frechet_distance(features, independent) == pytest.approx(expected, rel=0.05)


def test_frechet_distance_by_hand_in_one_dimension():
    # means 1 and 2, variances 2 and 8: 1 + 2 + 8 - 2 * sqrt(16) = 3.
    assert metrics.frechet_distance([[0.0], [2.0]], [[0.0], [4.0]]) == pytest.approx(3.0)


def test_frechet_distance_warns_with_fewer_samples_than_features():
    features = gaussian_features(samples=5, dimensions=12)
    with pytest.warns(UserWarning, match="5 samples but 12 features"):
        distance = metrics.frechet_distance(features, gaussian_features(samples=50, dimensions=12, seed=1))
    assert np.isfinite(distance)


def test_frechet_distance_is_silent_with_enough_samples():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics.frechet_distance(gaussian_features(samples=20, dimensions=4), gaussian_features(20, 4, seed=1))


def test_kernel_distance_by_hand():
    # k(x, y) = (x y + 1)^3 with d = 1:
    # within a: k(0, 1) = 1; within b: k(2, 3) = 343; across: (1 + 1 + 27 + 64) / 4.
    result = metrics.kernel_inception_distance([[0.0], [1.0]], [[2.0], [3.0]], subsets=3)
    assert result["mean"] == pytest.approx(1.0 + 343.0 - 2 * 93.0 / 4)
    assert result["std"] == pytest.approx(0.0)
    assert result["subset_size"] == 2


def test_kernel_distance_of_identical_sets_is_near_zero():
    features = gaussian_features(samples=1000)
    result = metrics.kernel_inception_distance(features, features, subset_size=1000, subsets=2)
    kernel = metrics.polynomial_kernel(features, features)
    off_diagonal_mean = (kernel.sum() - np.trace(kernel)) / (1000 * 999)
    expected = 2.0 * (off_diagonal_mean - np.mean(np.diag(kernel))) / 1000
    assert result["mean"] == pytest.approx(expected, abs=1e-9)
    assert abs(result["mean"]) < 0.02


def test_kernel_distance_separates_shifted_from_same_distribution():
    features = gaussian_features()
    same = metrics.kernel_inception_distance(features, gaussian_features(seed=1), subset_size=500)
    shifted = metrics.kernel_inception_distance(features, gaussian_features(seed=1) + 1.0, subset_size=500)
    assert abs(same["mean"]) < 3 * same["std"] + 0.01
    assert shifted["mean"] > 1.0
    assert shifted["subset_size"] == 500


def test_kernel_distance_is_reproducible_and_validated():
    features_a, features_b = gaussian_features(300), gaussian_features(300, seed=2)
    first = metrics.kernel_inception_distance(features_a, features_b, subset_size=100, seed=5)
    assert first == metrics.kernel_inception_distance(features_a, features_b, subset_size=100, seed=5)
    with pytest.raises(ValueError, match="at least 2"):
        metrics.kernel_inception_distance(features_a[:1], features_b)


# ---------------------------------------------------------------- image quality


def test_image_quality_of_identical_images():
    image = np.random.default_rng(0).uniform(size=(32, 40, 1))
    scores = metrics.image_quality(image, image)
    assert scores == {"mse": 0.0, "psnr": metrics.PSNR_CAP_DB, "ssim": pytest.approx(1.0)}


def test_image_quality_matches_tensorflow():
    import tensorflow as tf

    rng = np.random.default_rng(1)
    target = rng.uniform(size=(48, 40, 1)).astype(np.float32)
    prediction = np.clip(target + rng.normal(0, 0.1, size=target.shape), 0, 1).astype(np.float32)
    scores = metrics.image_quality(prediction, target)
    assert scores["psnr"] == pytest.approx(float(tf.image.psnr(prediction, target, 1.0)), abs=1e-4)
    assert scores["ssim"] == pytest.approx(float(tf.image.ssim(prediction, target, 1.0)), abs=1e-5)
    assert scores["mse"] == pytest.approx(float(np.mean((prediction - target) ** 2)))


def test_image_quality_inside_a_mask_ignores_the_outside():
    target = np.zeros((40, 40, 1))
    prediction = target.copy()
    prediction[:, 20:] = 0.5
    mask = np.zeros((40, 40))
    mask[:, :20] = 1
    inside = metrics.image_quality(prediction, target, mask=mask)
    assert inside["mse"] == 0.0 and inside["psnr"] == metrics.PSNR_CAP_DB
    assert metrics.image_quality(prediction, target)["mse"] == pytest.approx(0.125)
    with pytest.raises(ValueError, match="empty"):
        metrics.image_quality(prediction, target, mask=np.zeros((40, 40)))
