"""TensorFlow's device start, without its spurious CUDA error on a machine that has no NVIDIA device.

The `tensorflow` wheel for Linux always tries the CUDA driver when it first
lists its devices (the first op, or `tf.config.list_physical_devices`). With
no driver it logs, at error level,

    E0000 ... cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)

and carries on, correctly, on the CPU (tensorflow/tensorflow#37689). Neither
`CUDA_VISIBLE_DEVICES=""` nor `-1` avoids the call, and
`TF_CPP_MIN_LOG_LEVEL=3` hides every error, real ones included; the level is
read once, when TensorFlow is imported. So `initialize` lists the devices
once with the C++ standard error captured, and writes back every captured
line except that one. It does so only where no NVIDIA device node exists
(`/dev/nvidia0`..., or `/dev/dxg` under WSL): on a GPU machine a failed
cuInit is a real error and is shown. Installing `tensorflow-cpu` instead of
`tensorflow` avoids the call altogether.
"""

import contextlib
import glob
import os
import sys
import tempfile

import tensorflow as tf

SPURIOUS_LINE = "failed call to cuInit"
GPU_DEVICE_NODES = ("/dev/nvidia[0-9]*", "/dev/dxg")

_initialized = False


def has_gpu_device_nodes():
    return any(glob.glob(pattern) for pattern in GPU_DEVICE_NODES)


def initialize():
    """Lists TensorFlow's physical devices (once per process) and returns them.

    On a machine without NVIDIA device nodes the cuInit error line is left
    out of what TensorFlow writes meanwhile; everything else is written as it came.
    """
    global _initialized
    if _initialized or has_gpu_device_nodes():
        _initialized = True
        return tf.config.list_physical_devices()
    _initialized = True
    with _standard_error_without(SPURIOUS_LINE):
        return tf.config.list_physical_devices()


@contextlib.contextmanager
def _standard_error_without(text):
    """Captures file descriptor 2 (C++ logging included); writes back its lines that do not contain `text`."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        saved_descriptor = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved_descriptor, 2)
            os.close(saved_descriptor)
            captured.seek(0)
            lines = captured.read().decode("utf-8", errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if text not in line))
            sys.stderr.flush()
