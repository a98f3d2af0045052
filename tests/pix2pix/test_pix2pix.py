import json
import subprocess
import sys

import imageio.v3 as iio
import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_models import metrics
from tf_models.pix2pix import model as pix2pix
from tf_models.core import config as config_lib
from tf_models.core import runner
from tf_models.pix2pix import task as pix2pix_task
from tests.model_checks import assert_config_round_trip
from tests.conftest import REPO_ROOT, shared_dataset


def tiny_model(**kwargs):
    model = pix2pix.Pix2Pix(**{"generator_filters": 8, "generator_depth": 3, "discriminator_filters": 8, **kwargs})
    model.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5))
    return model


@pytest.mark.parametrize("residual, full_resolution_filters, ema_decay", [(True, 0, 0.0), (False, 0, 0.0),
                                                                         (True, 4, 0.9)])
def test_shapes_range_and_config_round_trip(residual, full_resolution_filters, ema_decay):
    model = tiny_model(residual=residual, norm="batch", full_resolution_filters=full_resolution_filters,
                       ema_decay=ema_decay)
    images = tf.random.uniform((2, 32, 40, 1), -1, 1)
    enhanced = model.generator(images)
    assert enhanced.shape == (2, 32, 40, 1) and float(tf.reduce_max(tf.abs(enhanced))) <= 1.0
    assert model.discriminator([images, enhanced]).shape == (2, 4, 5, 1)
    assert_config_round_trip(model, pix2pix.Pix2Pix)


def test_full_resolution_filters_add_convolutions_at_the_input_resolution():
    def full_resolution_convolutions(generator):
        convolutions = [layer for layer in generator.layers if isinstance(layer, keras.layers.Conv2D)]
        outputs = keras.Model(generator.input, [layer.output for layer in convolutions])(tf.zeros((1, 32, 32, 1)))
        return [layer for layer, output in zip(convolutions, outputs) if output.shape[1] == 32]

    widened = pix2pix.build_generator(1, 8, 3, full_resolution_filters=4)
    plain = pix2pix.build_generator(1, 8, 3, full_resolution_filters=0)
    assert [layer.filters for layer in full_resolution_convolutions(widened)] == [4, 4, 4, 4, 1]
    assert full_resolution_convolutions(plain) == []
    with pytest.raises(ValueError, match="full_resolution_filters"):
        pix2pix.build_generator(1, 8, 3, full_resolution_filters=-1)


def test_generator_average_follows_the_hand_computed_rule_and_is_what_inference_uses():
    model = tiny_model(ema_decay=0.5)
    source, target = tf.random.uniform((2, 32, 32, 1), -1, 1), tf.random.uniform((2, 32, 32, 1), -1, 1)
    snapshots = [model.generator.get_weights()]
    for _ in range(2):
        model.train_step((source, target))
        snapshots.append(model.generator.get_weights())
    for index, average in enumerate(model.average_generator.get_weights()):
        d1, d2 = 2 / 11, 3 / 12  # the warm-up of adversarial.average_decay(0.5, n) after updates 1 and 2
        expected = d2 * (d1 * snapshots[0][index] + (1 - d1) * snapshots[1][index]) + (1 - d2) * snapshots[2][index]
        np.testing.assert_allclose(average, expected, rtol=1e-5, atol=1e-6)
    assert model.sampling_generator is model.average_generator
    np.testing.assert_allclose(model(source), model.average_generator(source), atol=1e-6)
    assert not np.allclose(model(source), model.generator(source))
    plain = tiny_model()
    assert plain.sampling_generator is plain.generator and plain.average_generator is None


def test_training_psnr_of_an_exact_reproduction_is_capped_not_infinite():
    """An all-background crop can be reproduced exactly; the loop's non-finite guard must not stop on it."""
    model = tiny_model()
    background = -tf.ones((2, 32, 32, 1))
    model._quality(background, background)
    assert float(model.trackers["psnr"].result()) == metrics.PSNR_CAP_DB


def test_residual_generator_starts_near_the_identity():
    model = tiny_model()
    images = tf.random.uniform((1, 32, 32, 1), -0.5, 0.5)
    assert float(tf.reduce_mean(tf.abs(model.generator(images) - images))) < 0.3


def test_patchgan_receptive_field_is_70_pixels():
    discriminator = pix2pix.build_discriminator(1, 8)
    size = 1
    for layer in reversed([l for l in discriminator.layers if isinstance(l, keras.layers.Conv2D)]):
        size = (size - 1) * layer.strides[0] + layer.kernel_size[0]
    assert size == 70


def test_inference_is_deterministic_despite_dropout():
    model = tiny_model()
    images = tf.random.uniform((2, 32, 32, 1), -1, 1)
    np.testing.assert_array_equal(model.generator(images).numpy(), model.generator(images).numpy())


