"""The tasks by name, for the scripts that work on any task (export, bench)."""

import importlib

TASKS = {
    "dcgan": ("tf_models.dcgan.task", "DCGANTask", "DCGANConfig"),
    "pix2pix": ("tf_models.pix2pix.task", "Pix2PixTask", "Pix2PixConfig"),
    "unet": ("tf_models.unet.task", "UNetTask", "UNetConfig"),
    "pneumonia": ("tf_models.pneumonia.task", "PneumoniaTask", "PneumoniaConfig"),
}


def lookup(name):
    """(task object, config class, presets) of the task called `name`."""
    if name not in TASKS:
        raise ValueError(f"Unknown task {name!r}; choose one of {', '.join(TASKS)}.")
    module_name, task_name, config_name = TASKS[name]
    module = importlib.import_module(module_name)
    return getattr(module, task_name)(), getattr(module, config_name), module.PRESETS


def parse_run(text):
    """'unet/carvana96' -> ('unet', 'carvana96')."""
    task, _, run = str(text).partition("/")
    if not run or task not in TASKS:
        raise ValueError(f"--run must be TASK/RUN with TASK one of {', '.join(TASKS)}, got {text!r}.")
    return task, run
