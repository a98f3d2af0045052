"""`make bench`: training, input-pipeline and inference figures of every task, and the tutorial DCGAN ratio.

Each task runs in its own process (so its peak resident memory is its own):
training images/s of the task's `train_step` (float32, with and without XLA),
images/s of its tf.data pipeline alone, inference images/s and batch-1
latency of Keras, the SavedModel, the three TFLite files and the ONNX file, and file sizes.
A last process times the TF tutorial's DCGAN step (`tutorial_dcgan`) next to
the project's step on the same networks and batch.

Against the machine itself: a first process describes the CPU (model,
cores, features, thread settings) and measures its peak FLOP/s (a large
float32 matmul and a large 3x3 convolution, best of N, `machine`); each
task reports its FLOPs per training and per inference image
(`tf_models.tools.flops`), the FLOP/s its training step and each inference
format achieve, and those as a share of the measured peaks. Training is
also timed under `mixed_bfloat16` next to float32.

    python scripts/bench.py            # full: default image sizes
    python scripts/bench.py --quick    # small models, under 5 minutes (CI smoke)
"""

import dataclasses
import multiprocessing
import os
import pathlib
import tempfile
import time

import keras
import tensorflow as tf

from tf_models.dcgan import tutorial as tutorial_dcgan
from tf_models.core import export, precision, runs
from tf_models.core import formats as formats_lib
from tf_models.tools import benchmark, flops, machine
from tf_models.core import config as config_lib
from tf_models import registry

SHARED = pathlib.Path(os.environ.get("SHARED_DATASETS", pathlib.Path(__file__).resolve().parents[2].parent
                                     / "shared" / "datasets"))


@dataclasses.dataclass
class Settings:
    """How long each measurement runs."""

    warmup: int = 2
    steps: int = 6
    pipeline_batches: int = 30
    inference_warmup: int = 2
    inference_repeats: int = 5
    parity_examples: int = 32
    calibration_examples: int = 16
    tutorial_rounds: int = 3
    tutorial_steps: int = 8
    peak_repeats: int = 5


MODES = {
    "full": Settings(),
    "quick": Settings(warmup=1, steps=3, pipeline_batches=8, inference_warmup=1, inference_repeats=2,
                      parity_examples=8, calibration_examples=4, tutorial_rounds=2, tutorial_steps=3,
                      peak_repeats=3),
}

def task_overrides(mode):
    """{task: config overrides} of a bench mode: `full` trains each task's defaults (plus its registry entry's
    `bench_overrides`) on its shared dataset, `quick` its `tiny` preset; "tutorial" is the TF tutorial's DCGAN."""
    overrides = {}
    for spec in registry.specs():
        data = dict(data=str(SHARED / spec.bench_data))
        overrides[spec.name] = {**data, **spec.bench_overrides} if mode == "full" else {**data, "preset": "tiny"}
    overrides["tutorial"] = dict(data=str(SHARED / "mnist"), **({} if mode == "full" else {"batch_size": 64}))
    return overrides


def make_config(task_name, overrides):
    task, config_class, presets = registry.lookup(task_name)
    config = config_lib.make_config(config_class, presets, **{"run_name": "bench", "export": False, **overrides})
    return task, task.resolve(config)


# Training variants: key -> (precision policy, jit_compile). The model of the first one is exported.
TRAINING_VARIANTS = {"no_xla": ("float32", False), "xla": ("float32", True), "mixed_bfloat16": ("mixed_bfloat16", False)}


def _build(task, config, data, policy):
    precision.set_policy(policy)
    try:
        return task.build_model(config, data)
    finally:
        precision.set_policy("float32")


