"""Timing helpers of `scripts/bench.py`: training steps, input pipelines, inference, memory.

Every figure is a median (or, for a pipeline, a rate over many batches)
measured after warm-up calls, so tracing, XLA compilation and cache filling
are left out. Timed calls wait for their results (`numpy()`), so
asynchronous execution cannot hide work.
"""

import resource
import time

import numpy as np
import tensorflow as tf

from tf_models.core import loop, timing


def train_step_seconds(model, dataset, jit_compile, warmup, steps, step=None):
    """Median seconds per training step of `model.train_step` (or `step`) as `tf_models.core.loop` runs it."""
    return timing.median_seconds(step_runner(model, dataset, jit_compile, step), warmup, steps)


def pipeline_images_per_second(dataset, batch_size, warmup, batches):
    """Images per second that `dataset` delivers alone (no model), over `batches` batches after warm-up."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        tf.nest.map_structure(np.asarray, next(iterator))
    return batches * batch_size / (time.perf_counter() - start)


def inference_figures(run, inputs, warmup, repeats):
    """Images/s of `run(inputs)` on the whole batch and the median batch-1 latency (ms).

    `run` maps `{name: array [N, ...]}` to outputs; `inputs` holds one batch.
    """
    batch_size = len(next(iter(inputs.values())))
    single = {name: value[:1] for name, value in inputs.items()}
    batch_seconds = timing.median_seconds(lambda: run(inputs), warmup, repeats)
    latency_seconds = timing.median_seconds(lambda: run(single), warmup, repeats)
    return {"images_per_s": batch_size / batch_seconds, "batch1_latency_ms": 1000.0 * latency_seconds}


def peak_resident_megabytes():
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def interleaved_step_seconds(functions, warmup, steps, rounds):
    """Median seconds per call of each of `functions` ({name: callable}), timed in alternating rounds.

    Alternating the candidates spreads any change in the machine's load (a
    shared CPU) over all of them, so their ratio is fair.
    """
    for function in functions.values():
        for _ in range(warmup):
            function()
    durations = {name: [] for name in functions}
    for _ in range(max(1, rounds)):
        for name, function in functions.items():
            for _ in range(max(1, steps)):
                start = time.perf_counter()
                function()
                durations[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) for name, values in durations.items()}


def step_runner(model, dataset, jit_compile, step=None):
    """A no-argument function running one training step as `tf_models.core.loop` does, waiting for it."""
    function = loop.make_step_function(step or model.train_step, tf.distribute.get_strategy(), jit_compile)
    iterator = iter(dataset)

    def run():
        logs = function(iterator)
        float(np.asarray(tf.nest.flatten(logs)[0]))

    return run


def python_loop_runner(step, dataset):
    """A no-argument function calling `step(batch)` on the next batch from Python (the tutorial's loop)."""
    iterator = iter(dataset)

    def run():
        batch = next(iterator)
        outputs = step(batch[0] if isinstance(batch, tuple) else batch)
        float(np.asarray(tf.nest.flatten(outputs)[0]))

    return run
