"""Every model under each precision policy: dtypes, one finite training step, float32 exports."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_models.dcgan import model as dcgan
from tf_models.pix2pix import model as pix2pix
from tf_models.pneumonia import model as pneumonia
from tf_models.unet import model as unet
from tf_models.core import config as config_lib
from tf_models.core import formats as formats_lib
from tf_models.core import precision, runner, runs
from tf_models.pix2pix import task as pix2pix_task
from tf_models.pneumonia import task as pneumonia_task
from tests.conftest import shared_dataset
from tests.model_checks import assert_policy_dtypes

POLICIES = {"float32": "float32", "mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}
BATCH = 4
# Dynamic loss scaling starts at 2**15 and skips the steps whose scaled gradients overflow float16,
# halving the scale each time: Pix2Pix's L1 term (weight 100) overflows for the first few steps.
MAX_SKIPPED_STEPS = 8


def adam():
    return keras.optimizers.Adam(1e-3)


def build_dcgan():
    model = dcgan.DCGAN(image_size=28, latent_dim=8, generator_filters=4, discriminator_filters=4, seed=0)
    model.compile(generator_optimizer=adam(), discriminator_optimizer=adam())
    return model, np.random.default_rng(0).uniform(-1, 1, (BATCH, 28, 28, 1)).astype(np.float32)


def build_pix2pix():
    model = pix2pix.Pix2Pix(generator_filters=4, generator_depth=3, discriminator_filters=4, norm="batch")
    model.compile(adam(), adam())
    images = np.random.default_rng(0).uniform(-1, 1, (2, BATCH, 16, 16, 1)).astype(np.float32)
    return model, (images[0], images[1])


def build_unet():
    model = unet.build_unet((16, 16, 1), depth=2, base_filters=4)
    model.compile(optimizer=adam(), loss=unet.bce_dice_loss, metrics=[unet.DiceCoefficient()])
    rng = np.random.default_rng(0)
    return model, (rng.uniform(0, 1, (BATCH, 16, 16, 1)).astype(np.float32),
                   (rng.uniform(0, 1, (BATCH, 16, 16, 1)) > 0.5).astype(np.float32))


def build_pneumonia():
    model = pneumonia_task.compile_model(
        pneumonia.build_pneumonia_cnn(32, filters=4, blocks=2, dense_units=8, dropout=0.0), 1e-3
    )
    rng = np.random.default_rng(0)
    return model, (rng.uniform(0, 255, (BATCH, 32, 32, 1)).astype(np.float32),
                   np.array([[0.0], [1.0], [0.0], [1.0]], np.float32))


MODELS = {"dcgan": build_dcgan, "pix2pix": build_pix2pix, "unet": build_unet, "pneumonia": build_pneumonia}


def networks(model):
    """The networks that get trained: both of a GAN, or the model itself."""
    return [model.generator, model.discriminator] if hasattr(model, "generator") else [model]


def optimizers(model):
    if hasattr(model, "generator_optimizer"):
        return [model.generator_optimizer, model.discriminator_optimizer]
    return [model.optimizer]


def final_output(model, data):
    if isinstance(model, dcgan.DCGAN):
        return model.generator(tf.zeros((BATCH, model.latent_dim)))
    return model(data[0])


def updated(network, weights):
    return any(not np.array_equal(old, new) for old, new in zip(weights, snapshot(network)))


def snapshot(network):
    return [weight.numpy().copy() for weight in network.trainable_weights]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", MODELS)
def test_dtypes_and_one_finite_training_step(name, policy):
    precision.set_policy(policy)
    model, data = MODELS[name]()
    for network in networks(model):
        assert_policy_dtypes(network, POLICIES[policy])
    assert final_output(model, data).dtype == tf.float32
    if policy == "mixed_float16":
        assert all(isinstance(optimizer, keras.optimizers.LossScaleOptimizer) for optimizer in optimizers(model))

    before = [snapshot(network) for network in networks(model)]
    train_step = tf.function(model.train_step)
    for _ in range(MAX_SKIPPED_STEPS + 1):
        logs = train_step(data)
        if all(updated(network, weights) for network, weights in zip(networks(model), before)):
            break
    for key, value in logs.items():
        assert np.isfinite(float(value)), f"{name} {policy}: {key} = {float(value)}"
    for network, weights in zip(networks(model), before):
        assert updated(network, weights), f"{network.name} was not updated under {policy}"


def test_a_mixed_float16_model_exports_float32_at_the_boundary(tmp_path):
    precision.set_policy("mixed_float16")
    model, data = build_pix2pix()
    tf.function(model.train_step)(data)
    paths = runs.RunPaths("pix2pix", "mixed", tmp_path / "logs", tmp_path / "models")
    images = np.zeros((1, 16, 16, 1), np.uint8)
    serving_dir = formats_lib.export_formats(model.generator, pix2pix_task.serving_endpoints(model.generator),
                                        paths.model_dir, ("savedmodel",), {"image": images})[0][0]
    signature = tf.saved_model.load(str(serving_dir)).signatures["enhance_float"]
    (inputs,) = signature.structured_input_signature[1].values()
    assert inputs.dtype == tf.float32
    assert signature.structured_outputs["enhanced"].dtype == tf.float32
    enhanced = signature(image=tf.constant((data[0] + 1.0) / 2.0))["enhanced"]
    assert enhanced.dtype == tf.float32 and np.isfinite(enhanced.numpy()).all()


def test_a_mixed_bfloat16_run_exports_float32_files_that_tflite_converts(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner.machine, "cpu_features", lambda: ["sse4_2", "fma", "avx", "avx2"])
    config = config_lib.make_config(
        pix2pix_task.Pix2PixConfig, pix2pix_task.PRESETS, preset="tiny", data=str(shared_dataset("mammography")),
        precision="mixed_bfloat16", run_name="bf16", logs_root=str(tmp_path / "logs"),
        models_root=str(tmp_path / "models"),
    )
    result = runner.train(pix2pix_task.Pix2PixTask(), config, verbose=0)
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    if not tf.config.list_logical_devices("GPU"):
        assert "warning: --precision mixed_bfloat16 on a CPU without AVX-512 BF16" in capsys.readouterr().err
    report = json.loads(result.paths.model_dir.joinpath("export_formats.json").read_text())
    tflite = report["formats"]["tflite"]
    assert tflite["op_profile"]["ops"]["CONV_2D"]["dtypes"] == ["FLOAT32"]
    assert tflite["max_abs_vs_keras"]["enhanced"] <= 1.0
    with precision.policy_scope("float32"):
        saved = keras.saving.load_model(result.paths.keras_file, compile=False)
    for exported, trained in zip(saved.get_weights(), result.model.get_weights()):
        np.testing.assert_array_equal(exported, trained)


@pytest.mark.parametrize("name, features, accelerators, warned", [
    ("mixed_bfloat16", ["sse4_2", "fma", "avx", "avx2"], [], True),
    ("mixed_bfloat16", ["avx", "avx2", "avx512f", "avx512_bf16"], [], False),
    ("mixed_bfloat16", ["avx", "avx2", "amx_bf16", "amx_tile"], [], False),
    ("mixed_bfloat16", ["sse4_2", "avx", "avx2"], ["/device:GPU:0"], False),
    ("mixed_bfloat16", ["asimd", "sve"], [], False),
    ("float32", ["avx", "avx2"], [], False),
    ("mixed_float16", ["avx", "avx2"], [], False),
])
def test_bfloat16_on_a_cpu_without_bfloat16_instructions_is_warned(name, features, accelerators, warned):
    warning = precision.emulation_warning(name, features, accelerators)
    assert (warning is not None) == warned
    if warned:
        assert "--precision float32" in warning