def training_figures(task, config, data, settings):
    """Median training images/s per `TRAINING_VARIANTS` (a fresh model each), or the error a variant gave.

    Returns (figures, the float32 model without XLA).
    """
    figures, models = {}, {}
    for key, (policy, jit_compile) in TRAINING_VARIANTS.items():
        runs.set_seed(config.seed)
        model = models[key] = _build(task, config, data, policy)
        try:
            seconds = benchmark.train_step_seconds(model, data.make_dataset(0), jit_compile, settings.warmup,
                                                   settings.steps)
        except (tf.errors.OpError, ValueError, TypeError) as error:
            figures[key] = {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"}
            continue
        figures[key] = {"median_step_s": seconds, "images_per_s": config.batch_size / seconds}
    return figures, models["no_xla"]


def image_fill(config):
    """(height, width) of the config's images, for networks whose inputs leave them open."""
    size = getattr(config, "image_size", None)
    if isinstance(size, str):
        return tuple(int(part) for part in size.lower().split("x"))
    if isinstance(size, int) and size:
        return (size, size)
    return tuple(size) if size else None


def flop_figures(task, model, config):
    """FLOPs per training image (what one train_step runs) and per inference image (the inference model)."""
    fill = image_fill(config)
    inference_model = task.inference_model(model)
    count = flops.count_flops(inference_model, flops.input_shapes_of(inference_model, 1, fill))
    return {"training_per_image": flops.training_flops_per_example(model, fill),
            "inference_per_image": count.total, "uncounted_layers": count.uncounted}


def inference_runners(task, model, paths, formats_report):
    """{format: function(inputs) -> outputs}: Keras (the serving function as a tf.function) and every file."""
    function, signature = task.serving_endpoints(model, paths)["serving_default"]
    compiled = tf.function(function)
    threads = len(os.sched_getaffinity(0))
    result = {"keras": lambda inputs: export.call_endpoint(compiled, signature, inputs)}
    for name, entry in formats_report.items():
        result[name] = formats_lib.format_runner(name, entry["path"], threads=threads)
    return result


def benchmark_task(task_name, overrides, settings):
    """Every figure of one task (run in a child process by `run`)."""
    started = time.perf_counter()
    task, config = make_config(task_name, overrides)
    runs.set_seed(config.seed)
    data = task.build_data(config)
    setup_seconds = time.perf_counter() - started
    training, model = training_figures(task, config, data, settings)
    fastest = max(entry.get("images_per_s", 0.0) for entry in training.values())
    pipeline = benchmark.pipeline_images_per_second(data.make_dataset(1), config.batch_size, settings.warmup,
                                                    settings.pipeline_batches)
    result = {
        "config": dataclasses.asdict(config), "data_setup_s": setup_seconds, "batch_size": config.batch_size,
        "image_size": config.image_size, "training": training, "flops": flop_figures(task, model, config),
        "pipeline": {"images_per_s": pipeline, "ratio_to_training": pipeline / fastest if fastest else None},
    }
    with tempfile.TemporaryDirectory() as scratch:
        paths = runs.RunPaths(task_name, "bench", pathlib.Path(scratch) / "logs", pathlib.Path(scratch) / "models")
        paths.make_dirs()
        _, report = formats_lib.export_task(task, model, config, paths, formats_lib.FORMATS, None, settings.parity_examples,
                                       settings.calibration_examples)
        keras_file = runs.save_keras_model(task.inference_model(model), paths.model_dir / "inference.keras")
        sizes = {"keras": keras_file.stat().st_size}
        sizes.update({name: entry["size_bytes"] for name, entry in report["formats"].items()})
        inputs, _ = task.deployment_examples(model, config, "validation", config.batch_size)
        inference = {
            name: benchmark.inference_figures(run, inputs, settings.inference_warmup, settings.inference_repeats)
            for name, run in inference_runners(task, model, paths, report["formats"]).items()
        }
    parity = {name: entry["max_abs_vs_keras"] for name, entry in report["formats"].items()}
    result["export"] = export_summary(report)
    result.update(inference_batch_size=len(next(iter(inputs.values()))), inference=inference, file_size_bytes=sizes,
                  parity_max_abs_vs_keras=parity, duration_s=time.perf_counter() - started,
                  peak_resident_mb=benchmark.peak_resident_megabytes())
    return result


# The project's step as the trainer runs it (float32, no XLA: the defaults), with XLA, and in mixed bfloat16.
PROJECT_VARIANTS = (("project", "float32", False), ("project_xla", "float32", True),
                    ("project_mixed_bfloat16", "mixed_bfloat16", False))


def benchmark_tutorial(overrides, settings):
    """The TF tutorial's step (Python loop, one tf.function, two tapes) against the project's DCGAN step.

    Same networks (`architecture="tutorial"`), batch, optimizer settings and
    input pipeline; the candidates are timed in alternating rounds.
    """
    task, config = make_config("dcgan", {"preset": "tutorial", **overrides})
    runs.set_seed(config.seed)
    data = task.build_data(config)
    generator = tutorial_dcgan.build_generator(config.latent_dim)
    discriminator = tutorial_dcgan.build_discriminator()
    reference_step = tutorial_dcgan.make_train_step(
        generator, discriminator, keras.optimizers.Adam(tutorial_dcgan.LEARNING_RATE),
        keras.optimizers.Adam(tutorial_dcgan.LEARNING_RATE), config.latent_dim,
    )
    candidates = {"reference": benchmark.python_loop_runner(reference_step, data.make_dataset(0))}
    for name, policy, jit_compile in PROJECT_VARIANTS:
        precision.set_policy(policy)
        model = task.build_model(config, data)
        precision.set_policy("float32")
        candidates[name] = benchmark.step_runner(model, data.make_dataset(0), jit_compile)
    seconds = benchmark.interleaved_step_seconds(candidates, settings.warmup, settings.tutorial_steps,
                                                 settings.tutorial_rounds)
    figures = {name: {"median_step_s": value, "images_per_s": config.batch_size / value}
               for name, value in seconds.items()}
    reference = figures["reference"]["images_per_s"]
    return {
        "batch_size": config.batch_size, "steps": figures,
        "ratio_to_reference": {name: entry["images_per_s"] / reference for name, entry in figures.items()},
        "peak_resident_mb": benchmark.peak_resident_megabytes(),
    }


def machine_figures(repeats):
    """The CPU, the thread settings and the measured peaks (run first, in its own process)."""
    return {**machine.describe(), "peak": machine.measure_peak(repeats=repeats)}


def _share(achieved, peak):
    return {"flops_per_s": achieved, "of_conv_peak": achieved / peak["conv3x3_float32"]["flops_per_s"],
            "of_matmul_peak": achieved / peak["matmul_float32"]["flops_per_s"]}


def utilisation(entry, peak):
    """Achieved FLOP/s of each training variant and inference format, and their shares of the measured peaks."""
    training = {key: _share(entry["flops"]["training_per_image"] * figures["images_per_s"], peak)
                for key, figures in entry["training"].items() if "images_per_s" in figures}
    inference = {name: _share(entry["flops"]["inference_per_image"] * figures["images_per_s"], peak)
                 for name, figures in entry["inference"].items()}
    return {"training": training, "inference": inference}


def _child(job):
    function, arguments = job
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return function(*arguments)


def in_child_process(function, *arguments):
    """`function(*arguments)` in a fresh process (its own peak memory, no state left behind)."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(_child, ((function, arguments),))


def run(mode="full", tasks=None, overrides=None, settings=None, tutorial=True, isolate=True,
        progress=None):
    """All figures, one child process per task (`isolate`); returns the results dict.

    `progress(results)`, when given, is called after each task (to save partial results).

    Without `isolate` every task runs in this process, which is faster to
    start, but then a task's peak memory includes the tasks before it.
    """
    call = in_child_process if isolate else (lambda function, *arguments: function(*arguments))
    settings = settings or MODES[mode]
    tasks = tuple(tasks or registry.names())
    defaults = task_overrides(mode)
    overrides = {name: {**defaults.get(name, {}), **(overrides or {}).get(name, {})}
                 for name in tasks + ("tutorial",)}
    started = time.perf_counter()
    results = {"mode": mode, "settings": dataclasses.asdict(settings), "tensorflow": tf.__version__,
               "keras": keras.__version__, "cpu_count": len(os.sched_getaffinity(0)),
               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "tasks": {}}
    print("bench: CPU and peak FLOP/s ...", flush=True)
    results["machine"] = call(machine_figures, settings.peak_repeats)
    for name in tasks:
        print(f"bench: {name} ...", flush=True)
        entry = results["tasks"][name] = call(benchmark_task, name, overrides[name], settings)
        entry["utilisation"] = utilisation(entry, results["machine"]["peak"])
        results["duration_s"] = time.perf_counter() - started
        if progress:
            progress(results)
    if tutorial:
        print("bench: tutorial DCGAN step vs the project's ...", flush=True)
        results["tutorial_dcgan"] = call(benchmark_tutorial, overrides["tutorial"], settings)
    results["duration_s"] = time.perf_counter() - started
    results["isolated"] = isolate
    return results


def _number(value, digits=1):
    return "n/a" if value is None else f"{value:,.{digits}f}"


def markdown(results):
    """The results as markdown tables (training and pipeline; inference; tutorial ratio)."""
    lines = [f"Bench ({results['mode']}, {results['cpu_count']} CPU cores, TensorFlow {results['tensorflow']}), "
             f"{results['duration_s'] / 60:.1f} minutes.", "",
             "| task | image size | batch | train img/s | train img/s (XLA) | pipeline img/s | pipeline / train | "
             "peak RSS MB |", "|---|---|---|---|---|---|---|---|"]
    for name, entry in results["tasks"].items():
        training = entry["training"]
        lines.append(
            f"| {name} | {entry['image_size']} | {entry['batch_size']} | "
            f"{_number(training['no_xla'].get('images_per_s'))} | {_number(training['xla'].get('images_per_s'))} | "
            f"{_number(entry['pipeline']['images_per_s'])} | {_number(entry['pipeline']['ratio_to_training'])}x | "
            f"{_number(entry['peak_resident_mb'], 0)} |")
    lines += ["", "| task | format | img/s (batch) | batch-1 latency ms | size KB | max abs vs Keras |",
              "|---|---|---|---|---|---|"]
    for name, entry in results["tasks"].items():
        for format_name, figures in entry["inference"].items():
            parity = entry["parity_max_abs_vs_keras"].get(format_name, {})
            difference = ", ".join(f"{key} {value:.3g}" for key, value in parity.items()) or "-"
            lines.append(
                f"| {name} | {format_name} | {_number(figures['images_per_s'])} | "
                f"{_number(figures['batch1_latency_ms'], 2)} | "
                f"{_number(entry['file_size_bytes'][format_name] / 1024, 0)} | {difference} |")
    lines += ["", "Batch-1 latency per TFLite format (x float TFLite); the fastest format whose task metric drops "
              "at most 0.5 points in the export's own scoring:", "", *quantization_markdown(results)]
    if "machine" in results:
        lines += ["", *utilisation_markdown(results)]
    if "tutorial_dcgan" in results:
        tutorial = results["tutorial_dcgan"]
        lines += ["", f"TF tutorial DCGAN, batch {tutorial['batch_size']}:", "",
                  "| step | img/s | ratio to the tutorial's step |", "|---|---|---|"]
        for name, figures in tutorial["steps"].items():
            lines.append(f"| {name} | {_number(figures['images_per_s'])} | "
                         f"{tutorial['ratio_to_reference'][name]:.2f}x |")
    return "\n".join(lines) + "\n"


def export_summary(report):
    """Of an export report: per TFLite format its ops, score and drop, and the fastest format within tolerance."""
    keys = ("batch1_latency_ms", "score", "score_drop", "ops")
    formats = {name: {key: entry[key] for key in keys if key in entry}
               for name, entry in report["formats"].items() if name != "savedmodel"}
    return {"keras_score": report.get("keras_score"), "formats": formats,
            "fastest_within_tolerance": report["fastest_within_tolerance"]}


def quantization_markdown(results):
    """Per task: batch-1 latency of each TFLite format against float TFLite, and the fastest within tolerance."""
    names = [name for name in formats_lib.FORMATS if name != "savedmodel"]
    lines = ["| task | " + " | ".join(f"{name} ms (x float)" for name in names) + " | fastest within 0.5 points |",
             "|" + "---|" * (len(names) + 2)]
    for task_name, entry in results["tasks"].items():
        inference = entry["inference"]
        float_ms = inference["tflite"]["batch1_latency_ms"]
        cells = [f"{inference[name]['batch1_latency_ms']:.2f} ({inference[name]['batch1_latency_ms'] / float_ms:.2f}x)"
                 for name in names]
        fastest = entry["export"]["fastest_within_tolerance"]
        cells.append((fastest or {}).get("format") or "none scored")
        lines.append(f"| {task_name} | " + " | ".join(cells) + " |")
    return lines


def _percent(share):
    return f"{100 * share:.1f} %"


def utilisation_markdown(results):
    """The CPU, its measured peaks, and per task the FLOPs, achieved FLOP/s and share of the peaks (lines)."""
    described, peak = results["machine"], results["machine"]["peak"]
    peaks = ", ".join(f"{name.replace('_', ' ')} {figures['flops_per_s'] / 1e9:,.1f} GFLOP/s"
                      for name, figures in peak.items())
    threads = described["threads"]
    lines = [f"{described['cpu_model']}, {described['cores']} cores, features {' '.join(described['features'])}; "
             f"intra-op threads {threads['intra_op_threads']}, inter-op {threads['inter_op_threads']} "
             f"(0: TensorFlow's choice). Measured peak (best of {results['settings']['peak_repeats']}): {peaks}.",
             "", "| task | train MFLOP/img | infer MFLOP/img | train GFLOP/s | of conv peak | of matmul peak | "
             "bf16 img/s | bf16 / f32 | infer GFLOP/s (Keras, batch) | infer of conv peak |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, entry in results["tasks"].items():
        counts, shares = entry["flops"], entry["utilisation"]
        training = shares["training"].get("no_xla", {})
        inference = shares["inference"].get("keras", {})
        bfloat16 = entry["training"].get("mixed_bfloat16", {}).get("images_per_s")
        float32 = entry["training"]["no_xla"].get("images_per_s")
        ratio = f"{bfloat16 / float32:.2f}x" if bfloat16 and float32 else "n/a"
        lines.append(
            f"| {name} | {_number(counts['training_per_image'] / 1e6)} | {_number(counts['inference_per_image'] / 1e6)}"
            f" | {_number(training.get('flops_per_s', 0) / 1e9)} | {_percent(training.get('of_conv_peak', 0))} | "
            f"{_percent(training.get('of_matmul_peak', 0))} | {_number(bfloat16)} | {ratio} | "
            f"{_number(inference.get('flops_per_s', 0) / 1e9)} | {_percent(inference.get('of_conv_peak', 0))} |")
    return lines


def write(results, stem):
    """`<stem>.json` (every figure) and `<stem>.md` (the tables); returns both paths."""
    stem = pathlib.Path(stem)
    return [runs.write_json(stem.with_suffix(".json"), results),
            runs.atomic_write_text(stem.with_suffix(".md"), markdown(results))]


def parse_overrides(items):
    """['unet.base_filters=8', ...] -> {'unet': {'base_filters': 8}} (values read as JSON when they parse)."""
    import json

    overrides = {}
    for item in items or ():
        key, separator, text = item.partition("=")
        task, _, field = key.partition(".")
        if not separator or not field or task not in registry.names() + ("tutorial",):
            raise ValueError(f"--set takes TASK.FIELD=VALUE with TASK one of {', '.join(registry.names())} or "
                             f"tutorial, got {item!r}.")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        overrides.setdefault(task, {})[field] = value
    return overrides
