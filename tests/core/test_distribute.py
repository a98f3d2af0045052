"""Every trainer under tf.distribute, on a CPU split into two logical devices.

Each check runs in a fresh process (`tests/distribute_worker.py`), because the
logical devices must be set up before TensorFlow initialises.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

TRAINERS = ("dcgan", "pix2pix", "unet", "pneumonia")
# Each check takes 10-60 s on 2 idle cores; the margin is for a loaded machine.
TIMEOUT_SECONDS = 240
# Float32 sums taken in another order: differences of a few ulps of the weights.
TOLERANCE = 1e-5


def subprocess_env(**extra):
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def run_worker(*arguments):
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests" / "distribute_worker.py"), *arguments],
        capture_output=True, text=True, timeout=TIMEOUT_SECONDS, env=subprocess_env(), cwd=REPO_ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trainer_checks(tmp_path_factory):
    """Runs each trainer's worker once; both tests below read its result."""
    results = {}

    def checks(trainer):
        if trainer not in results:
            results[trainer] = run_worker(trainer, str(tmp_path_factory.mktemp(trainer)))
        return results[trainer]

    return checks


@pytest.mark.parametrize("trainer", TRAINERS)
def test_two_replicas_update_the_weights_like_one_replica_on_the_global_batch(trainer, trainer_checks):
    """SGD, not Adam: Adam's first step ignores the loss scale and would hide a wrong replica scaling."""
    result = trainer_checks(trainer)
    assert result["replicas"] == 2
    assert result["max_update"] > 1e-3
    assert result["max_weight_difference"] < TOLERANCE
    assert result["max_metric_difference"] < TOLERANCE


@pytest.mark.parametrize("trainer", TRAINERS)
def test_checkpoint_from_two_replicas_resumes_under_one(trainer, trainer_checks):
    result = trainer_checks(trainer)
    assert "resume_error" not in result, result.get("resume_error")
    assert result["first_latest"].endswith("ckpt-2")
    assert result["restored_from"] == result["first_latest"]
    assert result["latest"].endswith("ckpt-4")


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def test_two_workers_train_a_dcgan_and_only_the_chief_writes(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    flags = [
        "--data", "digits", "--run-name", "multi", "--epochs", "1", "--steps-per-epoch", "3",
        "--batch-size", "16", "--generator-filters", "4", "--discriminator-filters", "4", "--latent-dim", "8",
        "--sample-count", "4", "--save-every-steps", "0", "--strategy", "multiworker", "--no-export",
    ]
    processes = []
    for index in range(2):
        roots = ["--logs-root", str(tmp_path / f"worker{index}" / "logs"),
                 "--models-root", str(tmp_path / f"worker{index}" / "models")]
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "scripts" / "train_dcgan.py"), *flags, *roots],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=subprocess_env(TF_CONFIG=tf_config),
            cwd=tmp_path,
        ))
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=TIMEOUT_SECONDS)[0])
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    chief = tmp_path / "worker0"
    assert (chief / "models" / "dcgan" / "multi" / "checkpoints" / "ckpt-3.index").is_file()
    assert (chief / "logs" / "dcgan" / "multi" / "history.csv").is_file()
    assert not (tmp_path / "worker1").exists()
