import numpy as np
import pytest
import tensorflow as tf

from pipelines import augment


def image():
    rng = np.random.default_rng(0)
    return tf.constant(rng.uniform(0.1, 0.9, size=(64, 48, 1)).astype(np.float32))


@pytest.mark.parametrize("recipe", ["noise:0.05", "poisson:100", "blur:1.5", "down:2", "jpeg:20", "contrast:0.5",
                                    "down:2+noise:0.02"])
def test_degradations_are_deterministic_keep_range_and_change_the_image(recipe):
    clean = image()
    first = augment.degrade(clean, recipe, [1, 2])
    second = augment.degrade(clean, recipe, [1, 2])
    np.testing.assert_array_equal(first.numpy(), second.numpy())
    assert first.shape == clean.shape
    assert float(tf.reduce_min(first)) >= 0.0 and float(tf.reduce_max(first)) <= 1.0
    assert float(tf.reduce_mean(tf.abs(first - clean))) > 1e-3


def test_noise_seed_matters_and_sigma_is_in_range_units():
    clean = tf.fill((200, 200, 1), 0.5)
    noisy = augment.degrade(clean, "noise:0.05", [0, 0])
    assert abs(float(tf.math.reduce_std(noisy)) - 0.05) < 0.003
    assert not np.array_equal(noisy.numpy(), augment.degrade(clean, "noise:0.05", [0, 1]).numpy())


def test_blur_preserves_a_constant_image():
    clean = tf.fill((32, 32, 1), 0.3)
    np.testing.assert_allclose(augment.gaussian_blur(clean, 2.0).numpy(), 0.3, atol=1e-6)


@pytest.mark.parametrize("recipe, message", [("sharpen:2", "Unknown degradation"), ("noise:abc", "needs a number"),
                                             ("noise:-1", "positive"), ("jpeg:500", "1 to 100"), ("", "Empty")])
def test_bad_recipes(recipe, message):
    with pytest.raises(ValueError, match=message):
        augment.parse_recipe(recipe)


def test_paired_crop_and_flip_stay_aligned():
    first = image()
    second = first * 2.0
    for candidates in (1, 4):
        crop = augment.foreground_crop(tf.concat([first, second], axis=-1), 32, [3, 4], candidates, 0.5)
        np.testing.assert_allclose(crop[..., 1].numpy(), 2.0 * crop[..., 0].numpy())
    crop_a, crop_b = crop[..., :1], crop[..., 1:]
    flip_a, flip_b = augment.random_flip_pair(crop_a, crop_b, [5, 6])
    np.testing.assert_allclose(flip_b.numpy(), 2.0 * flip_a.numpy())
    assert flip_a.shape == (32, 32, 1)


def test_foreground_crops_prefer_tissue_and_are_seeded():
    mammogram = np.zeros((128, 128, 1), np.float32)
    mammogram[:, :40] = 0.6
    def share(crop):
        return float(np.mean(crop.numpy() > 0.04))

    plain = [share(augment.foreground_crop(mammogram, 32, [seed, 0])) for seed in range(24)]
    chosen = [share(augment.foreground_crop(mammogram, 32, [seed, 0], candidates=4, threshold=0.04))
              for seed in range(24)]
    assert np.mean(chosen) > np.mean(plain) + 0.2, (np.mean(chosen), np.mean(plain))
    np.testing.assert_array_equal(augment.foreground_crop(mammogram, 32, [7, 1], 4, 0.04),
                                  augment.foreground_crop(mammogram, 32, [7, 1], 4, 0.04))
    np.testing.assert_array_equal(augment.foreground_crop(mammogram, 32, [7, 1]),
                                  tf.image.stateless_random_crop(mammogram, [32, 32, 1], seed=[7, 1]))


def test_a_noise_range_draws_one_sigma_per_image_from_its_seed():
    clean = tf.fill((128, 128, 1), 0.5)
    assert augment.parse_recipe("noise:0.01-0.08") == [("noise", (0.01, 0.08))]
    sigmas = [float(tf.math.reduce_std(augment.degrade(clean, "noise:0.01-0.08", [seed, 0]))) for seed in range(12)]
    assert min(sigmas) > 0.009 and max(sigmas) < 0.082, sigmas
    assert max(sigmas) - min(sigmas) > 0.02, sigmas
    np.testing.assert_array_equal(augment.degrade(clean, "noise:0.01-0.08", [3, 0]).numpy(),
                                  augment.degrade(clean, "noise:0.01-0.08", [3, 0]).numpy())


def test_fixed_values_are_unchanged_by_the_range_syntax():
    clean = image()
    expected = tf.clip_by_value(clean + 0.05 * tf.random.stateless_normal(
        clean.shape, seed=tf.random.experimental.stateless_fold_in(tf.constant([1, 2]), 0)), 0.0, 1.0)
    np.testing.assert_allclose(augment.degrade(clean, "noise:0.05", [1, 2]).numpy(), expected.numpy(), atol=1e-7)


def test_poisson_variance_is_the_value_over_the_photons():
    clean = tf.fill((200, 200, 1), 0.4)
    low_dose = augment.degrade(clean, "poisson:100", [0, 0])
    assert abs(float(tf.math.reduce_variance(low_dose)) - 0.4 / 100) < 0.0003


@pytest.mark.parametrize("recipe, message", [("blur:1-2", "needs a number"), ("noise:0.08-0.01", "low < high"),
                                             ("noise:0-0.05", "positive"), ("down:1-2", "needs a number")])
def test_bad_ranges(recipe, message):
    with pytest.raises(ValueError, match=message):
        augment.parse_recipe(recipe)
