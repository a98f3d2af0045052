"""The kill-anywhere suite: its fault hook, its file checks, and a short run over the four trainers."""

import json
import pathlib
import signal
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT, shared_dataset
from tf_models.core import faults, runs
from tf_models.tools import artifact_checks
from tf_models.tools import fault_suite


@pytest.mark.parametrize("text", ["export", "export:0", "nowhere:1", "train_step:x"])
def test_a_bad_fault_is_refused(text):
    with pytest.raises(ValueError, match="expected <region>:<N>"):
        faults.parse_fault(text)


def test_the_hook_kills_inside_the_chosen_occurrence(tmp_path):
    log = tmp_path / "progress.log"
    program = (
        "from tf_models.core import faults\n"
        "for index in range(5):\n"
        "    with faults.region('train_step'):\n"
        "        print(index, flush=True)\n"
    )
    environment = {faults.FAULT_VARIABLE: "train_step:3", faults.LOG_VARIABLE: str(log), "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.run([sys.executable, "-c", program], env=environment, capture_output=True, text=True)
    assert process.returncode == -signal.SIGKILL
    lines = log.read_text().splitlines()
    assert lines[:2] == ["exit train_step"] * 2 and lines[2] in ("kill train_step inside", "kill train_step at_end")
    assert len(lines) == 3
    assert process.stdout.split()[:2] == ["0", "1"]


def test_scan_finds_damaged_files_and_lists_temporaries_apart(tmp_path):
    log_dir, model_dir = tmp_path / "logs" / "run", tmp_path / "models" / "run"
    runs.write_json(log_dir / "config.json", {"epochs": 1})
    (log_dir / "history.csv").write_text("epoch,loss\n0,0.5\n1\n")
    (model_dir / "serving").mkdir(parents=True)
    (model_dir / "model.keras").write_bytes(b"PK\x03\x04 cut off")
    (model_dir / "model.tflite").write_bytes(b"")
    (model_dir / ".model.keras.tmp-abc.keras").write_bytes(b"half")
    corrupted, temporaries = artifact_checks.scan_run(log_dir, model_dir)
    assert sorted(pathlib.Path(path).name for path, _ in corrupted) == ["history.csv", "model.keras", "model.tflite"]
    assert [pathlib.Path(path).name for path in temporaries] == [".model.keras.tmp-abc.keras"]


def test_fault_plan_ends_with_export_and_cycles_the_rest():
    import random

    plan = fault_suite.fault_plan(7, random.Random(0))
    assert plan[-1] == "export" and len(plan) == 7
    assert set(plan[:5]) == set(fault_suite.FAULT_KINDS) - {"export"}


@pytest.mark.slow
def test_every_trainer_resumes_after_kills_with_nothing_corrupted(tmp_path):
    """SIGKILL at random, in a step, in a checkpoint save and in the export, and Ctrl-C; then resume."""
    datasets = fault_suite.make_subsets(shared_dataset("mnist").parent, tmp_path / "data")
    kinds = {"dcgan": ["random", "checkpoint_save"], "pix2pix": ["train_step"], "unet": ["export"],
             "pneumonia": ["sigint"]}
    trainers = fault_suite.default_trainers(datasets)
    report = fault_suite.run_suite(trainers, 1, tmp_path, fault_kinds=kinds, timeout=120)
    summary = json.dumps(report, indent=1, default=str)[-4000:]
    for name, result in report["trainers"].items():
        assert result["kills_delivered"] == result["kills_tried"] == len(kinds[name]), summary
        assert result["resumes_succeeded"] == result["resumes_checked"] >= 1, summary
        assert result["max_steps_repeated"] <= result["save_interval"], summary
        assert result["corrupted_files"] == [], summary
        assert result["completed"] and set(result["final_artifacts"].values()) == {"ok"}, summary
        assert result["history_complete"], summary
        assert all(event["counters_consistent"] for event in result["events"]), summary
        assert result["passed"], summary
    assert report["trainers"]["pneumonia"]["events"][0]["saved_on_signal"]
    assert report["totals"]["corrupted_files"] == 0
