"""The kill-anywhere suite: crash a trainer many ways, resume it, check nothing was lost or corrupted.

For each trainer (a `scripts/train_*.py` with tiny settings) the suite starts
the script in a subprocess under one run name and crashes it, once per fault:

- `random`: SIGKILL at a random moment (possibly still loading data);
- `train_step`, `checkpoint_save`, `export`: SIGKILL inside the Nth
  occurrence of that region of the runtime (`tf_models.core.faults`);
- `sigterm`, `sigint`: the signal at a random step; the trainer must save a
  checkpoint before it exits, so no step is repeated.

After every crash it scans both run folders for files that do not load
(checkpoints, .keras, SavedModels, TFLite, JSON, CSV, PNG, GIF), reads the
latest checkpoint's counters and compares them with the steps the process
had finished, and checks that the next start resumes from that checkpoint.
A last start runs to the end; its model.keras (safe mode), SavedModel and
TFLite must load. The result is a JSON report (see `run_suite`).

It lives in the library, next to the runtime whose contract it checks, so
that `scripts/fault_suite.py` and `tests/tools/test_fault_suite.py` run one harness.
"""

import csv
import dataclasses
import os
import pathlib
import random
import re
import signal
import subprocess
import sys
import time

from tf_models import registry
from tf_models.core import faults, runs
from tf_models.tools import artifact_checks

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
FAULT_KINDS = ("random", "train_step", "checkpoint_save", "sigterm", "sigint", "export")
_RESUMING = re.compile(r"Resuming \S+ from (\S+) \(epoch (\d+), step (\d+)\)")


@dataclasses.dataclass
class Trainer:
    """A training script with tiny settings.

    Args:
        task: the folder name under `logs/` and `saved_models/`.
        script: path of the script, relative to the repository.
        flags: its flags, without --run-name, --epochs and the roots.
        steps_per_epoch: must match the flags (the suite computes steps from it).
        save_every_steps: ditto; 0 means epoch ends only.
    """

    task: str
    script: str
    flags: list
    steps_per_epoch: int
    save_every_steps: int

    @property
    def save_interval(self):
        return self.save_every_steps or self.steps_per_epoch


def default_trainers(datasets):
    """A trainer per registered task, with its `tiny` preset (seconds a start on a 2-core CI machine).

    `datasets` maps a task to its `--data` value (`make_subsets`).
    """
    common = ["--steps-per-epoch", "4", "--save-every-steps", "3"]
    return {spec.name: Trainer(spec.name, spec.train_script,
                               ["--data", str(datasets[spec.name]), "--preset", "tiny", *spec.tiny.flags, *common],
                               4, 3)
            for spec in registry.specs()}


def make_subsets(datasets_root, target):
    """{task: --data value}: small copies of real data folders (`registry.TinyData`), so each start loads in
    seconds."""
    return {spec.name: registry.prepare_tiny_data(spec, datasets_root, target) for spec in registry.specs()}


def fault_plan(kills, rng):
    """`kills` faults: training faults in a shuffled cycle, then `export` as the last one."""
    training = [kind for kind in FAULT_KINDS if kind != "export"]
    plan = []
    while len(plan) < kills - 1:
        plan += rng.sample(training, len(training))
    return plan[: kills - 1] + ["export"] if kills else []


# ---------------------------------------------------------------- one start of a trainer


@dataclasses.dataclass
class Start:
    returncode: int
    stdout: str
    stderr: str
    steps_done: int
    delivered: bool
    kill_moment: str = ""


def _kill_moment(log_path):
    """'inside' (the timer fired mid-region) or 'at_end' (the region's last instruction), from the hook's log."""
    if not log_path.is_file():
        return ""
    kills = [line.split()[-1] for line in log_path.read_text().splitlines() if line.startswith("kill ")]
    return kills[-1] if kills else ""


def _steps_done(log_path):
    if not log_path.is_file():
        return 0
    return sum(line.strip() == "exit train_step" for line in log_path.read_text().splitlines())


def _wait_for_steps(process, log_path, count, timeout):
    deadline = time.monotonic() + timeout
    while process.poll() is None and _steps_done(log_path) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return process.poll() is None


