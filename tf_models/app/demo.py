"""Tiny trained runs of the four app tasks, for the app's tests and its README screenshots.

Each run trains a few steps on real data from the shared datasets (the
DCGAN on the bundled digits) and writes exactly what the app reads:

    python scripts/app_screenshots.py --train-tiny --output docs/app/

They take about a minute together on two CPU cores; their pictures show the
pipeline working, not the quality of a fully trained model.
"""

import pathlib
import shutil

import keras

from tf_models.core import config as config_lib
from tf_models.core import runner, runs
from tf_models.dcgan import task as dcgan_task
from tf_models.pix2pix import task as pix2pix_task
from tf_models.pneumonia import task as pneumonia_task
from tf_models.unet import task as unet_task

RUN_NAME = "tiny"
DONE_FILE = "app_demo_done"


# (folder, files kept per folder): enough for a few steps and a validation split with both classes.
SUBSETS = {
    "mammography": [("", 24)],
    "carvana_hr": [("train", 96), ("train_masks", 96)],
    "chest_xray": [(f"{split}/{label}", 48) for split in ("train", "test") for label in ("NORMAL", "PNEUMONIA")],
}


def copy_subsets(datasets_root, target):
    """Copies the first files of each shared dataset's folders (same layout) into `target`; returns it."""
    datasets_root, target = pathlib.Path(datasets_root), pathlib.Path(target)
    for name, folders in SUBSETS.items():
        for folder, count in folders:
            source, destination = datasets_root / name / folder, target / name / folder
            if destination.is_dir():
                continue
            destination.mkdir(parents=True)
            files = sorted(path for path in source.iterdir() if path.is_file() and path.suffix != ".txt")
            for path in [path for path in files if path.suffix != ".csv"][:count]:
                shutil.copyfile(path, destination / path.name)
    return target


def _configs(datasets_root):
    datasets_root = pathlib.Path(datasets_root)
    return {
        "dcgan": (dcgan_task.DCGANTask, dcgan_task.DCGANConfig, dict(
            data="digits", epochs=1, steps_per_epoch=8, batch_size=32, generator_filters=8,
            discriminator_filters=8, latent_dim=16, sample_count=4)),
        "pix2pix": (pix2pix_task.Pix2PixTask, pix2pix_task.Pix2PixConfig, dict(
            data=str(datasets_root / "mammography"), degrade="noise:0.05", image_size=64, generator_depth=3,
            generator_filters=8, discriminator_filters=8, batch_size=4, epochs=1, steps_per_epoch=6,
            sample_count=2)),
        "unet": (unet_task.UNetTask, unet_task.UNetConfig, dict(
            data=str(datasets_root / "carvana_hr"), image_size="32x48", depth=2, base_filters=8, batch_size=16,
            epochs=1, steps_per_epoch=6, overlay_count=2)),
        "pneumonia": (pneumonia_task.PneumoniaTask, pneumonia_task.PneumoniaConfig, dict(
            data=str(datasets_root / "chest_xray"), preset="tiny", image_size=32, epochs=1, steps_per_epoch=4,
            patience=1)),
    }


def _export(task_name, result, config):
    """The artifacts the app reads, without the TFLite conversions the full export adds."""
    paths, model = result.paths, result.model
    runs.save_keras_model(model, paths.keras_file)
    if task_name == "pix2pix":
        pix2pix_task.export_enhancer(model.sampling_generator, paths, config.image_size, config.generator_depth,
                                     tflite=False)


def train_tiny_run(task_name, root, datasets_root):
    """Trains (once) the tiny run of `task_name` under `root`/{logs,models}; returns its model folder."""
    task_class, config_class, values = _configs(datasets_root)[task_name]
    root = pathlib.Path(root)
    config = config_lib.make_config(
        config_class, getattr(_task_module(task_name), "PRESETS", {}), run_name=RUN_NAME, save_every_steps=0, export=False,
        logs_root=str(root / "logs"), models_root=str(root / "models"), **values,
    )
    model_dir = root / "models" / task_name / RUN_NAME
    if (model_dir / DONE_FILE).is_file():
        return model_dir
    keras.utils.set_random_seed(0)
    task = task_class()
    result = runner.train(task, config, verbose=0)
    _export(task_name, result, config)
    if task_name == "pneumonia":
        pneumonia_task.calibrate_run(result.model, result.paths, task.data.validation_dataset)
    runs.atomic_write_text(model_dir / DONE_FILE, "ok\n")
    return model_dir


def _task_module(task_name):
    return {"dcgan": dcgan_task, "pix2pix": pix2pix_task, "unet": unet_task, "pneumonia": pneumonia_task}[task_name]


def train_tiny_runs(root, datasets_root, tasks=("dcgan", "pix2pix", "unet", "pneumonia")):
    """Trains every tiny run not yet trained, on small copies of the shared datasets.

    Returns the models root to point `TF_MODELS_ROOT` at.
    """
    subsets = copy_subsets(datasets_root, pathlib.Path(root) / "datasets")
    for task_name in tasks:
        train_tiny_run(task_name, root, subsets)
    return pathlib.Path(root) / "models"