def test_few_steps_lower_l1_on_real_mammogram_crops():
    from pipelines import paired

    data = paired.build_paired_data(str(shared_dataset("mammography")), image_size=64, batch_size=4,
                                    recipe="noise:0.1", seed=0)
    model = tiny_model(residual=False)
    history = model.fit(data.make_dataset(0), steps_per_epoch=10, epochs=3, verbose=0).history
    assert history["l1_loss"][-1] < history["l1_loss"][0], history["l1_loss"]


def test_train_export_evaluate_and_enhance_a_sixteen_bit_file(tmp_path):
    roots = dict(logs_root=str(tmp_path / "logs"), models_root=str(tmp_path / "models"))
    config = config_lib.make_config(
        pix2pix_task.Pix2PixConfig, data=str(shared_dataset("mammography")), degrade="noise:0.05",
        image_size=32, batch_size=4, epochs=1, steps_per_epoch=3, generator_filters=4, generator_depth=3,
        discriminator_filters=4, run_name="tiny", test_fraction=0.05, **roots,
    )
    result = runner.train(pix2pix_task.Pix2PixTask(), config, verbose=0)
    export_report = json.loads((result.paths.model_dir / "export_formats.json").read_text())
    assert export_report["formats"]["tflite"]["max_abs_vs_keras"]["enhanced"] <= 1.0
    assert export_report["tile_size"] == 32
    assert (result.paths.samples_dir / "epoch_0001.png").is_file()

    evaluated = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "evaluate.py"), "--task", "pix2pix", "--run", "tiny",
         "--logs-root", roots["logs_root"], "--models-root", roots["models_root"], "--figure-rows", "2"],
        capture_output=True, text=True, timeout=600,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    metrics_json = (result.paths.log_dir / "evaluation" / "metrics.json").read_text()
    assert "input_breast_psnr" in metrics_json and "model_whole_ssim" in metrics_json
    assert json.loads(metrics_json)["tile"] == 32, "evaluation tiles at the training crop size"

    scan = np.random.default_rng(0).integers(0, 65535, size=(45, 70), dtype=np.uint16)
    iio.imwrite(tmp_path / "scan16.png", scan)
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "enhance.py"), "--run", "tiny", str(tmp_path / "scan16.png"),
         "--output-dir", str(tmp_path / "out"),
         "--logs-root", roots["logs_root"], "--models-root", roots["models_root"]],
        check=True, capture_output=True, timeout=300,
    )
    enhanced = iio.imread(tmp_path / "out" / "scan16_enhanced.png")
    assert enhanced.dtype == np.uint16 and enhanced.shape == (45, 70)


def test_tissue_weight_counts_errors_inside_the_tissue_more():
    target = np.full((1, 32, 32, 1), -1.0, np.float32)
    target[:, :, 16:] = 0.2
    background_error, tissue_error = np.zeros_like(target), np.zeros_like(target)
    background_error[:, :, :10] = 0.5
    tissue_error[:, :, 22:] = 0.5
    plain = float(pix2pix.weighted_l1(target, target + background_error)[0])
    np.testing.assert_allclose(plain, background_error.mean(), rtol=1e-6)
    assert float(pix2pix.weighted_l1(target, target + background_error, tissue_weight=1000.0)[0]) < 0.01 * plain
    tissue_only = float(pix2pix.weighted_l1(target, target + tissue_error, tissue_weight=1000.0)[0])
    np.testing.assert_allclose(tissue_only, 0.5 * 10 / 18, rtol=0.01)


def one_step_generator(discriminator_seed, **kwargs):
    keras.utils.set_random_seed(0)
    model = tiny_model(dropout_blocks=0, **kwargs)
    model.discriminator.set_weights([np.random.default_rng(discriminator_seed).normal(0, 0.1, w.shape)
                                     for w in model.discriminator.get_weights()])
    source, target = tf.constant(np.random.default_rng(0).uniform(-1, 1, (2, 2, 32, 32, 1)), tf.float32)
    model.train_step((source, target))
    return model.generator.get_weights()


@pytest.mark.parametrize("options", [dict(adversarial_weight=0.0), dict(adversarial_start_step=5)])
def test_regression_only_generator_steps_ignore_the_discriminator(options):
    for first, second in zip(one_step_generator(1, **options), one_step_generator(2, **options)):
        np.testing.assert_allclose(first, second, atol=1e-6)
    assert any(not np.allclose(first, second, atol=1e-6)
               for first, second in zip(one_step_generator(1), one_step_generator(2)))


def test_ssim_term_changes_the_generator_step_and_options_round_trip():
    assert any(not np.allclose(first, second, atol=1e-7)
               for first, second in zip(one_step_generator(1), one_step_generator(1, ssim_weight=1.0)))
    model = tiny_model(tissue_weight=5.0, ssim_weight=0.5, adversarial_weight=0.1, adversarial_start_step=100)
    assert pix2pix.Pix2Pix.from_config(model.get_config()).get_config() == model.get_config()
    with pytest.raises(ValueError, match="tissue_weight must be 0 or positive"):
        tiny_model(tissue_weight=-1.0)


