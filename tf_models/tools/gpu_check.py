"""`make gpu-check`: every task's training speed per precision on one GPU, float16 health, export parity.

Per task, in its own process: training images/s of the task's `train_step`
in float32, mixed_float16 (without and with XLA) and mixed_bfloat16; then
`float16_steps` steps under mixed_float16, with whether every logged loss
stayed finite and the value of each loss-scale optimizer's dynamic scale at
the end (it halves on each non-finite gradient, so a collapsed scale shows an
overflow problem even when the losses look fine); then the float32 model
exported to a SavedModel and float TFLite, with the largest difference from
Keras on validation inputs.

    python scripts/gpu_check.py            # the tasks' default configs, about 5 minutes on one GPU
    python scripts/gpu_check.py --quick    # the tasks' tiny presets, on CPU or GPU (CI)
"""

import dataclasses
import math
import pathlib
import tempfile
import time

import numpy as np
import tensorflow as tf

from tf_models.core import loop, runs
from tf_models.core import formats as formats_lib
from tf_models.tools import bench, benchmark
from tf_models import registry

# key -> (precision policy, jit_compile).
VARIANTS = {"float32": ("float32", False), "mixed_float16": ("mixed_float16", False),
            "mixed_float16_xla": ("mixed_float16", True), "mixed_bfloat16": ("mixed_bfloat16", False)}
PARITY_FORMATS = ("savedmodel", "tflite")


@dataclasses.dataclass
class Settings:
    warmup: int = 3
    steps: int = 20
    float16_steps: int = 100
    parity_examples: int = 16


MODES = {"full": Settings(), "quick": Settings(warmup=1, steps=2, float16_steps=5, parity_examples=4)}


def device_description():
    """The GPUs TensorFlow sees (name and compute capability), or none: the check then runs on the CPU."""
    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        gpus.append({"device": device.name, "name": details.get("device_name", "unknown"),
                     "compute_capability": list(details.get("compute_capability", ()))})
    return {"gpus": gpus, "runs_on": gpus[0]["name"] if gpus else "CPU"}


def loss_scales(model):
    """`{optimizer attribute: dynamic loss scale}` of the model's loss-scale optimizers."""
    scales = {}
    for attribute in ("optimizer", "generator_optimizer", "discriminator_optimizer"):
        optimizer = getattr(model, attribute, None)
        if optimizer is not None and hasattr(optimizer, "dynamic_scale"):
            scales[attribute] = float(np.asarray(optimizer.dynamic_scale))
    return scales


def float16_health(model, dataset, steps):
    """Runs `steps` training steps; whether every logged value stayed finite, the last losses, the loss scales."""
    function = loop.make_step_function(model.train_step, tf.distribute.get_strategy(), False)
    iterator = iter(dataset)
    finite = True
    for _ in range(steps):
        logs = {name: float(np.asarray(value)) for name, value in function(iterator).items()}
        finite = finite and all(math.isfinite(value) for value in logs.values())
    return {"steps": steps, "finite": finite, "last_logs": logs, "loss_scale": loss_scales(model)}


def _training(task, config, data, policy, jit_compile, settings):
    runs.set_seed(config.seed)
    model = bench._build(task, config, data, policy)
    try:
        seconds = benchmark.train_step_seconds(model, data.make_dataset(0), jit_compile, settings.warmup,
                                               settings.steps)
    except (tf.errors.OpError, ValueError, TypeError) as error:
        return {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"}, model
    return {"median_step_s": seconds, "images_per_s": config.batch_size / seconds}, model


def parity(task, model, config, examples):
    """Largest difference from Keras of the SavedModel and float TFLite of `model` on validation inputs."""
    with tempfile.TemporaryDirectory() as scratch:
        paths = runs.RunPaths(task.name, "gpu-check", pathlib.Path(scratch) / "logs", pathlib.Path(scratch) / "models")
        paths.make_dirs()
        _, report = formats_lib.export_task(task, model, config, paths, PARITY_FORMATS, None, examples, 0)
    return {name: entry["max_abs_vs_keras"] for name, entry in report["formats"].items()}


def check_task(task_name, overrides, settings):
    """Every figure of one task (run in a child process by `run`)."""
    started = time.perf_counter()
    task, config = bench.make_config(task_name, overrides)
    data = task.build_data(config)
    training, models = {}, {}
    for key, (policy, jit_compile) in VARIANTS.items():
        training[key], models[key] = _training(task, config, data, policy, jit_compile, settings)
    return {"batch_size": config.batch_size, "image_size": config.image_size, "training": training,
            "float16": float16_health(models["mixed_float16"], data.make_dataset(0), settings.float16_steps),
            "parity_max_abs_vs_keras": parity(task, models["float32"], config, settings.parity_examples),
            "duration_s": time.perf_counter() - started}


def run(mode="full", tasks=None, overrides=None, settings=None, isolate=True):
    """The check of every task (each in its own process with `isolate`); returns the results dict."""
    call = bench.in_child_process if isolate else (lambda function, *arguments: function(*arguments))
    settings = settings or MODES[mode]
    tasks = tuple(tasks or registry.names())
    started = time.perf_counter()
    results = {"mode": mode, "settings": dataclasses.asdict(settings), "tensorflow": tf.__version__,
               **device_description(), "tasks": {}}
    for name in tasks:
        print(f"gpu-check: {name} ...", flush=True)
        task_overrides = {**bench.task_overrides(mode).get(name, {}), **(overrides or {}).get(name, {})}
        results["tasks"][name] = call(check_task, name, task_overrides, settings)
    results["duration_s"] = time.perf_counter() - started
    return results


def _cell(figures):
    return f"{figures['images_per_s']:,.1f}" if "images_per_s" in figures else "error"


def markdown(results):
    """One row per task: images/s per precision, float16 health, export parity."""
    lines = [f"GPU check ({results['mode']}) on {results['runs_on']}, TensorFlow {results['tensorflow']}, "
             f"{results['duration_s'] / 60:.1f} minutes.", "",
             "| task | batch | " + " | ".join(f"{key} img/s" for key in VARIANTS) +
             " | float16 steps | losses finite | loss scale | max abs vs Keras (SavedModel / TFLite) |",
             "|" + "---|" * (len(VARIANTS) + 6)]
    for name, entry in results["tasks"].items():
        health = entry["float16"]
        scales = ", ".join(f"{value:g}" for value in health["loss_scale"].values()) or "-"
        differences = " / ".join(f"{max(values.values()):.3g}" for values in entry["parity_max_abs_vs_keras"].values())
        cells = [name, str(entry["batch_size"]), *(_cell(entry["training"][key]) for key in VARIANTS),
                 str(health["steps"]), "yes" if health["finite"] else "NO", scales, differences]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write(results, stem):
    """`<stem>.json` and `<stem>.md`; returns both paths."""
    stem = pathlib.Path(stem)
    return [runs.write_json(stem.with_suffix(".json"), results),
            runs.atomic_write_text(stem.with_suffix(".md"), markdown(results))]
