"""One distributed check, run by `tests/core/test_distribute.py` in a fresh process.

TensorFlow has to be told to split the CPU into two logical devices before
it initialises, so each check runs here, in its own process, and prints one
JSON line with what it measured:

    python tests/distribute_worker.py TRAINER DIR

TRAINER is dcgan, pix2pix, unet or pneumonia. Two checks: one step under
MirroredStrategy (2 replicas) against the default strategy on the same
global batch (with dropout where the model has it, the DCGAN's weight average
included; every replica's copy of each weight is compared), and a run of one epoch
under 2 replicas resumed under 1 in DIR. The run trains another model than
the step under the same process's strategy, as a user's process training
several runs does.
"""

import json
import os
import pathlib
import sys

import tensorflow as tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import imageio.v3 as iio  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from tf_models.dcgan import model as dcgan  # noqa: E402
from tf_models.pix2pix import model as pix2pix
from tf_models.pneumonia import model as pneumonia
from tf_models.unet import model as unet
from tf_models.core import config as config_lib  # noqa: E402
from tf_models.core import checkpoints, loop, runner  # noqa: E402
from tf_models.core import strategy as strategy_lib  # noqa: E402

GLOBAL_BATCH = 8
LEARNING_RATE = 0.1
# The DCGAN keeps a weight average, updated by each replica on its own copy: the comparison covers it.
EMA_DECAY = 0.5


def _sgd():
    return keras.optimizers.SGD(LEARNING_RATE)


def _dcgan():
    model = dcgan.DCGAN(image_size=28, latent_dim=8, generator_filters=4, discriminator_filters=4, seed=0,
                        ema_decay=EMA_DECAY)
    model.compile(generator_optimizer=_sgd(), discriminator_optimizer=_sgd())
    return model


def _pix2pix():
    model = pix2pix.Pix2Pix(generator_filters=4, generator_depth=3, discriminator_filters=4, norm="batch",
                            dropout_blocks=2)
    model.compile(_sgd(), _sgd())
    return model


def _unet():
    model = unet.build_unet((16, 16, 1), depth=2, base_filters=4, dropout=0.5)
    model.compile(optimizer=_sgd(), loss=unet.bce_dice_loss, metrics=[unet.DiceCoefficient(), unet.IoU()])
    return model


def _pneumonia():
    model = pneumonia.build_pneumonia_cnn(32, filters=4, blocks=2, dense_units=8, dropout=0.5)
    model.compile(optimizer=_sgd(), loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[keras.metrics.AUC(from_logits=True, name="auc")])
    return model


def _batch(name):
    rng = np.random.default_rng(1)
    uniform = lambda *shape: rng.uniform(-1.0, 1.0, (GLOBAL_BATCH, *shape)).astype(np.float32)  # noqa: E731
    if name == "dcgan":
        return uniform(28, 28, 1)
    if name == "pix2pix":
        return uniform(32, 32, 1), uniform(32, 32, 1)
    if name == "unet":
        return (uniform(16, 16, 1) + 1) / 2, (uniform(16, 16, 1) > 0).astype(np.float32)
    images = rng.uniform(0, 255, (GLOBAL_BATCH, 32, 32, 1)).astype(np.float32)
    labels = (np.arange(GLOBAL_BATCH) % 2).reshape(-1, 1).astype(np.float32)
    return images, labels, np.linspace(0.5, 1.5, GLOBAL_BATCH).astype(np.float32)


MODELS = {"dcgan": _dcgan, "pix2pix": _pix2pix, "unet": _unet, "pneumonia": _pneumonia}


def one_step(name, strategy, initial=None):
    """Builds the model under `strategy`, runs one train step on the global batch.

    `initial` is (weights, random seed states) to start from; returns the
    starting state, the weights after the step (every replica's copy, stacked
    on a first axis) and the metrics.
    """
    with strategy.scope():
        model = MODELS[name]()
    random_states = checkpoints.random_state_variables(model)
    if initial is not None:
        model.set_weights(initial[0])
        for variable, value in zip(random_states, initial[1]):
            variable.assign(value)
    before = [weight.numpy() for weight in model.weights], [variable.numpy() for variable in random_states]
    step = loop.make_step_function(model.train_step, strategy, jit_compile=False)
    dataset = tf.data.Dataset.from_tensors(_batch(name))
    step(iter(strategy.experimental_distribute_dataset(dataset)))
    after = [np.stack([np.asarray(copy) for copy in strategy.experimental_local_results(weight.value)])
             for weight in model.weights]
    metrics = {key: float(value) for key, value in model.get_metrics_result().items()}
    return before, after, metrics


