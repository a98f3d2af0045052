"""Named regions of the runtime where the kill-anywhere suite can crash a training process.

The runtime wraps the work a crash would hurt most in `region(name)`:
`train_step` (one optimizer step), `checkpoint_save` (one `CheckpointManager`
save) and `export` (model.keras, the SavedModel, TFLite and export.json).
Without the environment variables below `region` only yields.

    TF_MODELS_FAULT=<region>:<N>   SIGKILL this process while it is inside the
                                   Nth occurrence of <region> (1-based)
    TF_MODELS_FAULT_LOG=<file>     append one line per region exit ("exit <region>"),
                                   so the suite knows how much work was done, and
                                   "kill <region> inside|at_end" before the kill

The kill lands inside the region: a timer fires after a random part of the
region's mean duration so far, and a region that ends first is killed at its
last instruction, before anything after it runs.
"""

import contextlib
import os
import random
import signal
import threading
import time

FAULT_VARIABLE = "TF_MODELS_FAULT"
LOG_VARIABLE = "TF_MODELS_FAULT_LOG"
REGIONS = ("train_step", "checkpoint_save", "export")

_occurrences = {}
_durations = {}


def parse_fault(text):
    """'checkpoint_save:3' -> ('checkpoint_save', 3); ValueError naming the bad part."""
    name, _, occurrence = str(text).partition(":")
    if name not in REGIONS or not occurrence.isdigit() or int(occurrence) < 1:
        raise ValueError(
            f"{FAULT_VARIABLE}={text!r}: expected <region>:<N> with a region of {', '.join(REGIONS)} and N >= 1."
        )
    return name, int(occurrence)


def _kill(name, moment):
    _log(f"kill {name} {moment}")
    os.kill(os.getpid(), signal.SIGKILL)


def _log(line):
    path = os.environ.get(LOG_VARIABLE)
    if path:
        with open(path, "a") as file:
            file.write(f"{line}\n")


@contextlib.contextmanager
def region(name):
    """Marks one stretch of work named `name`; see the module docstring."""
    fault = os.environ.get(FAULT_VARIABLE)
    if not fault and not os.environ.get(LOG_VARIABLE):
        yield
        return
    target, occurrence = parse_fault(fault) if fault else (None, 0)
    _occurrences[name] = _occurrences.get(name, 0) + 1
    timer = None
    if name == target and _occurrences[name] == occurrence:
        previous = _durations.get(name, [])
        mean = sum(previous) / len(previous) if previous else 0.05
        timer = threading.Timer(random.uniform(0.0, mean), _kill, args=(name, "inside"))
        timer.daemon = True
        timer.start()
    start = time.monotonic()
    yield
    if timer is not None:
        _kill(name, "at_end")
    _durations.setdefault(name, []).append(time.monotonic() - start)
    _log(f"exit {name}")
