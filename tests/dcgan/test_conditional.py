"""The class-conditional DCGAN: networks, training step, task, export, resume, class accuracy, generate.py."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import REPO_ROOT
from tf_models import metrics
from tf_models.core import config as config_lib
from tf_models.core import export as export_lib
from tf_models.core import runner
from tf_models.dcgan import evaluation as gan_evaluation
from tf_models.dcgan import inference as dcgan_inference
from tf_models.dcgan import model as dcgan
from tf_models.dcgan import task as dcgan_task

TINY = dict(data="digits", conditional=True, batch_size=16, steps_per_epoch=2, generator_filters=8,
            discriminator_filters=8, latent_dim=16, sample_count=10, save_every_steps=0)


def compiled_gan(**kwargs):
    model = dcgan.DCGAN(**{"generator_filters": 8, "discriminator_filters": 8, "latent_dim": 16, "seed": 1,
                           "num_classes": 10, **kwargs})
    model.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5))
    return model


def tiny_config(root, **overrides):
    return config_lib.make_config(dcgan_task.DCGANConfig, logs_root=str(root / "logs"),
                                  models_root=str(root / "models"), **{**TINY, "export": False, **overrides})


@pytest.mark.parametrize("conditioning", dcgan.CONDITIONINGS)
def test_class_embedding_and_network_shapes(conditioning):
    model = compiled_gan(image_size=32, channels=3, conditioning=conditioning, embedding_dim=12)
    embedding = model.generator.get_layer("class_embedding")
    assert (embedding.input_dim, embedding.output_dim) == (10, 12)
    assert dcgan.num_classes_of(model.generator) == 10 and dcgan.latent_dim_of(model.generator) == 16
    images = model.generate(4, seed=0, class_ids=[0, 3, 3, 9])
    assert images.shape == (4, 32, 32, 3)
    assert model.discriminator([images, tf.constant([0, 3, 3, 9])]).shape == (4, 1)
    latent = tf.random.normal((2, 16), seed=1)
    first, second = (model.generator([latent, tf.constant([k, k])], training=False) for k in (1, 2))
    assert not np.allclose(first, second), "the class must change the image"


def test_projection_logit_depends_on_the_class():
    model = compiled_gan(conditioning="projection")
    images = model.generate(2, seed=0)
    logits = [model.discriminator([images, tf.constant([k, k])], training=False) for k in (0, 5)]
    assert not np.allclose(*logits)


def test_unknown_conditioning_and_mismatched_class_names_are_refused():
    with pytest.raises(ValueError, match="projection, concat"):
        compiled_gan(conditioning="film")
    with pytest.raises(ValueError, match="2 class names for 10 classes"):
        compiled_gan(class_names=("a", "b"))


def test_one_conditional_step_updates_both_networks():
    model = compiled_gan(ema_decay=0.5)
    before = {name: [w.numpy().copy() for w in getattr(model, name).trainable_weights]
              for name in ("generator", "discriminator")}
    average_before = [w.numpy().copy() for w in model.average_generator.weights]
    images = tf.random.uniform((8, 28, 28, 1), -1, 1, seed=0)
    logs = model.train_step((images, tf.range(8) % 10))
    assert np.isfinite(float(logs["generator_loss"])) and np.isfinite(float(logs["discriminator_loss"]))
    for name, weights in before.items():
        changed = [not np.array_equal(old, new.numpy()) for old, new in zip(weights, getattr(model, name).trainable_weights)]
        assert all(changed), name
    assert any(not np.array_equal(old, new.numpy()) for old, new in zip(average_before, model.average_generator.weights))
    with pytest.raises(ValueError, match="image, label"):
        model.train_step(images)


def test_config_round_trip_and_keras_file(tmp_path):
    model = compiled_gan(conditioning="concat", embedding_dim=7, ema_decay=0.9,
                         class_names=tuple(f"c{k}" for k in range(10)))
    config = model.get_config()
    clone = dcgan.DCGAN.from_config(config)
    assert clone.get_config() == config
    for key in ("num_classes", "conditioning", "embedding_dim", "class_names", "ema_decay"):
        assert getattr(clone, key) == getattr(model, key) or list(getattr(clone, key)) == config[key]
    path = tmp_path / "gan.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    latent = np.random.default_rng(0).normal(size=(3, 16)).astype("float32")
    inputs = [latent, np.array([1, 4, 9], dtype=np.int32)]
    np.testing.assert_allclose(loaded.sampling_generator(inputs), model.sampling_generator(inputs), atol=1e-6)
    assert dcgan_inference.keras_file_class_names(path) == model.class_names


def test_class_accuracy_on_hand_made_probabilities():
    probabilities = np.array([
        [0.9, 0.1, 0.0],   # asked 0, classified 0
        [0.2, 0.7, 0.1],   # asked 0, classified 1
        [0.1, 0.8, 0.1],   # asked 1, classified 1
        [0.1, 0.6, 0.3],   # asked 1, classified 1
        [0.5, 0.2, 0.3],   # asked 1, classified 0
    ])
    result = metrics.class_accuracy(probabilities, [0, 0, 1, 1, 1], num_classes=3)
    assert result["overall"] == pytest.approx(3 / 5)
    assert result["per_class"][:2] == pytest.approx([1 / 2, 2 / 3])
    assert np.isnan(result["per_class"][2])
    with pytest.raises(ValueError, match="class ids must be in"):
        metrics.class_accuracy(probabilities, [0, 0, 1, 1, 3], num_classes=3)


def test_score_table_shows_distances_as_differences():
    generated = dict(realism=0.8, distinct_fraction=1.0, class_entropy=2.0, inception_score=6.0, fcd=4.5, kid=0.02)
    real = dict(realism=0.9, distinct_fraction=1.0, class_entropy=2.2, inception_score=8.0, fcd=0.1, kid=-0.0004)
    result = {"generated": generated, "real": real, "evaluator_test_accuracy": 0.95,
              "class_accuracy": {"overall": 0.855, "per_class": [0.8, 0.91]}}
    rows = {line.split("|")[1].strip(): line for line in gan_evaluation.table(result, ("Dress", "Bag")).splitlines()}
    assert rows["fcd"].rstrip(" |").endswith("+4.4000")
    assert rows["kid"].rstrip(" |").endswith("+0.0204")
    assert "0.75x" in rows["inception_score"]
    assert "0.8550" in rows["class_accuracy"] and "0.9500" in rows["class_accuracy"]
    assert "0.9100" in rows["class_accuracy: Bag"]


def test_the_task_stores_class_names_samples_every_class_and_exports_latent_and_class(tmp_path):
    task = dcgan_task.DCGANTask()
    result = runner.train(task, tiny_config(tmp_path, run_name="cond", epochs=1), verbose=0)
    stored = json.loads(result.paths.config_file.read_text())
    assert dcgan_task.class_names(stored) == tuple(str(d) for d in range(10))
    assert result.model.class_names == tuple(str(d) for d in range(10))
    np.testing.assert_array_equal(task.fixed_class_ids, np.arange(10))
    endpoints = task.serving_endpoints(result.model, result.paths)
    assert [spec.name for spec in endpoints["serving_default"][1]] == ["latent", "class_id"]
    assert endpoints["serving_default"][1][1].shape.as_list() == [None]
    written = runner.export_run(task, result.model, result.config, result.paths, formats=("savedmodel", "tflite"))
    report = json.loads((result.paths.model_dir / "export_formats.json").read_text())
    assert report["formats"]["savedmodel"]["max_abs_vs_keras"]["images"] <= 1
    assert report["formats"]["tflite"]["max_abs_vs_keras"]["images"] <= 1
    serving_dir = next(path for path in written if "serving" in str(path))
    inputs = export_lib.signature_inputs(serving_dir)
    assert set(inputs) == {"latent", "class_id"}
    served = export_lib.run_saved_model(serving_dir, {"latent": np.zeros((3, 16), np.float32),
                                                      "class_id": np.array([2, 2, 7], np.int32)})["images"]
    assert served.shape == (3, 28, 28, 1) and served.dtype == np.uint8
    assert np.array_equal(served[0], served[1]) and not np.array_equal(served[0], served[2])
    tflite = export_lib.run_tflite(result.paths.tflite_file, {"latent": np.zeros((3, 16), np.float32),
                                                              "class_id": np.array([2, 2, 7], np.int32)})["images"]
    assert np.abs(tflite.astype(int) - served.astype(int)).max() <= 1


def test_a_conditional_checkpoint_resumes_exactly(tmp_path):
    reference = runner.train(dcgan_task.DCGANTask(), tiny_config(tmp_path, run_name="reference", epochs=2,
                                                                 ema_decay=0.5), verbose=0)
    runner.train(dcgan_task.DCGANTask(), tiny_config(tmp_path, run_name="split", epochs=1, ema_decay=0.5), verbose=0)
    resumed = runner.train(dcgan_task.DCGANTask(), tiny_config(tmp_path, run_name="split", epochs=2, ema_decay=0.5),
                           verbose=0)
    assert resumed.restored_from.endswith("ckpt-2")
    for network in ("generator", "discriminator", "average_generator"):
        for expected, actual in zip(getattr(reference.model, network).weights, getattr(resumed.model, network).weights):
            np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6, err_msg=network)


def test_conditional_refuses_the_tutorial_networks():
    config = config_lib.make_config(dcgan_task.DCGANConfig, dcgan_task.PRESETS, preset="tutorial", conditional=True)
    with pytest.raises(ValueError, match="--architecture dcgan"):
        dcgan_task.DCGANTask().resolve(config)


def test_class_index_by_name_in_any_case_and_unknown_names_list_the_choices():
    names = ("T-shirt/top", "Trouser", "Dress")
    assert dcgan_inference.class_index("dress", names, 3) == 2
    with pytest.raises(ValueError, match=r"choose one of: T-shirt/top, Trouser, Dress"):
        dcgan_inference.class_index("skirt", names, 3)
    with pytest.raises(ValueError, match="unconditional"):
        dcgan_inference.class_index("dress", (), 0)


def test_every_class_grid_has_one_row_per_class():
    model = compiled_gan()
    images = dcgan_inference.every_class_images(model.sampling_generator, 3, seed=4)
    assert images.shape == (30, 28, 28, 1)
    latent = dcgan_inference.latent_vectors(16, 3, 4)
    np.testing.assert_array_equal(images[6:9], dcgan_inference.generate_images(model.sampling_generator, latent, 2))


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("conditional_run")
    config = tiny_config(root, run_name="cond", epochs=1)
    result = runner.train(dcgan_task.DCGANTask(), config, verbose=0)
    from tf_models.core import runs

    runs.save_keras_model(result.model, result.paths.keras_file)
    return root


def generate(root, *flags):
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "generate.py"), "--run", "cond",
                           "--models-root", str(root / "models"), "--logs-root", str(root / "logs"), *flags],
                          capture_output=True, text=True, timeout=300)


def test_generate_class_writes_that_class_and_an_unknown_name_lists_the_names(saved_run, tmp_path):
    done = generate(saved_run, "--class", "7", "--count", "4", "--output-dir", str(tmp_path / "sevens"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(list((tmp_path / "sevens").glob("*.png"))) == 4
    refused = generate(saved_run, "--class", "dress", "--count", "4", "--output", str(tmp_path / "x.png"))
    assert refused.returncode != 0
    assert "Unknown class 'dress'; choose one of: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9." in refused.stderr
    assert not (tmp_path / "x.png").exists()
