"""TensorFlow's device start: the spurious cuInit line is left out on a machine without a GPU, nothing else."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT
from tf_models.core import devices


def test_only_the_cuinit_line_is_left_out(capfd):
    with devices._standard_error_without(devices.SPURIOUS_LINE):
        os.write(2, b"E0000 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\n")
        os.write(2, b"E0000 some_kernel.cc:1] a real error\n")
        os.write(2, b"W0000 other.cc:2] a warning\n")
    assert capfd.readouterr().err == "E0000 some_kernel.cc:1] a real error\nW0000 other.cc:2] a warning\n"


def test_what_is_written_is_kept_when_the_listing_fails(capfd):
    with pytest.raises(RuntimeError):
        with devices._standard_error_without(devices.SPURIOUS_LINE):
            os.write(2, b"E0000 platform.cc:9] why it failed\n")
            raise RuntimeError("no devices")
    assert capfd.readouterr().err == "E0000 platform.cc:9] why it failed\n"


@pytest.mark.slow
def test_a_cpu_only_start_has_no_error_level_line():
    if devices.has_gpu_device_nodes():
        pytest.skip("this machine has NVIDIA device nodes; there a cuInit failure is a real error")
    program = "from tf_models.core import devices; print(devices.initialize()); import tensorflow as tf; print(tf.ones(2))"
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO_ROOT))
    started = subprocess.run([sys.executable, "-c", program], env=environment, capture_output=True, text=True,
                             timeout=300)
    assert started.returncode == 0, started.stderr
    assert "physical_device:CPU:0" in started.stdout
    assert [line for line in started.stderr.splitlines() if line.startswith("E0")] == []
