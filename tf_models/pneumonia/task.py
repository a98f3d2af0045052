"""The pneumonia task: Kermany chest X-rays, a from-scratch CNN, export with a stored temperature and threshold.

    python scripts/train_pneumonia.py --preset default --run-name xray
"""

import dataclasses
import itertools
import json
import pathlib

import keras
import numpy as np
import tensorflow as tf

from pipelines import classification
from tf_models.pneumonia import calibration
from tf_models.pneumonia import inference
from tf_models.pneumonia import model as pneumonia
from tf_models.core import callback_state
from tf_models.core import callbacks as callbacks_lib
from tf_models.core import checkpoints
from tf_models.core import config as config_lib
from tf_models.core import export as export_lib
from tf_models.core import provenance, runner, runs

option = config_lib.option

SERVING_INPUT = "images"
THRESHOLD_FILE = "threshold.json"


@dataclasses.dataclass
class PneumoniaConfig(config_lib.TrainConfig):
    data: str = option("../shared/datasets/chest_xray", "Kermany folder <root>/{train,test}/{NORMAL,PNEUMONIA}")
    epochs: int = option(20, "total number of epochs")
    batch_size: int = option(32, "global batch size")
    image_size: int = option(224, "side of the square grayscale images")
    learning_rate: float = option(1e-3, "Adam learning rate")
    filters: int = option(16, "filters of the first conv block (doubled per block)")
    blocks: int = option(4, "number of conv/BN/ReLU/pool blocks")
    dense_units: int = option(128, "width of the dense head (0: none)")
    dropout: float = option(0.3, "dropout before the logit")
    normalization: str = option("per_image", "per_image (zero mean, unit variance), rescale (grey levels / 255) "
                                             "or equalize (histogram equalization, then / 255)")
    validation_fraction: float = option(0.1, "share of train/ patients carved out for validation")
    augment: bool = option(True, "rotation, zoom, shift, brightness and contrast on training images")
    rotation: float = option(0.03, "augmentation: largest rotation, a fraction of a full turn (0.03: about 11 degrees)")
    zoom: float = option(0.1, "augmentation: largest zoom in or out, a fraction of the side")
    aspect_zoom: bool = option(False, "augmentation: zoom width and height independently (varies the framing)")
    shift: float = option(0.05, "augmentation: largest shift, a fraction of the side")
    brightness: float = option(0.1, "augmentation: largest brightness change, a fraction of the grey range")
    contrast: float = option(0.1, "augmentation: largest contrast change factor")
    blur: float = option(0.0, "augmentation: largest Gaussian blur sigma in pixels of the training size, at most 1 "
                              "(0: none); covers films sharper or softer than train/'s")
    gamma: float = option(0.0, "augmentation: random gamma curve between 1/(1+G) and 1+G (0: none); moves the "
                               "background against the lungs, which per-image standardization keeps")
    hflip: bool = option(False, "also flip horizontally (off: the heart is on the left)")
    mixup: float = option(0.0, "mixup (Zhang et al., 2018): train on blends of two films and of their labels, "
                               "share ~ Beta(A, A) (0: off; 0.2 is usual)")
    class_weighting: bool = option(True, "weight the loss by inverse class frequency of the training split")
    patience: int = option(5, "epochs without a better val_auc before early stopping")
    threshold_policy: str = option("youden", "threshold chosen on validation: youden, accuracy, "
                                             "sensitivity:T or specificity:T (e.g. sensitivity:0.95)")
    temperature_scaling: bool = option(True, "fit a temperature on validation so that P(PNEUMONIA) is calibrated")
    save_every_steps: int = option(0, "also checkpoint every N steps (0: epoch ends only)")


PRESETS = {
    # CPU-sized: 128 px, 4 blocks of 16-128 filters.
    "default": dict(image_size=128, batch_size=32, epochs=15, steps_per_epoch=0),
    # The published-style setting: 224 px.
    "full": dict(image_size=224, batch_size=32, epochs=30, patience=7),
    # Seconds on a CPU: tests, the app demo, `bench --quick` and the fault suite.
    "tiny": dict(image_size=32, filters=8, blocks=3, dense_units=32, batch_size=8, validation_fraction=0.25,
                 epochs=1, steps_per_epoch=4),
}


