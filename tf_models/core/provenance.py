"""Where a result came from: the command, the date, the commit and the machine, recorded beside it.

Every training script and `evaluate.py` append one line to `provenance.jsonl`
in the folder they write (the run's log folder, an evaluation folder), so a
report built later from those folders can say which command made each
number, when, on which code and on which machine.
"""

import datetime
import functools
import json
import os
import pathlib
import platform
import shlex
import subprocess
import sys

FILE_NAME = "provenance.jsonl"
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def command_line(argv=None):
    """The command as a user would type it again, e.g. `python scripts/train_unet.py --data ...`."""
    argv = list(sys.argv if argv is None else argv)
    return shlex.join(["python", *argv])


def cpu_model():
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_names():
    """Names of the GPUs TensorFlow sees (none when TensorFlow has not been imported)."""
    if "tensorflow" not in sys.modules:
        return []
    import tensorflow as tf

    names = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        names.append(details.get("device_name", device.name))
    return names


@functools.lru_cache(maxsize=1)
def current_commit():
    """The checked-out commit (with "+changes" when the tree differs from it), or "" outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                                 capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return commit + ("+changes" if changed else "")


def machine():
    return {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)), "gpus": gpu_names(),
            "load_average": round(os.getloadavg()[0], 1), "python": platform.python_version()}


def record(folder, command=None):
    """Appends {date, command, commit, machine} to `folder`/provenance.jsonl; returns its path."""
    path = pathlib.Path(folder) / FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
             "command": command or command_line(), "commit": current_commit(), "machine": machine()}
    with path.open("a") as stream:
        stream.write(json.dumps(entry) + "\n")
    return path


def read(folder):
    """The entries of `folder`/provenance.jsonl, oldest first ([] when there is none)."""
    path = pathlib.Path(folder) / FILE_NAME
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries
