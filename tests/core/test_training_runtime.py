"""The shared runtime: runner, loop, checkpoints, resume after SIGKILL, NaN guard, config."""

import dataclasses
import json
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_models.core import callbacks as callbacks_lib
from tf_models.core import checkpoints, config as config_lib, loop, runner, runs
from tf_models.dcgan import task as dcgan_task
from tests.conftest import REPO_ROOT

TINY = dict(
    data="digits", batch_size=16, steps_per_epoch=6, generator_filters=8, discriminator_filters=8,
    latent_dim=16, sample_count=4, export=False, save_every_steps=3,
)


def tiny_config(tmp_path, **overrides):
    return config_lib.make_config(
        dcgan_task.DCGANConfig,
        **{**TINY, "logs_root": str(tmp_path / "logs"), "models_root": str(tmp_path / "models"), **overrides},
    )


def generator_weights(model):
    return [w.numpy() for w in model.generator.weights] + [w.numpy() for w in model.discriminator.weights]


def checkpoint_weights(tmp_path, run_name, checkpoint_path):
    """Weights stored in a checkpoint, read into a freshly built model."""
    task = dcgan_task.DCGANTask()
    config = task.resolve(tiny_config(tmp_path, run_name=run_name))
    model = task.build_model(config, None)
    keeper = checkpoints.CheckpointKeeper(tmp_path / "scratch", model=model, **task.checkpoint_items(model))
    keeper.checkpoint.restore(str(checkpoint_path)).assert_existing_objects_matched()
    return generator_weights(model), keeper.state.as_dict()


