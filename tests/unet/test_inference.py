"""U-Net inference: horizontal-flip test-time augmentation and the upsampling of probabilities."""

import keras
import numpy as np
import pytest

from tf_models.unet import inference as unet_inference


def one_conv_model(kernel):
    """A one-layer segmentation model: a 3x3 convolution with the given kernel, no bias."""
    inputs = keras.Input((16, 24, 1))
    outputs = keras.layers.Conv2D(1, 3, padding="same", use_bias=False,
                                  kernel_initializer=keras.initializers.Constant(kernel))(inputs)
    return keras.Model(inputs, outputs)


def test_tta_of_a_flip_equivariant_model_equals_no_tta():
    images = np.random.default_rng(0).uniform(0, 1, size=(3, 16, 24, 1)).astype(np.float32)
    mirror_symmetric = np.array([[1.0, -2.0, 1.0], [0.5, 3.0, 0.5], [-1.0, 0.0, -1.0]], np.float32)
    equivariant = one_conv_model(mirror_symmetric.reshape(3, 3, 1, 1))
    np.testing.assert_allclose(unet_inference.predict_probabilities(equivariant, images, tta=True),
                               unet_inference.predict_probabilities(equivariant, images), atol=1e-6)


def test_tta_averages_with_the_mirrored_prediction_flipped_back():
    images = np.random.default_rng(1).uniform(0, 1, size=(2, 16, 24, 1)).astype(np.float32)
    one_sided = np.array([[0.0, 0.0, 2.0], [0.0, 0.0, 3.0], [0.0, 0.0, -1.0]], np.float32)
    model = one_conv_model(one_sided.reshape(3, 3, 1, 1))
    plain = unet_inference.predict_probabilities(model, images)
    mirrored = unet_inference.predict_probabilities(model, images[:, :, ::-1])[:, :, ::-1]
    assert np.abs(plain - mirrored).max() > 1e-2
    np.testing.assert_allclose(unet_inference.predict_probabilities(model, images, tta=True),
                               (plain + mirrored) / 2, atol=1e-6)
    originals = [np.round(image * 255).astype(np.uint8) for image in images]
    (small, large), _ = unet_inference.predict_images(model, originals, tta=True)
    assert small.shape == (16, 24) and large.shape == (16, 24)


def disk_scene(size=96, radius=30):
    """A bright disk on a dark floor at full resolution, its mask, and the mask's blurred quarter-size probability."""
    rows, columns = np.mgrid[:size, :size]
    mask = ((rows - size / 2 + 3.3) ** 2 + (columns - size / 2 + 1.7) ** 2 <= radius**2).astype(np.float32)
    image = np.round(40 + 170 * mask + np.random.default_rng(2).normal(0, 4, mask.shape)).clip(0, 255).astype(np.uint8)
    coarse = mask.reshape(size // 4, 4, size // 4, 4).mean(axis=(1, 3))
    coarse = np.clip(coarse, 0.02, 0.98)
    return image[..., None], mask, coarse


def dice(mask, probability):
    predicted = probability >= 0.5
    return 2 * np.sum(predicted * mask) / (np.sum(predicted) + np.sum(mask))


def test_guided_upsampling_moves_a_coarse_edge_onto_the_image_edge():
    image, mask, coarse = disk_scene()
    bilinear = unet_inference.to_original_size(coarse, image.shape)
    guided = unet_inference.to_original_size(coarse, image.shape, "guided", image)
    assert guided.shape == bilinear.shape == mask.shape
    assert 0.0 <= guided.min() and guided.max() <= 1.0
    assert np.mean((guided >= 0.5) != mask) < 0.5 * np.mean((bilinear >= 0.5) != mask)
    assert dice(mask, guided) > dice(mask, bilinear)


def test_logit_bicubic_upsampling_keeps_a_constant_and_the_sides_of_one_half():
    constant = np.full((8, 12), 0.3, np.float32)
    np.testing.assert_allclose(unet_inference.to_original_size(constant, (16, 24, 3), "logit-bicubic"), 0.3, atol=1e-5)
    half = np.where(np.arange(12) < 6, 0.05, 0.95).astype(np.float32) * np.ones((8, 1), np.float32)
    upsampled = unet_inference.to_original_size(half, (16, 24, 3), "logit-bicubic")
    assert np.all(upsampled[:, :10] < 0.5) and np.all(upsampled[:, 14:] > 0.5)


def test_an_unknown_upsampling_or_guided_without_an_image_is_refused():
    coarse = np.full((4, 4), 0.5, np.float32)
    with pytest.raises(ValueError, match="Unknown upsampling 'nearest'"):
        unet_inference.to_original_size(coarse, (8, 8, 1), "nearest")
    with pytest.raises(ValueError, match="needs the original image"):
        unet_inference.to_original_size(coarse, (8, 8, 1), "guided")


def test_the_guide_of_a_colour_image_is_its_grey_level():
    grey = np.random.default_rng(3).integers(0, 256, (6, 8), dtype=np.uint8)
    np.testing.assert_allclose(unet_inference.luminance(np.repeat(grey[..., None], 3, axis=-1)), grey / 255.0,
                               atol=2e-4)  # TF's BT.601 weights sum to 0.9999
    np.testing.assert_allclose(unet_inference.luminance(grey[..., None]), grey / 255.0, atol=1e-7)
