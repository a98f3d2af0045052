"""The self-conditioned DCGAN: k-means pseudo-labels, the latent's cluster, training, saving, export, resume."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipelines import gan as gan_pipeline
from tf_models.core import config as config_lib
from tf_models.core import export as export_lib
from tf_models.core import runner
from tf_models.dcgan import model as dcgan
from tf_models.dcgan import task as dcgan_task

PRIOR = (0.5, 0.2, 0.3)


def self_conditioned_gan(**kwargs):
    model = dcgan.DCGAN(generator_filters=8, discriminator_filters=8, latent_dim=16, seed=1, num_classes=3,
                        class_prior=PRIOR, **kwargs)
    model.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5))
    return model


def tiny_config(root, **overrides):
    fields = dict(data="digits", pseudo_classes=4, batch_size=16, steps_per_epoch=2, generator_filters=8,
                  discriminator_filters=8, latent_dim=16, sample_count=4, save_every_steps=0, export=False,
                  logs_root=str(root / "logs"), models_root=str(root / "models"))
    return config_lib.make_config(dcgan_task.DCGANConfig, **{**fields, **overrides})


def test_pseudo_labels_find_well_separated_groups_without_labels():
    rng = np.random.default_rng(0)
    levels = np.array([20, 120, 230])
    truth = rng.integers(0, 3, 300)
    images = np.clip(levels[truth][:, None, None, None] + rng.normal(0, 8, (300, 8, 8, 1)), 0, 255).astype(np.uint8)
    ids, shares = gan_pipeline.pseudo_labels(images, 3, seed=0)
    assert ids.dtype == np.int32 and ids.shape == (300,)
    for group in range(3):
        assert len(np.unique(ids[truth == group])) == 1, "one cluster per group"
    assert len(np.unique(ids)) == 3
    np.testing.assert_allclose(shares, np.bincount(ids, minlength=3) / 300)
    with pytest.raises(ValueError, match="into 1 clusters"):
        gan_pipeline.pseudo_labels(images, 1)


def test_latent_clusters_are_drawn_as_often_as_the_prior_says():
    thresholds = dcgan.prior_thresholds(PRIOR)
    latent = tf.random.stateless_normal((200_000, 4), seed=(3, 4))
    ids = np.asarray(dcgan.latent_cluster_ids(latent, thresholds))
    np.testing.assert_allclose(np.bincount(ids, minlength=3) / len(ids), PRIOR, atol=0.005)
    np.testing.assert_array_equal(ids, np.asarray(dcgan.LatentCluster(PRIOR)(latent)))
    with pytest.raises(ValueError, match="two or more"):
        dcgan.prior_thresholds((1.0,))


def test_the_generator_takes_the_latent_alone_and_its_cluster_changes_the_image():
    model = self_conditioned_gan()
    assert dcgan.num_classes_of(model.generator) == 0, "outside training it is an unconditional generator"
    assert model.discriminator.input_shape[1] == (None,), "the discriminator judges (image, cluster)"
    assert model.generate(4, seed=0).shape == (4, 28, 28, 1)
    thresholds = dcgan.prior_thresholds(PRIOR)
    latent = np.zeros((2, 16), np.float32)
    latent[:, 0] = [thresholds[0] - 0.01, thresholds[0] + 0.01]
    images = np.asarray(model.generator(latent, training=False))
    np.testing.assert_array_equal(np.asarray(dcgan.latent_cluster_ids(latent, thresholds)), [0, 1])
    assert np.abs(images[0] - images[1]).max() > 1e-3, "crossing a cluster boundary must change the image"


def test_one_step_updates_both_networks_and_refuses_unlabelled_batches():
    model = self_conditioned_gan(ema_decay=0.5)
    before = {name: [w.numpy().copy() for w in getattr(model, name).trainable_weights]
              for name in ("generator", "discriminator")}
    logs = model.train_step((tf.random.uniform((8, 28, 28, 1), -1, 1, seed=0), tf.constant([0, 1, 2, 0, 0, 1, 2, 0])))
    assert np.isfinite(float(logs["generator_loss"])) and np.isfinite(float(logs["discriminator_loss"]))
    for name, weights in before.items():
        assert all(not np.array_equal(old, new.numpy())
                   for old, new in zip(weights, getattr(model, name).trainable_weights)), name
    with pytest.raises(ValueError, match="image, label"):
        model.train_step(tf.zeros((8, 28, 28, 1)))


def test_config_round_trip_and_keras_file(tmp_path):
    model = self_conditioned_gan(ema_decay=0.9)
    config = model.get_config()
    clone = dcgan.DCGAN.from_config(config)
    assert clone.get_config() == config and clone.class_prior == PRIOR
    path = tmp_path / "gan.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    latent = np.random.default_rng(0).normal(size=(5, 16)).astype("float32")
    np.testing.assert_allclose(loaded.sampling_generator(latent), model.sampling_generator(latent), atol=1e-6)
    with pytest.raises(ValueError, match="2 cluster shares for 3 classes"):
        dcgan.DCGAN(num_classes=3, class_prior=(0.5, 0.5))


def test_the_task_clusters_the_data_trains_exports_and_resumes(tmp_path):
    task = dcgan_task.DCGANTask()
    result = runner.train(task, tiny_config(tmp_path, run_name="self", epochs=1), verbose=0)
    prior = result.model.class_prior
    assert len(prior) == 4 and abs(sum(prior) - 1) < 1e-9 and min(prior) > 0
    assert json.loads(result.paths.config_file.read_text())["pseudo_classes"] == 4
    endpoints = task.serving_endpoints(result.model, result.paths)
    assert [spec.name for spec in endpoints["serving_default"][1]] == ["latent"]
    runner.export_run(task, result.model, result.config, result.paths, formats=("savedmodel", "tflite"))
    report = json.loads((result.paths.model_dir / "export_formats.json").read_text())
    assert report["formats"]["savedmodel"]["max_abs_vs_keras"]["images"] <= 1
    assert report["formats"]["tflite"]["max_abs_vs_keras"]["images"] <= 1
    latent = np.random.default_rng(1).normal(size=(6, 16)).astype(np.float32)
    served = export_lib.run_tflite(result.paths.tflite_file, {"latent": latent})["images"]
    assert served.shape == (6, 28, 28, 1) and served.dtype == np.uint8

    reference = runner.train(dcgan_task.DCGANTask(), tiny_config(tmp_path, run_name="reference", epochs=2), verbose=0)
    resumed = runner.train(dcgan_task.DCGANTask(), tiny_config(tmp_path, run_name="self", epochs=2), verbose=0)
    assert resumed.restored_from.endswith("ckpt-2")
    for network in ("generator", "discriminator"):
        for expected, actual in zip(getattr(reference.model, network).weights, getattr(resumed.model, network).weights):
            np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6, err_msg=network)
    restored = dcgan_task.restore_from_checkpoint(resumed.paths)
    assert restored.class_prior == prior


@pytest.mark.parametrize("overrides, message", [
    (dict(pseudo_classes=1), "2 or more"),
    (dict(pseudo_classes=4, conditional=True), "leave out --conditional"),
])
def test_bad_pseudo_class_settings_are_refused(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        dcgan_task.DCGANTask().resolve(tiny_config(tmp_path, **overrides))