def test_run_writes_logs_samples_gif_history_and_config(tmp_path):
    result = runner.train(dcgan_task.DCGANTask(), tiny_config(tmp_path, run_name="a", epochs=2), verbose=0)
    log_dir = result.paths.log_dir
    assert sorted(p.name for p in (log_dir / "samples").iterdir()) == [
        "epoch_0000.png", "epoch_0001.png", "epoch_0002.png"
    ]
    assert (log_dir / "evolution.gif").stat().st_size > 0
    assert len((log_dir / "history.csv").read_text().strip().splitlines()) == 3
    assert json.loads((log_dir / "config.json").read_text())["image_size"] == 28
    assert list((log_dir / "train").glob("events.out.tfevents.*"))
    assert result.history["discriminator_loss"]


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    task = dcgan_task.DCGANTask()
    reference = runner.train(task, tiny_config(tmp_path, run_name="reference", epochs=3), verbose=0)
    runner.train(dcgan_task.DCGANTask(), tiny_config(tmp_path, run_name="split", epochs=1), verbose=0)
    resumed = runner.train(dcgan_task.DCGANTask(), tiny_config(tmp_path, run_name="split", epochs=3), verbose=0)
    assert resumed.restored_from.endswith("ckpt-6")
    for expected, actual in zip(generator_weights(reference.model), generator_weights(resumed.model)):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_resume_after_sigkill(tmp_path):
    """A run killed with SIGKILL resumes at its last saved step with that step's weights."""
    run_dir = tmp_path / "models" / "dcgan" / "killed" / "checkpoints"
    flags = [
        "--data", "digits", "--run-name", "killed", "--batch-size", "16", "--steps-per-epoch", "6",
        "--generator-filters", "8", "--discriminator-filters", "8", "--latent-dim", "16",
        "--sample-count", "4", "--save-every-steps", "3", "--no-export",
        "--logs-root", str(tmp_path / "logs"), "--models-root", str(tmp_path / "models"),
    ]
    script = str(REPO_ROOT / "scripts" / "train_dcgan.py")
    process = subprocess.Popen([sys.executable, script, *flags, "--epochs", "1000"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(run_dir.glob("ckpt-9.index")):
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    latest = tf.train.latest_checkpoint(str(run_dir))
    assert latest is not None, "no checkpoint was written before the kill"
    saved_step = int(latest.rsplit("-", 1)[1])
    assert saved_step >= 9 and saved_step % 3 == 0
    saved_weights, saved_state = checkpoint_weights(tmp_path, "killed", latest)
    assert saved_state["step"] == saved_step
    clock = callbacks_lib.TrainingClock.read(tmp_path / "logs" / "dcgan" / "killed" / "training_time.json")
    assert clock["steps"] >= saved_step, "the clock is written before each checkpoint"

    resumed = subprocess.run([sys.executable, script, *flags, "--epochs", str(saved_step // 6 + 1)],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"(epoch {saved_state['epoch']}, step {saved_step})" in resumed.stdout
    final_step = (saved_step // 6 + 1) * 6
    assert tf.train.latest_checkpoint(str(run_dir)).endswith(f"ckpt-{final_step}")

    task = dcgan_task.DCGANTask()
    model = task.build_model(task.resolve(tiny_config(tmp_path, run_name="killed")), None)
    keeper = checkpoints.CheckpointKeeper(run_dir, model=model, **task.checkpoint_items(model))
    keeper.checkpoint.restore(latest)
    for expected, actual in zip(saved_weights, generator_weights(model)):
        np.testing.assert_array_equal(actual, expected)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    task = dcgan_task.DCGANTask()
    runner.train(task, tiny_config(tmp_path, run_name="nan", epochs=1), verbose=0)
    config = task.resolve(tiny_config(tmp_path, run_name="nan", epochs=2, learning_rate=float("inf")))
    with pytest.raises(loop.NonFiniteLossError, match="ckpt-6"):
        runner.train(task, config, verbose=0)
    remaining = sorted(p.name for p in (tmp_path / "models" / "dcgan" / "nan" / "checkpoints").glob("*.index"))
    assert remaining[-1] == "ckpt-6.index"


def test_corrupted_latest_checkpoint_falls_back(tmp_path, caplog):
    task = dcgan_task.DCGANTask()
    runner.train(task, tiny_config(tmp_path, run_name="c", epochs=2), verbose=0)
    directory = tmp_path / "models" / "dcgan" / "c" / "checkpoints"
    for data_file in directory.glob("ckpt-12.data-*"):
        data_file.write_bytes(b"garbage")
    model = task.build_model(task.resolve(tiny_config(tmp_path, run_name="c")), None)
    keeper = checkpoints.CheckpointKeeper(directory, model=model, **task.checkpoint_items(model))
    assert keeper.restore().endswith("ckpt-9")
    assert keeper.state.as_dict()["step"] == 9
    assert "unreadable" in caplog.text


def test_flags_presets_and_validation():
    config = config_lib.parse_config(
        dcgan_task.DCGANConfig, ["--preset", "demo", "--epochs", "3", "--no-export"], presets=dcgan_task.PRESETS
    )
    assert config.epochs == 3 and config.batch_size == 64 and config.export is False
    for argv, message in [
        (["--epochs", "-1"], "--epochs must be positive"),
        (["--preset", "nope"], "Unknown preset"),
        (["--precision", "float8"], "Unknown --precision"),
        (["--strategy", "magic"], "Unknown --strategy"),
        (["--run-name", "../escape"], "Invalid run name"),
        (["--run-name", "a/b"], "Invalid run name"),
    ]:
        with pytest.raises(ValueError, match=message):
            config_lib.parse_config(dcgan_task.DCGANConfig, argv, presets=dcgan_task.PRESETS)


def test_generate_script_reads_a_run_still_in_training(tmp_path):
    import imageio.v3 as iio

    runner.train(dcgan_task.DCGANTask(), tiny_config(tmp_path, run_name="live", epochs=1), verbose=0)
    output = tmp_path / "grid.png"
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "generate.py"), "--run", "live", "--count", "4",
         "--logs-root", str(tmp_path / "logs"), "--models-root", str(tmp_path / "models"), "--output", str(output)],
        check=True, capture_output=True,
    )
    assert iio.imread(output).shape == ((2 * 30 + 2) * 2, (2 * 30 + 2) * 2)


def test_time_budget_stops_at_a_step_boundary_with_a_checkpoint(tmp_path):
    config = tiny_config(tmp_path, run_name="budget", epochs=1000, time_budget_minutes=0.05)
    result = runner.train(dcgan_task.DCGANTask(), config, verbose=0)
    state = result.history
    steps = len((tmp_path / "logs" / "dcgan" / "budget" / "history.csv").read_text().splitlines()) - 1
    assert 1 <= steps < 1000 and state["discriminator_loss"]
    assert tf.train.latest_checkpoint(str(tmp_path / "models" / "dcgan" / "budget" / "checkpoints"))

    clock_file = tmp_path / "logs" / "dcgan" / "budget" / "training_time.json"
    recorded = callbacks_lib.TrainingClock.read(clock_file)
    assert recorded["seconds"] >= 3.0 and recorded["steps"] >= steps
    again = runner.train(dcgan_task.DCGANTask(), config, verbose=0)
    assert again.history == {}, "a resumed run whose budget is spent must not train"
    assert callbacks_lib.TrainingClock.read(clock_file) == recorded
    budget = recorded["seconds"] + 3.0
    runner.train(dcgan_task.DCGANTask(), dataclasses.replace(config, time_budget_minutes=budget / 60.0), verbose=0)
    resumed = callbacks_lib.TrainingClock.read(clock_file)
    assert recorded["steps"] < resumed["steps"]
    assert budget <= resumed["seconds"] < budget + recorded["seconds"], "the budget counts all invocations"


class InterruptAtBatchEnd(keras.callbacks.Callback):
    """Raises KeyboardInterrupt at the end of batch `batch`, before the callbacks after it see that batch."""

    def __init__(self, batch):
        super().__init__()
        self.batch = batch

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.batch:
            raise KeyboardInterrupt


def test_an_interrupt_after_a_step_keeps_the_clock_at_the_checkpoints_step(tmp_path):
    """The step counter has moved but the clock's batch-end has not run: the clock follows the checkpoint."""
    task = dcgan_task.DCGANTask()
    config = task.resolve(tiny_config(tmp_path, run_name="interrupted"))
    model = task.build_model(config, None)
    keeper = checkpoints.CheckpointKeeper(tmp_path / "checkpoints", model=model, **task.checkpoint_items(model))
    clock = callbacks_lib.TrainingClock(tmp_path / "training_time.json")
    with pytest.raises(KeyboardInterrupt):
        loop.train(model, task.build_data(config).make_dataset, epochs=1, steps_per_epoch=6, keeper=keeper,
                   callbacks=[InterruptAtBatchEnd(batch=3), clock], verbose=0)
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-4")
    assert callbacks_lib.TrainingClock.read(clock.path)["steps"] == 4


def test_a_run_in_use_is_refused_and_a_stale_lock_is_taken_over(tmp_path):
    from tf_models.core import runs

    config = tiny_config(tmp_path, run_name="locked", epochs=1)
    lock_file = runs.RunPaths("dcgan", "locked", tmp_path / "logs", tmp_path / "models").lock_file
    lock_file.parent.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock_file.write_text(str(sleeper.pid))
        with pytest.raises(RuntimeError, match=f"in use by process {sleeper.pid}"):
            runner.train(dcgan_task.DCGANTask(), config, verbose=0)
    finally:
        sleeper.kill()
        sleeper.wait()
    result = runner.train(dcgan_task.DCGANTask(), config, verbose=0)
    assert result.restored_from is None and not lock_file.exists()


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_before_exiting(tmp_path):
    run_dir = tmp_path / "models" / "dcgan" / "term" / "checkpoints"
    process = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "scripts" / "train_dcgan.py"), "--data", "digits", "--run-name", "term",
         "--batch-size", "16", "--steps-per-epoch", "1000", "--generator-filters", "8",
         "--discriminator-filters", "8", "--latent-dim", "16", "--sample-count", "4", "--save-every-steps", "200",
         "--no-export", "--logs-root", str(tmp_path / "logs"), "--models-root", str(tmp_path / "models")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    # The step-200 checkpoint shows that steps are being taken (after a fixed wait, a slow machine may still
    # be tracing the step); the interrupt lands a second later.
    deadline = time.time() + 300
    while time.time() < deadline and tf.train.latest_checkpoint(str(run_dir)) is None:
        time.sleep(0.1)
    time.sleep(1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0
    latest = tf.train.latest_checkpoint(str(run_dir))
    assert latest is not None, stderr[-2000:]
    assert "KeyboardInterrupt" in stderr
    assert int(latest.rsplit("-", 1)[1]) > 200, "the interrupt saved a checkpoint of its own"
    clock = callbacks_lib.TrainingClock.read(tmp_path / "logs" / "dcgan" / "term" / "training_time.json")
    assert clock["steps"] == int(latest.rsplit("-", 1)[1]) > 0, "the interrupted run's training time is kept"
    assert clock["seconds"] > 0


def test_a_checkpoint_written_before_the_per_task_layout_resumes(tmp_path):
    """tests/fixtures/dcgan_before_layout: 4 steps of a tiny DCGAN saved by the code before tf_models/<task>/."""
    fixture = REPO_ROOT / "tests" / "fixtures" / "dcgan_before_layout"
    stored = json.loads((fixture / "config.json").read_text())
    paths = runs.RunPaths("dcgan", stored["run_name"], tmp_path / "logs", tmp_path / "models")
    shutil.copytree(fixture / "checkpoints", paths.checkpoint_dir)
    paths.log_dir.mkdir(parents=True)
    shutil.copyfile(fixture / "training_time.json", paths.log_dir / "training_time.json")
    fields = {key: value for key, value in stored.items() if key not in ("logs_root", "models_root", "epochs")}
    config = config_lib.make_config(dcgan_task.DCGANConfig, **fields, epochs=2, logs_root=str(tmp_path / "logs"),
                                    models_root=str(tmp_path / "models"))
    stored_weights, state = checkpoint_weights(tmp_path, "scratch", paths.checkpoint_dir / "ckpt-4")
    assert state["step"] == 4

    resumed = runner.train(dcgan_task.DCGANTask(), config, verbose=0)
    assert resumed.restored_from.endswith("ckpt-4")
    assert tf.train.latest_checkpoint(str(paths.checkpoint_dir)).endswith("ckpt-8")
    resumed_weights, resumed_state = checkpoint_weights(tmp_path, "scratch2", paths.checkpoint_dir / "ckpt-8")
    assert resumed_state["step"] == 8 and resumed_state["epoch"] == 2
    assert any(not np.array_equal(before, after) for before, after in zip(stored_weights, resumed_weights))
