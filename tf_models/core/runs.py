"""Run folders, config files and seeding.

Every run of every task lives in two folders:

    logs/<task>/<run>/          TensorBoard events, config.json, history.csv,
                                metrics, samples and figures
    saved_models/<task>/<run>/  checkpoints/, model.keras, serving/<N>/, *.tflite

Running again with the same run name resumes from the last checkpoint.
"""

import dataclasses
import json
import os
import pathlib
import re
import shutil
import tempfile
import time

import keras

_RUN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def validate_run_name(run_name):
    """Refuses run names that could escape the run folders."""
    if not run_name or not _RUN_NAME_PATTERN.match(run_name) or ".." in run_name:
        raise ValueError(
            f"Invalid run name {run_name!r}: use letters, digits, '.', '_' and '-' "
            "only, starting with a letter or digit (no path separators, no '..')."
        )
    return run_name


def default_run_name():
    return time.strftime("%Y%m%d-%H%M%S")


@dataclasses.dataclass(frozen=True)
class RunPaths:
    """The folders and files of one run."""

    task: str
    run_name: str
    logs_root: pathlib.Path = pathlib.Path("logs")
    models_root: pathlib.Path = pathlib.Path("saved_models")

    def __post_init__(self):
        validate_run_name(self.run_name)

    @property
    def log_dir(self):
        return pathlib.Path(self.logs_root) / self.task / self.run_name

    @property
    def model_dir(self):
        return pathlib.Path(self.models_root) / self.task / self.run_name

    @property
    def checkpoint_dir(self):
        return self.model_dir / "checkpoints"

    @property
    def lock_file(self):
        return self.model_dir.parent / f".{self.run_name}.lock"

    @property
    def samples_dir(self):
        return self.log_dir / "samples"

    @property
    def config_file(self):
        return self.log_dir / "config.json"

    @property
    def keras_file(self):
        return self.model_dir / "model.keras"

    @property
    def serving_dir(self):
        return self.model_dir / "serving"

    @property
    def tflite_file(self):
        return self.model_dir / "model.tflite"

    def make_dirs(self):
        for directory in (self.log_dir, self.model_dir, self.checkpoint_dir):
            directory.mkdir(parents=True, exist_ok=True)
        return self


TEMPORARY_MARKER = ".tmp-"


def temporary_prefix(path):
    """The name prefix of temporaries beside `path` (`.model.keras.tmp-`): hidden, and found again by
    `remove_stale_temporaries` after a crash."""
    return f".{pathlib.Path(path).name}{TEMPORARY_MARKER}"


def atomic_write_bytes(path, data):
    """Writes `data` to a temporary file beside `path`, then renames it into place.

    A crash leaves either the old file or the new one at `path`, never a
    half-written one; at worst a hidden temporary remains beside it.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path))
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def atomic_write_text(path, text):
    return atomic_write_bytes(path, text.encode("utf-8"))


def save_keras_model(model, path):
    """`model.save` to a hidden temporary `.keras` file beside `path`, renamed into place."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=".keras")
    os.close(handle)
    try:
        model.save(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def remove_stale_temporaries(*directories):
    """Deletes what a killed process left half-written under `directories`; returns the paths removed.

    These are this module's hidden temporaries (`.NAME.tmp-*`) and TensorFlow's
    `ckpt-N_temp` checkpoint folders. Call it only while holding the run's lock.
    """
    removed = []
    for directory in directories:
        directory = pathlib.Path(directory)
        if not directory.is_dir():
            continue
        stale = [path for path in directory.rglob("*")
                 if (path.name.startswith(".") and TEMPORARY_MARKER in path.name)
                 or (path.is_dir() and path.name.startswith("ckpt-") and path.name.endswith("_temp"))]
        for path in sorted(stale, key=lambda item: len(item.parts)):
            if not path.exists():
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def write_json(path, payload):
    return atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def write_config(paths, config):
    """Writes the run's config next to its logs; keeps the first one on resume.

    A resumed run appends its own config to `config_history` so that every
    invocation stays reproducible.
    """
    config = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    if paths.config_file.exists():
        existing = json.loads(paths.config_file.read_text())
        existing.setdefault("resumed_with", []).append(config)
        return write_json(paths.config_file, existing)
    return write_json(paths.config_file, config)


def set_seed(seed):
    """Seeds Python, NumPy and TensorFlow (through Keras) in one call."""
    keras.utils.set_random_seed(int(seed))


class RunLock:
    """A lock file (`saved_models/<task>/.<run>.lock`, holding the PID) so one process trains a run at a time.

    A lock left by a process that no longer runs (killed, machine restarted)
    is stale and taken over; a live one makes the second process stop with a
    message naming the PID.
    """

    def __init__(self, path):
        self.path = pathlib.Path(path)

    @staticmethod
    def _alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def acquire(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and pid != os.getpid() and self._alive(pid):
                    raise RuntimeError(
                        f"Run folder {self.path.parent} is in use by process {pid}. Wait for it, stop it, "
                        "or choose another --run-name."
                    ) from None
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(handle, "w") as file:
                file.write(str(os.getpid()))
            return self

    def release(self):
        try:
            if int(self.path.read_text().strip() or 0) == os.getpid():
                self.path.unlink()
        except (OSError, ValueError):
            pass

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()


def is_external_data(data, run_data):
    """True when `data` names a folder other than the run's own `run_data`."""
    if not data:
        return False
    return pathlib.Path(data).expanduser().resolve() != pathlib.Path(run_data).expanduser().resolve()


def evaluation_dir(log_dir, external_data="", suffix=""):
    """`<log_dir>/evaluation[-<folder name of external_data>][-<suffix>]/`, where an evaluation writes.

    A run's own evaluation goes to `evaluation/`; an external test set
    `DIR` goes to `evaluation-<DIR's name>/`, so no evaluation replaces
    another one's files.
    """
    parts = ["evaluation"]
    if external_data:
        parts.append(re.sub(r"[^A-Za-z0-9._-]+", "_", pathlib.Path(external_data).expanduser().resolve().name))
    if suffix:
        parts.append(suffix)
    return pathlib.Path(log_dir) / "-".join(parts)
