"""Measure training throughput (images/s) of a task's train step, with and without XLA.

Examples:
  python scripts/bench.py --task dcgan --data ../shared/datasets/mnist --batch-size 256
  python scripts/bench.py --task unet --data ../shared/datasets/carvana_hr --preset carvana --image-size 96x144

Times the same step function the trainers use (`tf_models.core.loop`), after
warm-up steps, and reports the median; writes logs/bench/<timestamp>.json.
Task flags after the known ones go to the task's config (e.g. --preset, --image-size).
"""

import argparse
import json
import platform
import sys
import time

import numpy as np
import tensorflow as tf

from tf_models.core import config as config_lib
from tf_models.core import loop, runs

TASKS = {
    "dcgan": ("tf_models.tasks.dcgan", "DCGANTask", "DCGANConfig"),
    "pix2pix": ("tf_models.tasks.pix2pix", "Pix2PixTask", "Pix2PixConfig"),
    "unet": ("tf_models.tasks.unet", "UNetTask", "UNetConfig"),
    "pneumonia": ("tf_models.tasks.pneumonia", "PneumoniaTask", "PneumoniaConfig"),
}


def time_steps(task, config, jit_compile, warmup, steps):
    """Median seconds per training step of `task` under `config`."""
    runs.set_seed(config.seed)
    data = task.build_data(config)
    model = task.build_model(config)
    step = loop.make_step_function(model.train_step, tf.distribute.get_strategy(), jit_compile)
    iterator = iter(data.make_dataset(0))
    for _ in range(warmup):
        step(iterator)
    durations = []
    for _ in range(steps):
        start = time.perf_counter()
        logs = step(iterator)
        float(next(iter(logs.values())))
        durations.append(time.perf_counter() - start)
    return float(np.median(durations))


def main(argv=None):
    import importlib

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), required=True)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--output-dir", default="logs/bench")
    args, task_argv = parser.parse_known_args(argv)
    module_name, task_name, config_name = TASKS[args.task]
    module = importlib.import_module(module_name)
    config = config_lib.parse_config(getattr(module, config_name), task_argv, presets=module.PRESETS)
    task = getattr(module, task_name)()
    config = task.resolve(config)
    results = {"task": args.task, "batch_size": config.batch_size, "image_size": config.image_size,
               "warmup_steps": args.warmup, "timed_steps": args.steps, "machine": platform.processor() or
               platform.machine(), "tensorflow": tf.__version__, "config": vars(config)}
    for jit_compile in (False, True):
        seconds = time_steps(task, config, jit_compile, args.warmup, args.steps)
        key = "xla" if jit_compile else "no_xla"
        results[key] = {"median_step_s": seconds, "images_per_s": config.batch_size / seconds}
        print(f"{args.task} jit_compile={jit_compile}: {seconds:.3f} s/step, "
              f"{config.batch_size / seconds:.1f} images/s")
    path = runs.write_json(f"{args.output_dir}/{args.task}-{time.strftime('%Y%m%d-%H%M%S')}.json", results)
    print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
