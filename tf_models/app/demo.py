"""Tiny trained runs of the app's tasks, for the app's tests.

Each run trains its task's `tiny` preset for a few steps on a small copy of
real data (`registry.TinyData`) and writes exactly what the app reads. Their
outputs show the pipeline working, not the quality of a trained model.
"""

import pathlib

import keras

from tf_models import registry
from tf_models.core import config as config_lib
from tf_models.core import runner, runs

RUN_NAME = "tiny"
CONDITIONAL_RUN_NAME = "tiny-conditional"
DONE_FILE = "app_demo_done"


def train_tiny_run(task_name, root, datasets_root, run_name=RUN_NAME, **overrides):
    """Trains (once) the `tiny` preset of `task_name` under `root`/{logs,models}; returns its model folder.

    The run is exported as at the end of any training, with the SavedModel as its only format.
    """
    spec = registry.get(task_name)
    task, config_class, presets = spec.load()
    root = pathlib.Path(root)
    config = config_lib.make_config(
        config_class, presets, preset="tiny", run_name=run_name, save_every_steps=0, export=False,
        data=registry.prepare_tiny_data(spec, datasets_root, root / "datasets"),
        logs_root=str(root / "logs"), models_root=str(root / "models"), **overrides,
    )
    model_dir = root / "models" / task_name / run_name
    if (model_dir / DONE_FILE).is_file():
        return model_dir
    keras.utils.set_random_seed(0)
    result = runner.train(task, config, verbose=0)
    runner.export_run(task, result.model, result.config, result.paths, formats=("savedmodel",))
    runs.atomic_write_text(model_dir / DONE_FILE, "ok\n")
    return model_dir


def train_tiny_runs(root, datasets_root, tasks=None):
    """Trains every tiny run of the app's tasks not yet trained, on small copies of the shared datasets.

    Returns the models root to point `TF_MODELS_ROOT` at.
    """
    tasks = tasks or [spec.name for spec in registry.specs() if spec.app is not None]
    for task_name in tasks:
        train_tiny_run(task_name, root, datasets_root)
    if "dcgan" in tasks:
        train_tiny_run("dcgan", root, datasets_root, CONDITIONAL_RUN_NAME, conditional=True)
    return pathlib.Path(root) / "models"
