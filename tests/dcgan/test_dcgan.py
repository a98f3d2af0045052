import keras
import numpy as np
import pytest
import tensorflow as tf

from pipelines import gan as gan_pipeline
from tf_models.dcgan import model as dcgan
from tf_models.core import adversarial
from tests.model_checks import assert_config_round_trip
from tests.conftest import shared_dataset

TINY_RUN = dict(data="digits", batch_size=16, steps_per_epoch=2, epochs=1, generator_filters=8, discriminator_filters=8,
                latent_dim=16, sample_count=4, export=False, save_every_steps=0)


def compiled_gan(**kwargs):
    model = dcgan.DCGAN(**{"generator_filters": 8, "discriminator_filters": 8, "latent_dim": 16, "seed": 1, **kwargs})
    model.compile(
        generator_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
        discriminator_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
    )
    return model


@pytest.mark.parametrize("image_size, channels", [(28, 1), (32, 3), (64, 1)])
def test_shapes(image_size, channels):
    model = compiled_gan(image_size=image_size, channels=channels)
    images = model.generate(3, seed=0)
    assert images.shape == (3, image_size, image_size, channels)
    assert float(tf.reduce_min(images)) >= -1 and float(tf.reduce_max(images)) <= 1
    assert model.discriminator(images).shape == (3, 1)