def test_cosine_decay_lowers_the_generator_and_discriminator_rates(tmp_path):
    config = config_lib.make_config(
        pix2pix_task.Pix2PixConfig, data=str(shared_dataset("mammography")), degrade="noise:0.05",
        image_size=32, batch_size=2, epochs=2, steps_per_epoch=2, generator_filters=4, generator_depth=3,
        discriminator_filters=4, learning_rate=4e-4, cosine_decay=True, export=False, run_name="cosine",
        test_fraction=0.05, logs_root=str(tmp_path / "logs"), models_root=str(tmp_path / "models"),
    )
    model = runner.train(pix2pix_task.Pix2PixTask(), config, verbose=0).model
    last_step_rate = 4e-4 * 0.5 * (1.0 + np.cos(np.pi * 3 / 4))
    assert float(model.generator_optimizer.learning_rate) == pytest.approx(last_step_rate, rel=1e-4)
    assert float(model.discriminator_optimizer.learning_rate) == pytest.approx(last_step_rate, rel=1e-4)


def test_unet_generator_has_two_convolutions_per_level_at_full_resolution_and_round_trips():
    model = tiny_model(generator="unet", norm="none", dropout_blocks=0, generator_depth=2)
    images = tf.random.uniform((2, 32, 40, 1), -1, 1)
    enhanced = model.generator(images)
    assert enhanced.shape == (2, 32, 40, 1) and float(tf.reduce_max(tf.abs(enhanced))) <= 1.0
    convolutions = [layer for layer in model.generator.layers if type(layer) is keras.layers.Conv2D]
    outputs = keras.Model(model.generator.input, [layer.output for layer in convolutions])(tf.zeros((1, 32, 32, 1)))
    full_resolution = [layer.name for layer, output in zip(convolutions, outputs) if output.shape[1] == 32]
    assert full_resolution == ["down0_conv1", "down0_conv2", "up0_conv1", "up0_conv2", "correction"]
    assert_config_round_trip(model, pix2pix.Pix2Pix)
    assert pix2pix.Pix2Pix.from_config(model.get_config()).generator_architecture == "unet"


@pytest.mark.parametrize("options, message", [
    (dict(norm="instance", dropout_blocks=0), "not 'instance'"),
    (dict(norm="none", dropout_blocks=1), "--dropout-blocks 0"),
    (dict(norm="none", dropout_blocks=0, full_resolution_filters=4), "--full-resolution-filters 0"),
])
def test_unet_generator_refuses_the_paper_generator_options(options, message):
    with pytest.raises(ValueError, match=message):
        pix2pix.build_generator(1, 4, 2, architecture="unet", **options)


def test_regression_step_updates_the_generator_and_its_average_but_never_runs_the_discriminator():
    model = tiny_model(generator="unet", norm="none", dropout_blocks=0, generator_depth=2, adversarial_weight=0.0,
                       ema_decay=0.5)
    discriminator_before = [w.copy() for w in model.discriminator.get_weights()]
    generator_before = [w.copy() for w in model.generator.get_weights()]
    calls = []
    model.discriminator.call = lambda *args, **kwargs: calls.append(args)
    source, target = tf.constant(np.random.default_rng(0).uniform(-1, 1, (2, 2, 32, 32, 1)), tf.float32)
    logs = model.train_step((source, target))
    assert calls == [] and sorted(logs) == ["l1_loss", "psnr", "ssim"]
    for before, after in zip(discriminator_before, model.discriminator.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert all(not np.allclose(before, after) for before, after in
               zip(generator_before, model.generator.get_weights()) if before.ndim == 4)
    assert int(model.discriminator_optimizer.iterations) == 0
    assert any(not np.allclose(before, after) for before, after in
               zip(generator_before, model.average_generator.get_weights()))


def test_cpu_unet_preset_builds_a_regression_unet_and_a_bad_generator_name_is_refused():
    config = config_lib.make_config(pix2pix_task.Pix2PixConfig, pix2pix_task.PRESETS, preset="cpu_unet",
                                    data="films")
    model = pix2pix_task.Pix2PixTask().build_model(config, None)
    layers = {type(layer) for layer in model.generator.layers}
    assert keras.layers.MaxPooling2D in layers and not layers & {keras.layers.GroupNormalization,
                                                                 keras.layers.BatchNormalization}
    assert not model.adversarial_weight and float(model.generator_optimizer.learning_rate) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="Unknown --generator 'dncnn'"):
        pix2pix_task.Pix2PixTask().resolve(config_lib.make_config(pix2pix_task.Pix2PixConfig, data="films",
                                                                  generator="dncnn"))
    with pytest.raises(ValueError, match="choose one of pix2pix, unet"):
        pix2pix.build_generator(1, 4, 2, architecture="dncnn")