def check_step(name):
    keras.utils.set_random_seed(0)
    single, single_after, single_metrics = one_step(name, tf.distribute.get_strategy())
    mirrored = strategy_lib.get_strategy("mirrored")
    _, mirrored_after, mirrored_metrics = one_step(name, mirrored, single)
    return {
        "replicas": mirrored.num_replicas_in_sync,
        "max_weight_difference": max(float(np.abs(a - b).max()) for a, b in zip(single_after, mirrored_after)),
        "max_update": max(float(np.abs(a - b).max()) for a, b in zip(single_after, single[0])),
        "max_metric_difference": max(abs(single_metrics[key] - mirrored_metrics[key]) for key in single_metrics),
    }


def _write_pngs(folder, names, size, rng, mask=False):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        image = rng.integers(0, 256, (size, size), dtype=np.uint8)
        iio.imwrite(folder / f"{name}.png", (image > 127).astype(np.uint8) * 255 if mask else image)


def _task_config(task_name, root):
    """(task module, config fields) of a tiny run on generated data under `root`."""
    rng = np.random.default_rng(0)
    if task_name == "dcgan":
        from tf_models.dcgan import task
        fields = dict(data="digits", generator_filters=4, discriminator_filters=4, latent_dim=8, sample_count=4,
                      ema_decay=EMA_DECAY)
    elif task_name == "pix2pix":
        from tf_models.pix2pix import task
        _write_pngs(root / "clean", [f"image{i}" for i in range(6)], 40, rng)
        fields = dict(data=str(root / "clean"), image_size=32, generator_filters=4, generator_depth=3,
                      discriminator_filters=4, dropout_blocks=0, test_fraction=0.3, sample_count=2)
    elif task_name == "unet":
        from tf_models.unet import task
        names = [f"slice{i}" for i in range(6)]
        _write_pngs(root / "pairs" / "image", names, 16, rng)
        _write_pngs(root / "pairs" / "label", names, 16, rng, mask=True)
        fields = dict(data=str(root / "pairs"), image_size="16x16", depth=2, base_filters=4, augment=False,
                      validation_fraction=0.3, overlay_count=2)
    else:
        from tf_models.pneumonia import task
        for split in ("train", "test"):
            _write_pngs(root / "xray" / split / "NORMAL", [f"IM-{i:04d}-0001" for i in range(6)], 32, rng)
            _write_pngs(root / "xray" / split / "PNEUMONIA", [f"person{i}_bacteria_1" for i in range(6)], 32, rng)
        fields = dict(data=str(root / "xray"), image_size=32, filters=4, blocks=2, dense_units=8, dropout=0.0,
                      augment=False, validation_fraction=0.25)
    common = dict(batch_size=4, steps_per_epoch=2, save_every_steps=0, export=False, run_name="resume",
                  logs_root=str(root / "logs"), models_root=str(root / "models"))
    return task, {**fields, **common}


def check_resume(task_name, root):
    task, fields = _task_config(task_name, pathlib.Path(root))
    config_class = next(value for key, value in vars(task).items() if key.endswith("Config") and key != "TrainConfig")
    task_class = next(value for key, value in vars(task).items() if key.endswith("Task"))
    first = runner.train(task_class(), config_lib.make_config(config_class, strategy="mirrored", epochs=1, **fields),
                         verbose=0)
    second = runner.train(task_class(), config_lib.make_config(config_class, strategy="default", epochs=2, **fields),
                          verbose=0)
    return {"first_latest": first.written[1], "restored_from": second.restored_from, "latest": second.written[1]}


def main(argv):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    name, root = argv
    result = check_step(name)
    try:
        result.update(check_resume(name, root))
    except Exception as error:  # reported to the test, which names it
        result["resume_error"] = f"{type(error).__name__}: {str(error)[-500:]}"
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
