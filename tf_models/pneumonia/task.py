"""The pneumonia task: Kermany chest X-rays, a from-scratch CNN, export with a stored threshold.

    python scripts/train_pneumonia.py --preset default --run-name xray
"""

import dataclasses
import json

import keras
import numpy as np
import tensorflow as tf

from pipelines import classification
from tf_models.pneumonia import model as pneumonia
from tf_models.core import callback_state
from tf_models.core import callbacks as callbacks_lib
from tf_models.core import checkpoints
from tf_models.core import config as config_lib
from tf_models.core import export as export_lib
from tf_models.core import runner, runs

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
    hflip: bool = option(False, "also flip horizontally (off: the heart is on the left)")
    class_weighting: bool = option(True, "weight the loss by inverse class frequency of the training split")
    patience: int = option(5, "epochs without a better val_auc before early stopping")
    threshold_policy: str = option("youden", "threshold chosen on validation: youden or accuracy")
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
    if config.threshold_policy not in pneumonia.THRESHOLD_POLICIES:
        raise ValueError(f"Unknown --threshold-policy {config.threshold_policy!r}; choose youden or accuracy.")
    return classification.build_pneumonia_data(
        config.data, config.image_size, config.batch_size, config.validation_fraction, config.seed,
        augment=config.augment, hflip=config.hflip,
        augment_ranges=dict(rotation=config.rotation, zoom=config.zoom, aspect_zoom=config.aspect_zoom,
                            shift=config.shift, brightness=config.brightness, contrast=config.contrast),
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
        """threshold.json: the decision threshold chosen on the validation split, which serving applies."""
        if self.data is None or self.data.validation_dataset is None:
            return []
        labels, probabilities = predict_probabilities(model, self.data.validation_dataset)
        threshold = pneumonia.choose_threshold(labels, probabilities, config.threshold_policy)
        return [store_threshold(paths, threshold, config.threshold_policy, "validation split carved from train/")]

    def serving_endpoints(self, model, paths):
        return serving_endpoints(model, load_threshold(paths.model_dir)["threshold"])

    def deployment_examples(self, model, config, split, count):
        """uint8 X-rays and labels: the validation split, or (augmented) training batches."""
        dataset = self.data.validation_dataset if split == "validation" else self.data.make_dataset(0)
        images, labels = export_lib.take_examples(dataset, count)[:2]
        return {SERVING_INPUT: np.clip(np.round(images), 0, 255).astype(np.uint8)}, labels.ravel().astype(int)

    def deployment_score(self, outputs, targets):
        """Accuracy of the served `label` (the stored threshold) and ROC AUC of `probability`."""
        scores = pneumonia.binary_metrics(targets, outputs["probability"])
        return {"accuracy": float(np.mean(np.asarray(outputs["label"]) == targets)), "roc_auc": scores["roc_auc"]}


ENSEMBLE_SHARED_FIELDS = ("data", "image_size", "validation_fraction", "seed")


def build_ensemble_run(member_runs, run_name, logs_root="logs", models_root="saved_models", policy="youden"):
    """A pneumonia run whose model averages the logits of trained runs; returns the files written.

    The members must share the data, image size and validation split (seed,
    fraction), so the threshold is chosen on images none of them trained on.
    The new run gets model.keras, threshold.json, serving/, model.tflite and
    a config.json naming its members; its training time is the members' sum.
    """
    if run_name in member_runs:
        raise ValueError(f"The ensemble run {run_name!r} cannot also be one of its members.")
    members, configs, clock = _load_members(member_runs, logs_root, models_root)
    config = {**{field: configs[0][field] for field in ENSEMBLE_SHARED_FIELDS}, "run_name": run_name,
              "batch_size": configs[0].get("batch_size", 32), "members": list(member_runs),
              "threshold_policy": policy}
    paths = runs.RunPaths("pneumonia", run_name, logs_root, models_root).make_dirs()
    model = compile_model(pneumonia.build_ensemble(members), configs[0].get("learning_rate", 1e-3))
    task = PneumoniaTask()
    task_config = config_lib.make_config(
        PneumoniaConfig, PRESETS, run_name=run_name, batch_size=config["batch_size"], threshold_policy=policy,
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
    members, configs, seconds, untimed = [], [], 0.0, []
    for member_run in member_runs:
        paths = runs.RunPaths("pneumonia", member_run, logs_root, models_root)
        if not paths.keras_file.is_file() or not paths.config_file.is_file():
            raise ValueError(f"Member {member_run!r}: expected {paths.keras_file} and {paths.config_file}; "
                             "train it first with scripts/train_pneumonia.py.")
        configs.append(json.loads(paths.config_file.read_text()))
        members.append(keras.saving.load_model(paths.keras_file, compile=False))
        clock_file = paths.log_dir / callbacks_lib.TrainingClock.FILE_NAME
        if clock_file.is_file():
            seconds += callbacks_lib.TrainingClock.read(clock_file)["seconds"]
        else:
            untimed.append(member_run)
    for field in ENSEMBLE_SHARED_FIELDS:
        values = {member_run: config[field] for member_run, config in zip(member_runs, configs)}
        if len(set(map(str, values.values()))) > 1:
            raise ValueError(f"Ensemble members differ in {field}: {values}; they must share "
                             f"{', '.join(ENSEMBLE_SHARED_FIELDS)}.")
    clock = {"seconds": None if untimed else seconds, "members": list(member_runs),
             "members_without_clock": untimed}
    return members, configs, clock


def _unweighted(make_dataset):
    return lambda epoch: make_dataset(epoch).map(lambda image, label, weight: (image, label))


def write_data_summary(data, paths):
    summary = {"counts": data.counts, "class_weights": data.class_weights, "skipped_files": data.skipped}
    return runs.write_json(paths.log_dir / "data.json", summary)


def predict_probabilities(model, dataset):
    """(labels [N], probabilities [N]) of a batched (image, label) dataset."""
    labels, probabilities = [], []
    for images, batch_labels in dataset:
        probabilities.append(tf.sigmoid(model(images, training=False))[:, 0].numpy())
        labels.append(np.asarray(batch_labels).ravel())
    return np.concatenate(labels).astype(int), np.concatenate(probabilities)


def store_threshold(paths, threshold, policy, source):
    payload = {"threshold": float(threshold), "policy": policy, "chosen_on": source}
    return runs.write_json(paths.model_dir / THRESHOLD_FILE, payload)


def load_threshold(model_dir):
    """The stored threshold record, or 0.5 with policy 'default' when none was stored."""
    path = model_dir / THRESHOLD_FILE
    if not path.is_file():
        return {"threshold": 0.5, "policy": "default", "chosen_on": "none (no threshold.json)"}
    return json.loads(path.read_text())


def serving_endpoints(model, threshold):
    """`serving_default`: images uint8 [N, H, W, C] -> probability float32 [N], label int32 [N]."""
    _, height, width, channels = model.input_shape

    def classify(images):
        probability = tf.sigmoid(model(tf.cast(images, tf.float32), training=False))[:, 0]
        return {"probability": probability, "label": tf.cast(probability >= threshold, tf.int32)}

    signature = [tf.TensorSpec([None, height, width, channels], tf.uint8, name=SERVING_INPUT)]
    return {"serving_default": (classify, signature)}
