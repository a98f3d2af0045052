"""Does every artifact of a run load? Checks of a run's files, for the fault suite and for people.

`scan_run` opens each file a run folder holds at its final name (checkpoints,
.keras in safe mode, SavedModels, TFLite, JSON, CSV, PNG, GIF) and reports the
ones that do not load, and the temporaries a killed writer left;
`checkpoint_state` reads the step/epoch counters of the latest checkpoint.
"""

import csv
import json
import pathlib

from tf_models.core import runs

_STATE_KEY = "state/{}/.ATTRIBUTES/VARIABLE_VALUE"


def check_checkpoint(prefix):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(prefix))
    for key in reader.get_variable_to_shape_map():
        reader.get_tensor(key)


def check_keras(path):
    import keras

    from tf_models import registry

    registry.import_models()

    keras.saving.load_model(path, safe_mode=True, compile=False)


def check_saved_model(path):
    import tensorflow as tf

    if "serving_default" not in tf.saved_model.load(str(path)).signatures:
        raise ValueError("no serving_default signature")


def check_tflite(path):
    import tensorflow as tf

    tf.lite.Interpreter(model_path=str(path)).allocate_tensors()


def check_csv(path):
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    if not rows or any(len(row) != len(rows[0]) for row in rows):
        raise ValueError("ragged or empty CSV")


def check_image(path):
    import imageio.v3 as iio

    iio.imread(path, index=None if path.suffix == ".gif" else 0)


_FILE_CHECKS = {".keras": check_keras, ".tflite": check_tflite, ".json": lambda p: json.loads(p.read_text()),
                ".csv": check_csv, ".png": check_image, ".gif": check_image}


def is_temporary(path):
    name = pathlib.Path(path).name
    return (name.startswith(".") and runs.TEMPORARY_MARKER in name) or name.endswith("_temp")


def scan_run(log_dir, model_dir):
    """(corrupted [(path, error)], temporaries [path]) of one run's folders.

    Every file at a final name must load: each checkpoint's tensors, .keras
    files in safe mode, each serving/<N> SavedModel, TFLite, JSON, CSV,
    PNG and GIF. Temporaries (a killed writer's leftovers, removed by the
    next start) are listed apart. TensorBoard event files are append-only
    logs whose readers skip a cut-off last record; they are not checked.
    """
    corrupted, temporaries = [], []
    checked = []
    for root in (pathlib.Path(log_dir), pathlib.Path(model_dir)):
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if any(is_temporary(part) for part in path.relative_to(root).parts):
                if is_temporary(path):
                    temporaries.append(path)
                continue
            if path.parent.name == "checkpoints" and path.suffix == ".index":
                checked.append((path.with_suffix(""), check_checkpoint))
            elif path.parent.name == "serving" and path.is_dir() and path.name.isdigit():
                checked.append((path, check_saved_model))
            elif path.is_file() and path.suffix in _FILE_CHECKS and "checkpoints" not in path.parts \
                    and "serving" not in path.parts:
                checked.append((path, _FILE_CHECKS[path.suffix]))
    for path, check in checked:
        try:
            check(path)
        except Exception as error:  # each loader raises its own types for a damaged file
            corrupted.append((str(path), f"{type(error).__name__}: {str(error)[:200]}"))
    return corrupted, [str(path) for path in temporaries]


def checkpoint_state(checkpoint_dir):
    """{"path", "step", "epoch", "step_in_epoch"} of the latest checkpoint, or None."""
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(str(checkpoint_dir))
    if latest is None:
        return None
    reader = tf.train.load_checkpoint(latest)
    state = {name: int(reader.get_tensor(_STATE_KEY.format(name))) for name in ("step", "epoch", "step_in_epoch")}
    return {"path": latest, **state}
