"""The InfoGAN latent code of an unconditional DCGAN: the code, the read-out head, the step, the task, export."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_models.core import config as config_lib
from tf_models.core import export as export_lib
from tf_models.core import runner
from tf_models.dcgan import model as dcgan
from tf_models.dcgan import task as dcgan_task

TINY = dict(data="digits", batch_size=16, steps_per_epoch=2, generator_filters=8, discriminator_filters=8,
            latent_dim=16, sample_count=8, save_every_steps=0, latent_codes=4)


def compiled_gan(**kwargs):
    model = dcgan.DCGAN(**{"generator_filters": 8, "discriminator_filters": 8, "latent_dim": 16, "seed": 1,
                           "latent_codes": 4, **kwargs})
    model.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5))
    return model


def test_the_code_is_the_largest_of_the_first_entries_and_uniform():
    latent = np.random.default_rng(0).normal(size=(8000, 16)).astype("float32")
    codes = dcgan.latent_codes(latent, 4).numpy()
    np.testing.assert_array_equal(codes, latent[:, :4].argmax(axis=1))
    np.testing.assert_array_equal(dcgan.LatentCode(4)(latent).numpy().argmax(axis=1), codes)
    np.testing.assert_allclose(np.bincount(codes, minlength=4) / len(codes), 0.25, atol=0.02)
    with pytest.raises(ValueError, match="at least 2"):
        dcgan.LatentCode(1)


def test_networks_take_one_latent_and_the_discriminator_reads_the_code():
    model = compiled_gan()
    assert dcgan.num_classes_of(model.generator) == 0 and dcgan.latent_dim_of(model.generator) == 16
    images = model.generate(5, seed=0)
    logits, code_logits = model.discriminator(images)
    assert logits.shape == (5, 1) and code_logits.shape == (5, 4)
    latent = np.random.default_rng(1).normal(size=(1, 16)).astype("float32")
    other = latent.copy()
    other[0, :4] = latent[0, :4][[1, 2, 3, 0]]
    assert int(dcgan.latent_codes(other, 4)[0]) != int(dcgan.latent_codes(latent, 4)[0])
    assert not np.allclose(model.generator(latent), model.generator(other)), "the code must change the image"


def test_one_step_updates_both_networks_and_the_code_head_and_reports_the_code_loss():
    model = compiled_gan(ema_decay=0.5)
    before = {name: [w.numpy().copy() for w in getattr(model, name).trainable_weights]
              for name in ("generator", "discriminator")}
    logs = model.train_step(tf.random.uniform((8, 28, 28, 1), -1, 1, seed=0))
    assert 0.0 < float(logs["code_loss"]) < 10.0
    for name, weights in before.items():
        changed = [not np.array_equal(old, new.numpy())
                   for old, new in zip(weights, getattr(model, name).trainable_weights)]
        assert all(changed), name


def test_the_code_loss_falls_when_the_discriminator_learns_to_read_it():
    model = compiled_gan(code_weight=1.0)
    images = tf.random.uniform((16, 28, 28, 1), -1, 1, seed=0)
    losses = [float(model.train_step(images)["code_loss"]) for _ in range(40)]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses


def test_config_round_trip_and_keras_file(tmp_path):
    model = compiled_gan(code_weight=0.5, ema_decay=0.9)
    config = model.get_config()
    assert dcgan.DCGAN.from_config(config).get_config() == config
    assert (config["latent_codes"], config["code_weight"]) == (4, 0.5)
    path = tmp_path / "gan.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    latent = np.random.default_rng(0).normal(size=(3, 16)).astype("float32")
    np.testing.assert_allclose(loaded.sampling_generator(latent), model.sampling_generator(latent), atol=1e-6)


def test_codes_with_a_class_or_the_tutorial_networks_are_refused():
    with pytest.raises(ValueError, match="not both"):
        compiled_gan(num_classes=10)
    for overrides in (dict(conditional=True), dict(preset="tutorial")):
        config = config_lib.make_config(dcgan_task.DCGANConfig, dcgan_task.PRESETS, latent_codes=10, **overrides)
        with pytest.raises(ValueError, match="--latent-codes"):
            dcgan_task.DCGANTask().resolve(config)


def test_the_task_trains_and_exports_an_unconditional_signature(tmp_path):
    task = dcgan_task.DCGANTask()
    config = config_lib.make_config(dcgan_task.DCGANConfig, logs_root=str(tmp_path / "logs"),
                                    models_root=str(tmp_path / "models"), run_name="codes", epochs=1,
                                    export=False, **TINY)
    result = runner.train(task, config, verbose=0)
    assert json.loads(result.paths.config_file.read_text())["latent_codes"] == 4
    written = runner.export_run(task, result.model, result.config, result.paths, formats=("savedmodel", "tflite"))
    serving_dir = next(path for path in written if "serving" in str(path))
    assert set(export_lib.signature_inputs(serving_dir)) == {"latent"}
    latent = np.random.default_rng(2).normal(size=(3, 16)).astype("float32")
    served = export_lib.run_saved_model(serving_dir, {"latent": latent})["images"]
    tflite = export_lib.run_tflite(result.paths.tflite_file, {"latent": latent})["images"]
    assert served.shape == (3, 28, 28, 1) and np.abs(tflite.astype(int) - served.astype(int)).max() <= 1
