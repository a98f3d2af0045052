import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_models.pix2pix import inference as pix2pix_inference


def test_tiled_enhancement_equals_whole_image_for_a_local_model():
    """A model whose output depends only on nearby pixels gives the same result tiled or whole."""
    inputs = keras.Input((None, None, 1))
    local = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same", kernel_initializer="ones")(inputs) / 9.0)
    image = tf.random.uniform((100, 75, 1), -1, 1, seed=3)
    tiled = pix2pix_inference.enhance_tiled(local, image, tile=32, overlap=6)
    whole = local(tf.pad(image, [[0, 0], [0, 0], [0, 0]])[None])[0]
    np.testing.assert_allclose(tiled.numpy()[2:-2, 2:-2], whole.numpy()[2:-2, 2:-2], atol=1e-5)
    assert tiled.shape == image.shape


def test_enhancer_tiles_at_its_training_size_unless_asked_for_the_whole_image():
    """A model whose output depends on the whole input's statistics (as instance norm does) sees only a tile."""
    def signature(image):
        return {"enhanced": image - tf.reduce_mean(image, axis=[1, 2, 3], keepdims=True) + 0.5}

    enhancer = pix2pix_inference.Enhancer(signature, size_multiple=8, tile_size=32)
    image = np.zeros((64, 64, 1), np.float32)
    image[:, 32:] = 0.8
    whole = enhancer.enhance(image, tile=0)
    np.testing.assert_allclose(whole, np.clip(image - 0.4 + 0.5, 0, 1), atol=1e-6)
    tiled = enhancer.enhance(image)
    np.testing.assert_allclose(tiled[:20, :20], 0.5, atol=1e-6)
    assert not np.allclose(tiled, whole)


def test_tiling_arguments_are_checked():
    with pytest.raises(ValueError, match="multiple of 8"):
        pix2pix_inference.enhance_tiled(None, tf.zeros((40, 40, 1)), tile=30, overlap=4, size_multiple=8)
    with pytest.raises(ValueError, match="overlap"):
        pix2pix_inference.enhance_tiled(None, tf.zeros((40, 40, 1)), tile=32, overlap=20)


def test_self_ensemble_averages_the_eight_flips_and_rotations_turned_back():
    image = np.random.default_rng(0).uniform(0, 1, (16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(pix2pix_inference.flip_rotation_average(lambda view: view, image), image, atol=1e-6)
    ramp = np.linspace(0.0, 1.0, 16, dtype=np.float32)[None, :, None] * np.ones((16, 1, 1), np.float32)
    views = []
    averaged = pix2pix_inference.flip_rotation_average(lambda view: views.append(view) or view * ramp, image)
    assert len(views) == 8 and len({view.tobytes() for view in views}) == 8
    symmetric_ramp = np.mean([inverse(ramp) for _, inverse in pix2pix_inference.dihedral_transforms()], axis=0)
    np.testing.assert_allclose(averaged, image * symmetric_ramp, atol=1e-6)
    for forward, inverse in pix2pix_inference.dihedral_transforms():
        np.testing.assert_array_equal(inverse(forward(image)), image)


def test_enhancer_self_ensemble_is_exact_for_an_equivariant_model_and_differs_otherwise():
    def blur(image):
        return {"enhanced": tf.nn.avg_pool2d(image, 3, 1, "SAME")}

    def shift(image):
        return {"enhanced": tf.roll(image, 1, axis=2)}

    image = np.random.default_rng(1).uniform(0, 1, (32, 32, 1)).astype(np.float32)
    smooth = pix2pix_inference.Enhancer(blur, size_multiple=8, tile_size=32)
    np.testing.assert_allclose(smooth.enhance(image, tile=0, self_ensemble=True), smooth.enhance(image, tile=0),
                               atol=1e-6)
    shifted = pix2pix_inference.Enhancer(shift, size_multiple=8, tile_size=32)
    assert not np.allclose(shifted.enhance(image, tile=0, self_ensemble=True), shifted.enhance(image, tile=0))