def compile_model(model, learning_rate):
    """Adam + binary cross-entropy on the logit; metrics thresholded at logit 0 (probability 0.5)."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[
            keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy"),
            keras.metrics.Precision(thresholds=0.0, name="precision"),
            keras.metrics.Recall(thresholds=0.0, name="recall"),
            keras.metrics.AUC(from_logits=True, name="auc"),
        ],
    )
    return model


def build_data(config):
    calibration.parse_policy(config.threshold_policy)
    if config.cosine_decay:
        raise ValueError("--cosine-decay does not apply to the pneumonia CNN: its rate is lowered on a "
                         "validation-AUC plateau (ReduceLROnPlateau), which a cosine would override.")
    return classification.build_pneumonia_data(
        config.data, config.image_size, config.batch_size, config.validation_fraction, config.seed,
        augment=config.augment, hflip=config.hflip,
        augment_ranges=dict(rotation=config.rotation, zoom=config.zoom, aspect_zoom=config.aspect_zoom,
                            shift=config.shift, brightness=config.brightness, contrast=config.contrast,
                            blur=config.blur, gamma=config.gamma),
        mixup_alpha=config.mixup,
    )


class PneumoniaTask(runner.Task):
    name = "pneumonia"

    def __init__(self):
        self.data = None
        self.callback_state = None

    def build_data(self, config):
        self.data = build_data(config)
        if not config.class_weighting:
            self.data.class_weights = {0: 1.0, 1: 1.0}
            self.data.make_dataset = _unweighted(self.data.make_dataset)
        return self.data

    def build_model(self, config, data):
        model = pneumonia.build_pneumonia_cnn(
            config.image_size, filters=config.filters, blocks=config.blocks,
            dense_units=config.dense_units, dropout=config.dropout, normalization=config.normalization,
        )
        compile_model(model, config.learning_rate)
        # Built here, in the strategy scope: built lazily inside the first replicated step it fails.
        model.optimizer.build(model.trainable_variables)
        return model

    def checkpoint_items(self, model):
        """EarlyStopping's and ReduceLROnPlateau's state (counters, best value and weights), so a resumed run
        stops and lowers its learning rate when an uninterrupted one would."""
        self.callback_state = callback_state.CallbackState(
            model, early_stopping=True, reduce_learning_rate=True, early_stopping_weights=True
        )
        return {"callback_state": checkpoints.OptionalItem(self.callback_state)}

    def learning_rates(self, model, config):
        if self.callback_state is None:
            return [(model.optimizer, config.learning_rate)]
        return [(model.optimizer, self.callback_state.learning_rate(model.optimizer, config.learning_rate))]

    def callbacks(self, model, paths, config):
        if self.data is not None:
            write_data_summary(self.data, paths)
        early_stopping = keras.callbacks.EarlyStopping(
            monitor="val_auc", mode="max", patience=config.patience, restore_best_weights=True
        )
        plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_auc", mode="max", factor=0.5, patience=2,
                                                    min_lr=1e-6)
        kept = [early_stopping, plateau]
        if self.callback_state is not None:
            kept.append(self.callback_state.callback(early_stopping=early_stopping, reduce_learning_rate=plateau))
        best_model = callbacks_lib.BestModel(paths.model_dir / "best.keras", "val_auc", "max",
                                             paths.log_dir / "history.csv")
        return [best_model] + kept

    def adopt_saved_model(self, model, saved, config):
        """The saved functional model itself: a single CNN or an ensemble (`build_ensemble_run`)."""
        return compile_model(saved, config.learning_rate)

    def before_export(self, model, paths, config):
        """threshold.json: the temperature and the decision threshold chosen on the validation split, which serving applies."""
        if self.data is None or self.data.validation_dataset is None:
            return []
        return [calibrate_run(model, paths, self.data.validation_dataset, config.threshold_policy,
                              config.temperature_scaling)]

    def serving_endpoints(self, model, paths):
        decision = load_threshold(paths.model_dir)
        return serving_endpoints(model, decision["threshold"], decision["temperature"])

    def deployment_examples(self, model, config, split, count):
        """uint8 X-rays and labels of both classes: the validation split, or (augmented) training batches.

        The validation split is in file order (one class, then the other), so the examples alternate the
        classes rather than take the first `count`, which the AUC of the export report needs.
        """
        if split == "validation":
            images, labels = export_lib.take_examples(self.data.validation_dataset, 10**9)[:2]
            labels = labels.ravel().astype(int)
            by_class = [np.flatnonzero(labels == value) for value in (0, 1)]
            order = [index for pair in itertools.zip_longest(*by_class) for index in pair if index is not None]
            chosen = np.asarray(order[:count])
            images, labels = images[chosen], labels[chosen]
        else:
            images, labels = export_lib.take_examples(self.data.make_dataset(0), count)[:2]
            labels = labels.ravel().astype(int)
        return {SERVING_INPUT: np.clip(np.round(images), 0, 255).astype(np.uint8)}, labels

    def deployment_score(self, outputs, targets):
        """Accuracy of the served `label` (the stored threshold) and ROC AUC of `probability`."""
        scores = calibration.binary_metrics(targets, outputs["probability"])
        return {"accuracy": float(np.mean(np.asarray(outputs["label"]) == targets)), "roc_auc": scores["roc_auc"]}


ENSEMBLE_SHARED_FIELDS = ("data", "image_size", "validation_fraction", "seed")


def build_ensemble_run(member_runs, run_name, logs_root="logs", models_root="saved_models", policy="youden",
                       calibrate=True, command=None):
    """A pneumonia run whose model averages the logits of trained runs; returns the files written.

    The members must share the data, image size and validation split (seed,
    fraction), so the threshold is chosen on images none of them trained on.
    The new run gets model.keras, threshold.json (temperature and threshold),
    serving/, model.tflite and a config.json naming its members; its training
    time and steps are the members' sums. `command`, when given, is recorded in
    its provenance.jsonl.
    """
    if run_name in member_runs:
        raise ValueError(f"The ensemble run {run_name!r} cannot also be one of its members.")
    members, configs, clock = _load_members(member_runs, logs_root, models_root)
    config = {**{field: configs[0][field] for field in ENSEMBLE_SHARED_FIELDS}, "run_name": run_name,
              "batch_size": configs[0].get("batch_size", 32), "members": list(member_runs),
              "threshold_policy": policy, "temperature_scaling": calibrate}
    paths = runs.RunPaths("pneumonia", run_name, logs_root, models_root).make_dirs()
    if command:
        provenance.record(paths.log_dir, command)
    model = compile_model(pneumonia.build_ensemble(members), configs[0].get("learning_rate", 1e-3))
    task = PneumoniaTask()
    task_config = config_lib.make_config(
        PneumoniaConfig, PRESETS, run_name=run_name, batch_size=config["batch_size"], threshold_policy=policy,
        temperature_scaling=calibrate,
        logs_root=str(logs_root), models_root=str(models_root),
        **{field: config[field] for field in ENSEMBLE_SHARED_FIELDS},
    )
    task.build_data(task_config)
    written = [
        runs.write_json(paths.config_file, config),
        runs.write_json(paths.log_dir / callbacks_lib.TrainingClock.FILE_NAME, clock),
    ]
    return written + runner.export_run(task, model, task_config, paths)


def _load_members(member_runs, logs_root, models_root):
    """(models, configs, summed training clock) of the member runs; ValueError when they cannot combine."""
    members, configs, seconds, steps, untimed = [], [], 0.0, 0, []
    for member_run in member_runs:
        paths = runs.RunPaths("pneumonia", member_run, logs_root, models_root)
        if not paths.keras_file.is_file() or not paths.config_file.is_file():
            raise ValueError(f"Member {member_run!r}: expected {paths.keras_file} and {paths.config_file}; "
                             "train it first with scripts/train_pneumonia.py.")
        configs.append(json.loads(paths.config_file.read_text()))
        members.append(keras.saving.load_model(paths.keras_file, compile=False))
        clock_file = paths.log_dir / callbacks_lib.TrainingClock.FILE_NAME
        if clock_file.is_file():
            member_clock = callbacks_lib.TrainingClock.read(clock_file)
            seconds += member_clock["seconds"]
            steps += member_clock.get("steps", 0)
        else:
            untimed.append(member_run)
    for field in ENSEMBLE_SHARED_FIELDS:
        values = {member_run: config[field] for member_run, config in zip(member_runs, configs)}
        if len(set(map(str, values.values()))) > 1:
            raise ValueError(f"Ensemble members differ in {field}: {values}; they must share "
                             f"{', '.join(ENSEMBLE_SHARED_FIELDS)} (the seed and fraction draw the validation "
                             "split that chooses the ensemble's temperature and threshold).")
    clock = {"seconds": None if untimed else seconds, "steps": None if untimed else steps,
             "members": list(member_runs), "members_without_clock": untimed}
    return members, configs, clock


def _unweighted(make_dataset):
    return lambda epoch: make_dataset(epoch).map(lambda image, label, weight: (image, label))


def write_data_summary(data, paths):
    summary = {"counts": data.counts, "class_weights": data.class_weights, "skipped_files": data.skipped}
    return runs.write_json(paths.log_dir / "data.json", summary)


def predict_probabilities(model, dataset, temperature=1.0):
    """(labels [N], P(PNEUMONIA) [N] at `temperature`) of a batched (image, label) dataset."""
    labels, logits = inference.dataset_logits(model, dataset)
    return labels, calibration.calibrated_probabilities(logits, temperature)


def store_threshold(paths, threshold, policy, source, temperature=1.0, calibrated=False, **facts):
    """Writes threshold.json: the threshold on sigmoid(logit / temperature) and how both were chosen."""
    payload = {"threshold": float(threshold), "policy": policy, "chosen_on": source,
               "temperature": float(temperature), "calibrated": bool(calibrated), **facts}
    return runs.write_json(paths.model_dir / THRESHOLD_FILE, payload)


def store_decision(paths, decision):
    """threshold.json from a `calibration.fit_decision` record."""
    facts = {key: value for key, value in decision.items() if key not in ("threshold", "policy", "chosen_on")}
    return store_threshold(paths, decision["threshold"], decision["policy"], decision["chosen_on"], **facts)


def load_threshold(model_dir):
    """The stored decision record; 0.5 at temperature 1 (uncalibrated) with policy 'default' when none was stored.

    A record written before temperature scaling existed reads as temperature 1, uncalibrated.
    """
    path = pathlib.Path(model_dir) / THRESHOLD_FILE
    defaults = {"threshold": 0.5, "policy": "default", "chosen_on": f"none (no {THRESHOLD_FILE})",
                "temperature": 1.0, "calibrated": False}
    if not path.is_file():
        return defaults
    return {**defaults, **json.loads(path.read_text())}


def serving_endpoints(model, threshold, temperature=1.0):
    """`serving_default`: images uint8 [N, H, W, C] -> probability float32 [N], label int32 [N].

    `probability` is sigmoid(logit / temperature), the run's calibrated P(PNEUMONIA);
    `label` is 1 where it reaches `threshold`.
    """
    _, height, width, channels = model.input_shape

    def classify(images):
        logits = model(tf.cast(images, tf.float32), training=False)[:, 0]
        probability = tf.sigmoid(logits / tf.constant(temperature, tf.float32))
        return {"probability": probability, "label": tf.cast(probability >= threshold, tf.int32)}

    signature = [tf.TensorSpec([None, height, width, channels], tf.uint8, name=SERVING_INPUT)]
    return {"serving_default": (classify, signature)}


def calibrate_run(model, paths, validation_dataset, policy="youden", calibrate=True):
    """Fits the temperature and chooses the threshold on the validation split; writes threshold.json."""
    labels, logits = inference.dataset_logits(model, validation_dataset)
    return store_decision(paths, calibration.fit_decision(labels, logits, policy, calibrate))
