"""U-Net inference: horizontal-flip test-time augmentation."""

import keras
import numpy as np

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
