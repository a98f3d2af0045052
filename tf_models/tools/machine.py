"""What this machine can do: its CPU, TensorFlow's thread settings, and a measured peak in FLOP/s.

The peak is measured, not read from a data sheet: the best of `repeats`
timed calls of a large float32 matrix product and of a large 3x3
convolution (the kernels the tasks spend their time in), after one warm-up
call. `bench` divides each task's achieved FLOP/s by these figures.
"""

import os
import pathlib
import platform
import time

import tensorflow as tf

# CPU flags (as /proc/cpuinfo spells them) that decide which kernels oneDNN and XNNPACK can use.
FEATURES = ("sse4_2", "fma", "avx", "avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
            "avx512_fp16", "avx_vnni", "amx_bf16", "amx_int8", "amx_tile", "asimd", "sve")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "TF_ENABLE_ONEDNN_OPTS",
                    "ONEDNN_MAX_CPU_ISA", "KMP_AFFINITY", "KMP_BLOCKTIME")


def _cpuinfo():
    path = pathlib.Path("/proc/cpuinfo")
    return path.read_text() if path.exists() else ""


def cpu_features(text=None):
    """The flags of `FEATURES` this CPU has, in that order."""
    text = _cpuinfo() if text is None else text
    flags = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return [name for name in FEATURES if name in flags]


def cpu_model(text=None):
    text = _cpuinfo() if text is None else text
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return platform.processor() or platform.machine()


def cpu_kind(features):
    """A short name for the kernels this CPU can run: `amx`, `avx512_bf16`, `avx512`, `avx2` or `other`."""
    for kind, flag in (("amx", "amx_bf16"), ("avx512_bf16", "avx512_bf16"), ("avx512", "avx512f"),
                       ("avx2", "avx2")):
        if flag in features:
            return kind
    return "other"


def thread_settings():
    """TensorFlow's intra- and inter-op thread counts (0: TensorFlow's choice) and the variables that set them."""
    return {
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "environment": {name: os.environ[name] for name in THREAD_VARIABLES if name in os.environ},
    }


def describe():
    """The CPU (model, cores this process may use, logical CPUs, features, kind) and the thread settings."""
    text = _cpuinfo()
    features = cpu_features(text)
    return {"cpu_model": cpu_model(text), "cores": len(os.sched_getaffinity(0)), "logical_cpus": os.cpu_count(),
            "features": features, "cpu_kind": cpu_kind(features), "threads": thread_settings()}


def best_seconds(function, repeats):
    """The shortest wall-clock time of `function()` over `repeats` calls, after one warm-up call."""
    function()
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_peak(size=2048, repeats=5, dtype=tf.float32):
    """FLOP/s of a `size` x `size` matrix product (2 size**3 FLOPs), best of `repeats`."""
    left = tf.random.stateless_normal((size, size), (1, 2), dtype=tf.float32)
    left, right = tf.cast(left, dtype), tf.cast(tf.transpose(left), dtype)
    product = tf.function(lambda: tf.matmul(left, right))
    seconds = best_seconds(lambda: product().numpy(), repeats)
    return {"size": size, "dtype": tf.as_dtype(dtype).name, "flops": 2 * size**3, "best_s": seconds,
            "flops_per_s": 2 * size**3 / seconds}


def conv_peak(batch=8, side=64, channels=128, repeats=5):
    """FLOP/s of a 3x3 'same' convolution of `batch` x `side` x `side` x `channels` to `channels`, best of `repeats`."""
    images = tf.random.stateless_normal((batch, side, side, channels), (3, 4))
    kernel = tf.random.stateless_normal((3, 3, channels, channels), (5, 6))
    convolution = tf.function(lambda: tf.nn.conv2d(images, kernel, 1, "SAME"))
    flops = 2 * batch * side * side * channels * 9 * channels
    seconds = best_seconds(lambda: convolution().numpy(), repeats)
    return {"shape": [batch, side, side, channels], "kernel": [3, 3, channels, channels], "flops": flops,
            "best_s": seconds, "flops_per_s": flops / seconds}


def measure_peak(quick=False, repeats=5):
    """The float32 matmul and 3x3 conv peaks (and the bfloat16 matmul where the CPU has bf16 instructions)."""
    size, side = (1024, 32) if quick else (2048, 64)
    peak = {"matmul_float32": matmul_peak(size, repeats), "conv3x3_float32": conv_peak(side=side, repeats=repeats)}
    if {"avx512_bf16", "amx_bf16"} & set(cpu_features()):
        peak["matmul_bfloat16"] = matmul_peak(size, repeats, tf.bfloat16)
    return peak
