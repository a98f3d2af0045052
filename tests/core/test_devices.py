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


def onednn_state(program_prefix, **environment_changes):
    """(TF_ENABLE_ONEDNN_OPTS as a fresh process sees it, whether TensorFlow's oneDNN kernels are on)."""
    environment = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    environment.update(environment_changes, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO_ROOT))
    program = (f"{program_prefix}; import os; from tensorflow.python.util import _pywrap_util_port as port; "
               "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), port.IsMklEnabled())")
    started = subprocess.run([sys.executable, "-c", program], env=environment, capture_output=True, text=True,
                             timeout=300)
    assert started.returncode == 0, started.stderr
    return started.stdout.split()[-2:]


@pytest.mark.slow
@pytest.mark.parametrize("first_import", ["import tf_models", "import pipelines"])
def test_importing_the_project_first_turns_onednn_on(first_import):
    assert onednn_state(first_import) == ["1", "True"]


@pytest.mark.slow
def test_a_user_setting_of_onednn_is_kept():
    assert onednn_state("import tf_models", TF_ENABLE_ONEDNN_OPTS="0") == ["0", "False"]