def _default_interrupt():
    """Ctrl-C as in a terminal: a shell's background job would otherwise inherit SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_trainer(trainer, arguments, work_dir, fault=None, rng=None, timeout=300):
    """Runs the trainer once, with `fault` injected; returns a `Start`.

    `fault` is None (run to the end) or `(kind, number)`: for the region
    kinds the Nth occurrence of that region; for `random`, `sigterm` and
    `sigint` the number of steps to wait for before the kill or signal.
    """
    rng = rng or random.Random(0)
    log_path = pathlib.Path(work_dir) / "progress.log"
    log_path.unlink(missing_ok=True)
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1",
                       PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    environment[faults.LOG_VARIABLE] = str(log_path)
    environment.pop(faults.FAULT_VARIABLE, None)
    kind, number = fault or (None, 0)
    if kind in faults.REGIONS:
        environment[faults.FAULT_VARIABLE] = f"{kind}:{number}"
    stdout_path, stderr_path = pathlib.Path(work_dir) / "stdout.txt", pathlib.Path(work_dir) / "stderr.txt"
    with open(stdout_path, "w") as stdout, open(stderr_path, "w") as stderr:
        process = subprocess.Popen([sys.executable, str(REPO_ROOT / trainer.script), *arguments],
                                   cwd=REPO_ROOT, env=environment, stdout=stdout, stderr=stderr,
                                   preexec_fn=_default_interrupt)
        try:
            delivered = _inject_external(process, kind, number, log_path, rng, timeout)
            process.wait(timeout=timeout)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    if kind in faults.REGIONS:
        delivered = process.returncode == -signal.SIGKILL
    return Start(process.returncode, stdout_path.read_text(), stderr_path.read_text(), _steps_done(log_path),
                 delivered, _kill_moment(log_path))


def _inject_external(process, kind, number, log_path, rng, timeout):
    """Sends the external faults; True when one was sent to a live process."""
    signals = {"random": signal.SIGKILL, "sigterm": signal.SIGTERM, "sigint": signal.SIGINT}
    if kind not in signals:
        return False
    if kind == "random" and number == 0:
        time.sleep(rng.uniform(0.0, 4.0))
    elif not _wait_for_steps(process, log_path, number, timeout):
        return False
    else:
        time.sleep(rng.uniform(0.0, 0.3))
    if process.poll() is not None:
        return False
    process.send_signal(signals[kind])
    return True


# ---------------------------------------------------------------- the suite


def _choose_number(kind, trainer, state, total_steps, rng):
    done = state["step"] if state else 0
    remaining = max(1, total_steps - done)
    if kind == "random":
        return rng.randint(0, min(remaining, trainer.steps_per_epoch))
    if kind in ("train_step", "sigterm", "sigint"):
        return rng.randint(1, min(remaining, trainer.steps_per_epoch))
    if kind == "checkpoint_save":
        return rng.randint(1, max(1, min(remaining, trainer.steps_per_epoch) // trainer.save_interval + 1))
    return 1


def run_trainer(trainer, kills, work_dir, seed=0, epochs=None, fault_kinds=None, timeout=300):
    """Crashes one trainer `kills` times, then runs it to the end; returns its report (a dict)."""
    rng = random.Random(seed)
    work_dir = pathlib.Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    plan = list(fault_kinds) if fault_kinds else fault_plan(kills, rng)
    epochs = epochs or len(plan) + 2
    total_steps = epochs * trainer.steps_per_epoch
    logs_root, models_root = work_dir / "logs", work_dir / "saved_models"
    paths = runs.RunPaths(trainer.task, "faults", logs_root, models_root)
    arguments = [*trainer.flags, "--run-name", "faults", "--epochs", str(epochs),
                 "--logs-root", str(logs_root), "--models-root", str(models_root)]
    report = {"task": trainer.task, "save_interval": trainer.save_interval, "total_steps": total_steps,
              "kills_tried": 0, "kills_delivered": 0, "resumes_checked": 0, "resumes_succeeded": 0,
              "max_steps_repeated": 0, "corrupted_files": [], "temporaries_left_by_kills": 0, "events": []}
    expected = None
    for kind in plan + [None]:
        number = _choose_number(kind, trainer, expected, total_steps, rng) if kind else 0
        started = time.monotonic()
        start = start_trainer(trainer, arguments, work_dir, (kind, number) if kind else None, rng, timeout)
        event = {"fault": kind, "number": number, "returncode": start.returncode, "delivered": start.delivered,
                 "seconds": round(time.monotonic() - started, 1), "steps_done": start.steps_done,
                 "kill_moment": start.kill_moment}
        event.update(_check_resume(start, expected))
        report["resumes_checked"] += event["resume_checked"]
        report["resumes_succeeded"] += event["resume_ok"]
        state = artifact_checks.checkpoint_state(paths.checkpoint_dir)
        reached = (expected["step"] if expected else 0) + start.steps_done
        event["checkpoint_step"] = state["step"] if state else 0
        event["steps_repeated"] = max(0, reached - event["checkpoint_step"])
        event["counters_consistent"] = state is None or (
            state["step"] == state["epoch"] * trainer.steps_per_epoch + state["step_in_epoch"])
        corrupted, temporaries = artifact_checks.scan_run(paths.log_dir, paths.model_dir)
        event["corrupted"], event["temporaries"] = corrupted, len(temporaries)
        report["corrupted_files"] += corrupted
        if kind:
            report["kills_tried"] += 1
            report["kills_delivered"] += start.delivered
            report["temporaries_left_by_kills"] += len(temporaries)
            report["max_steps_repeated"] = max(report["max_steps_repeated"], event["steps_repeated"])
            if kind in ("sigterm", "sigint") and start.delivered:
                event["saved_on_signal"] = event["steps_repeated"] == 0 and start.returncode != 0
        else:
            event["stderr_tail"] = start.stderr[-1500:] if start.returncode else ""
        report["events"].append(event)
        expected = state
    final = report["events"][-1]
    report["completed"] = final["returncode"] == 0 and final["checkpoint_step"] == total_steps
    report["final_artifacts"] = _load_final_artifacts(paths)
    report["history_epochs"] = _history_epochs(paths.log_dir / "history.csv")
    report["history_complete"] = report["history_epochs"] == list(range(epochs))
    report["passed"] = _passed(report)
    return report


def _check_resume(start, expected):
    """Did this start resume from the checkpoint the previous crash left (or start fresh when none)?"""
    match = _RESUMING.search(start.stdout)
    if expected is None:
        # No checkpoint yet: the start must begin at step 0 (stale lock and temporaries notwithstanding).
        started = "Epoch 1/" in start.stdout
        return {"resume_checked": started, "resume_ok": started and match is None,
                "resumed_from_step": 0 if started else None}
    if match is None:
        # Killed before the restore printed anything: nothing to compare.
        return {"resume_checked": False, "resume_ok": False, "resumed_from_step": None}
    ok = (pathlib.Path(match.group(1)).name == pathlib.Path(expected["path"]).name
          and int(match.group(2)) == expected["epoch"] and int(match.group(3)) == expected["step"])
    return {"resume_checked": True, "resume_ok": ok, "resumed_from_step": int(match.group(3))}


def _history_epochs(path):
    """The epochs with a row in history.csv: every epoch of the run must have exactly one."""
    if not path.is_file():
        return []
    with open(path, newline="") as file:
        return [int(row["epoch"]) for row in csv.DictReader(file)]


def _load_final_artifacts(paths):
    results = {}
    serving = sorted((p for p in paths.serving_dir.glob("*") if p.name.isdigit()), key=lambda p: int(p.name))
    saved_model = serving[-1] if serving else paths.serving_dir / "1"
    for name, path, check in (("model.keras", paths.keras_file, artifact_checks.check_keras),
                              ("saved_model", saved_model, artifact_checks.check_saved_model),
                              ("model.tflite", paths.tflite_file, artifact_checks.check_tflite)):
        try:
            check(path)
            results[name] = "ok"
        except Exception as error:  # report, do not stop the suite
            results[name] = f"{type(error).__name__}: {str(error)[:200]}"
    return results


def _passed(report):
    signal_events = [event for event in report["events"] if "saved_on_signal" in event]
    return (report["completed"] and report["history_complete"] and not report["corrupted_files"]
            and report["resumes_succeeded"] == report["resumes_checked"]
            and report["max_steps_repeated"] <= report["save_interval"]
            and all(event["counters_consistent"] for event in report["events"])
            and all(event["saved_on_signal"] for event in signal_events)
            and all(value == "ok" for value in report["final_artifacts"].values()))


def run_suite(trainers, kills, work_dir, seed=0, fault_kinds=None, timeout=300):
    """Runs `run_trainer` for each trainer; returns {"trainers": {...}, "totals": {...}}.

    `fault_kinds` optionally maps a task to its own list of faults.
    """
    reports = {}
    for index, (name, trainer) in enumerate(trainers.items()):
        kinds = (fault_kinds or {}).get(name)
        reports[name] = run_trainer(trainer, kills, pathlib.Path(work_dir) / name, seed + index, fault_kinds=kinds,
                                    timeout=timeout)
    totals = {key: sum(report[key] for report in reports.values())
              for key in ("kills_tried", "kills_delivered", "resumes_checked", "resumes_succeeded",
                          "temporaries_left_by_kills")}
    totals["corrupted_files"] = sum(len(report["corrupted_files"]) for report in reports.values())
    totals["max_steps_repeated"] = max((report["max_steps_repeated"] for report in reports.values()), default=0)
    moments = [(event["fault"], event["kill_moment"]) for report in reports.values() for event in report["events"]
               if event["kill_moment"]]
    totals["region_kills"] = {f"{fault} {moment}": moments.count((fault, moment))
                              for fault, moment in sorted(set(moments))}
    totals["passed"] = all(report["passed"] for report in reports.values())
    return {"trainers": reports, "totals": totals}