def test_64px_architecture_matches_the_fashion_mnist_recipe():
    generator = dcgan.build_generator(64, 1, latent_dim=100, filters=32)
    transposed = [layer for layer in generator.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert [layer.filters for layer in transposed] == [256, 128, 64, 32, 1]
    assert [tuple(layer.output.shape[1:3]) for layer in transposed] == [(4, 4), (8, 8), (16, 16), (32, 32), (64, 64)]
    discriminator = dcgan.build_discriminator(64, 1, filters=32)
    convolutions = [layer for layer in discriminator.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [tuple(layer.output.shape[1:3]) for layer in convolutions] == [(32, 32), (16, 16), (8, 8), (4, 4), (1, 1)]
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in discriminator.layers) == 3


def test_unsupported_size():
    with pytest.raises(ValueError, match="48"):
        dcgan.DCGAN(image_size=48)


def test_config_round_trip_and_keras_file(tmp_path):
    model = compiled_gan(image_size=32, channels=3, real_label=0.9)
    assert_config_round_trip(model, dcgan.DCGAN)
    path = tmp_path / "gan.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    latent = np.random.default_rng(0).normal(size=(2, 16)).astype("float32")
    np.testing.assert_allclose(loaded.generator(latent), model.generator(latent), atol=1e-6)


@pytest.mark.parametrize("policy", ["float32", "mixed_float16", "mixed_bfloat16"])
def test_precision_policies(policy):
    keras.mixed_precision.set_global_policy(policy)
    model = compiled_gan(ema_decay=0.5)
    compute_dtype = keras.mixed_precision.global_policy().compute_dtype
    for network in (model.generator, model.average_generator, model.discriminator):
        assert all(variable.dtype == "float32" for variable in network.weights)
    assert model.generator.layers[2].compute_dtype == compute_dtype
    assert isinstance(model.generator_optimizer, keras.optimizers.LossScaleOptimizer) == (policy == "mixed_float16")
    before = [w.numpy().copy() for w in (model.generator.trainable_weights[0], model.discriminator.trainable_weights[0])]
    real = tf.random.uniform((8, 28, 28, 1), -1, 1, seed=0)
    logs = model.train_step(real)
    assert all(np.isfinite(float(value)) for value in logs.values())
    assert model.generate(2).dtype == "float32"
    after = [model.generator.trainable_weights[0].numpy(), model.discriminator.trainable_weights[0].numpy()]
    assert all(not np.array_equal(b, a) for b, a in zip(before, after))


def test_fit_on_real_mnist_lowers_the_discriminator_loss():
    """Keras' own `fit` runs the custom train_step; the discriminator learns within 30 steps."""
    data = gan_pipeline.build_gan_data(str(shared_dataset("mnist")), 28, 1, batch_size=32, seed=0)
    model = compiled_gan()
    history = model.fit(data.make_dataset(0), steps_per_epoch=6, epochs=5, verbose=0).history
    losses = history["discriminator_loss"]
    assert losses[-1] < losses[0] - 0.2, losses
    assert history["real_score"][-1] > history["real_score"][0]
    assert set(history) >= {"generator_loss", "discriminator_loss", "real_score", "fake_score"}


def test_tutorial_architecture_is_the_published_one():
    model = compiled_gan(architecture="tutorial", latent_dim=100, ema_decay=0.5)
    dense = [layer for layer in model.generator.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [7 * 7 * 256]
    transposed = [layer for layer in model.generator.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert [(layer.filters, layer.kernel_size, layer.strides) for layer in transposed] == [
        (128, (5, 5), (1, 1)), (64, (5, 5), (2, 2)), (1, (5, 5), (2, 2))]
    dropouts = [layer.rate for layer in model.discriminator.layers if isinstance(layer, keras.layers.Dropout)]
    assert dropouts == [0.3, 0.3]
    assert model.generate(2).shape == (2, 28, 28, 1)
    clone = assert_config_round_trip(model, dcgan.DCGAN)
    assert clone.architecture == "tutorial"
    assert clone.generator.count_params() == model.generator.count_params()
    assert model.average_generator.count_params() == model.generator.count_params()


def test_tutorial_architecture_refuses_other_sizes_and_unknown_names():
    with pytest.raises(ValueError, match="28x28x1"):
        dcgan.DCGAN(image_size=32, channels=3, architecture="tutorial")
    with pytest.raises(ValueError, match="resnet"):
        dcgan.DCGAN(architecture="resnet")


def test_tutorial_train_step_updates_both_networks():
    from tf_models.dcgan import tutorial as tutorial_dcgan

    generator = tutorial_dcgan.build_generator(latent_dim=16)
    discriminator = tutorial_dcgan.build_discriminator()
    step = tutorial_dcgan.make_train_step(
        generator, discriminator, keras.optimizers.Adam(1e-4), keras.optimizers.Adam(1e-4), latent_dim=16)
    before = [generator.trainable_weights[0].numpy().copy(), discriminator.trainable_weights[0].numpy().copy()]
    generator_loss, discriminator_loss = step(tf.random.uniform((8, 28, 28, 1), -1, 1, seed=0))
    assert np.isfinite(float(generator_loss)) and np.isfinite(float(discriminator_loss))
    after = [generator.trainable_weights[0].numpy(), discriminator.trainable_weights[0].numpy()]
    assert all(not np.array_equal(b, a) for b, a in zip(before, after))


def weights_of(network):
    return [weight.numpy() for weight in network.weights]


def test_average_generator_follows_the_generator_by_the_ema_rule():
    """average = d2 * (d1 * g0 + (1 - d1) * g1) + (1 - d2) * g2, BatchNorm statistics included.

    With ema_decay 0.5 the warm-up gives d1 = min(0.5, 2 / 11) and d2 = min(0.5, 3 / 12).
    """
    model = compiled_gan(ema_decay=0.5)
    real = tf.random.uniform((8, 28, 28, 1), -1, 1, seed=0)
    history = [weights_of(model.generator)]
    assert all(np.array_equal(a, g) for a, g in zip(weights_of(model.average_generator), history[0]))
    for _ in range(2):
        model.train_step(real)
        history.append(weights_of(model.generator))
    d1, d2 = 2 / 11, 3 / 12
    expected = [d2 * (d1 * g0 + (1 - d1) * g1) + (1 - d2) * g2 for g0, g1, g2 in zip(*history)]
    names = [weight.path for weight in model.average_generator.weights]
    assert any("moving_mean" in name for name in names)
    for name, average, value in zip(names, weights_of(model.average_generator), expected):
        np.testing.assert_allclose(average, value, rtol=1e-6, atol=1e-7, err_msg=name)
    assert not all(np.array_equal(a, g) for a, g in zip(weights_of(model.average_generator), history[-1]))
    assert model.average_generator.trainable_weights == []
    assert len(model.trainable_weights) == len(model.generator.trainable_weights + model.discriminator.trainable_weights)


def test_average_decay_warms_up_to_ema_decay():
    decays = [float(adversarial.average_decay(0.999, updates)) for updates in (0, 1, 90, 8990, 10**6)]
    np.testing.assert_allclose(decays, [0.1, 2 / 11, 0.91, 0.999, 0.999], rtol=1e-6)
    assert float(adversarial.average_decay(0.5, 10**6)) == 0.5


def test_sampling_generator_is_the_average_only_when_ema_is_on():
    plain = compiled_gan()
    assert plain.sampling_generator is plain.generator and plain.average_generator is None
    model = compiled_gan(ema_decay=0.5)
    model.train_step(tf.random.uniform((8, 28, 28, 1), -1, 1, seed=0))
    assert model.sampling_generator is model.average_generator
    latent = keras.random.normal((3, 16), seed=4)
    np.testing.assert_allclose(model.generate(3, seed=4), model.average_generator(latent), atol=1e-6)
    np.testing.assert_array_equal(model(latent), model.average_generator(latent))
    assert np.abs(model.generate(3, seed=4) - model.generator(latent)).max() > 1e-5
    with pytest.raises(ValueError, match="ema_decay"):
        dcgan.DCGAN(ema_decay=1.0)


def test_ema_config_round_trip_and_keras_file(tmp_path):
    model = compiled_gan(ema_decay=0.5)
    model.train_step(tf.random.uniform((8, 28, 28, 1), -1, 1, seed=0))
    config = model.get_config()
    assert config["ema_decay"] == 0.5
    assert_config_round_trip(model, dcgan.DCGAN)
    model.save(tmp_path / "gan.keras")
    loaded = keras.models.load_model(tmp_path / "gan.keras")
    for saved, restored in zip(weights_of(model.average_generator), weights_of(loaded.average_generator)):
        np.testing.assert_array_equal(saved, restored)


def test_checkpoint_saves_and_restores_the_average_generator(tmp_path):
    from tf_models.core import checkpoints

    model = compiled_gan(ema_decay=0.5)
    model.train_step(tf.random.uniform((8, 28, 28, 1), -1, 1, seed=0))
    path = checkpoints.CheckpointKeeper(tmp_path / "saved", model=model).save()
    stored = [name for name, _ in tf.train.list_variables(path)]
    assert any(name.startswith("model/average_generator/") for name in stored)
    fresh = compiled_gan(ema_decay=0.5)
    assert not np.array_equal(fresh.average_generator.weights[0].numpy(), model.average_generator.weights[0].numpy())
    keeper = checkpoints.CheckpointKeeper(tmp_path / "saved", model=fresh)
    assert keeper.restore() == path
    for saved, restored in zip(weights_of(model.average_generator), weights_of(fresh.average_generator)):
        np.testing.assert_array_equal(saved, restored)


def test_the_task_samples_exports_and_restores_the_average_generator(tmp_path):
    """Sample grids, serving, the exported network and the checkpoint restore of generate/evaluate use the average."""
    from tf_models.core import config as config_lib
    from tf_models.core import runner
    from tf_models.dcgan import task as dcgan_task
    from tf_models.dcgan import evaluation as gan_evaluation

    config = config_lib.make_config(dcgan_task.DCGANConfig, run_name="ema", ema_decay=0.5,
                                    logs_root=str(tmp_path / "logs"), models_root=str(tmp_path / "models"), **TINY_RUN)
    task = dcgan_task.DCGANTask()
    result = runner.train(task, config, verbose=0)
    model = result.model
    assert model.ema_decay == 0.5 and model.sampling_generator is model.average_generator
    assert task.inference_model(model) is model.average_generator
    average_images = model.average_generator(task.fixed_noise, training=False)
    np.testing.assert_array_equal(task.callbacks(model, result.paths, config)[0].render(), average_images)
    serve = task.serving_endpoints(model, result.paths)["serving_default"][0]
    np.testing.assert_array_equal(serve(task.fixed_noise)["images"],
                                  np.round((np.asarray(average_images) + 1.0) * 127.5).astype(np.uint8))
    restored = gan_evaluation.load_run_generator(result.paths)
    assert restored.name == "average_generator"
    for trained, loaded in zip(weights_of(model.average_generator), weights_of(restored)):
        np.testing.assert_array_equal(trained, loaded)


def test_the_tutorial_step_refuses_a_weight_average():
    from tf_models.core import config as config_lib
    from tf_models.dcgan import task as dcgan_task

    config = config_lib.make_config(dcgan_task.DCGANConfig, dcgan_task.PRESETS, preset="tutorial_step", ema_decay=0.9)
    with pytest.raises(ValueError, match="ema-decay"):
        dcgan_task.DCGANTask().resolve(config)


def test_cosine_decay_lowers_both_learning_rates_from_their_own_values(tmp_path):
    from tf_models.core import config as config_lib
    from tf_models.core import runner
    from tf_models.dcgan import task as dcgan_task

    config = config_lib.make_config(
        dcgan_task.DCGANConfig, run_name="cosine", cosine_decay=True, learning_rate=4e-4,
        discriminator_learning_rate=1e-4, logs_root=str(tmp_path / "logs"), models_root=str(tmp_path / "models"),
        **{**TINY_RUN, "epochs": 2, "steps_per_epoch": 4})
    model = runner.train(dcgan_task.DCGANTask(), config, verbose=0).model
    last_step_rate = 0.5 * (1.0 + np.cos(np.pi * 7 / 8))
    assert float(model.generator_optimizer.learning_rate) == pytest.approx(4e-4 * last_step_rate, rel=1e-4)
    assert float(model.discriminator_optimizer.learning_rate) == pytest.approx(1e-4 * last_step_rate, rel=1e-4)
