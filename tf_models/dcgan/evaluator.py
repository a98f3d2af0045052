"""The classifier whose probabilities and features score generated images.

A small CNN is trained on the real images a GAN learns from (same dataset,
same image size, same [-1, 1] scaling). Its class probabilities give realism,
diversity and the inception-score proxy, and its penultimate `features` layer
gives the Frechet and kernel distances (see `tf_models/metrics.py`).

Scores are only comparable for images of the dataset and size the evaluator
was trained on, so each trained evaluator comes with a card (a dict saved as
`card.json` next to `model.keras`) and `check_compatible` refuses the rest.
"""

import json
import pathlib

import keras
import tensorflow as tf

from pipelines import augment
from tf_models.core import runs

FEATURES_LAYER = "features"
CARD_KEYS = ("dataset", "image_size", "channels", "class_names", "test_accuracy")


def build_evaluator(
    image_size,
    channels,
    num_classes,
    filters=32,
    blocks=3,
    feature_dim=128,
    dropout=0.3,
    batch_norm_momentum=0.9,
    name="evaluator",
):
    """Image in [-1, 1] -> class logits.

    Each block is two 3x3 conv-BN-ReLU layers with `filters * 2**block`
    filters, followed by 2x2 max pooling (except after the last block). Global
    average pooling, dropout and a dense ReLU layer named `features`
    (`feature_dim` units, the embedding the distances use) lead to the logits.
    Batch norm uses momentum 0.9 (Keras: 0.99) so that its inference
    statistics settle within the few hundred steps a small dataset gives.

    Example:

    ```python
    classifier = build_evaluator(image_size=28, channels=1, num_classes=10)
    classifier.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    features, probabilities = feature_and_probability_model(classifier)(images)
    ```
    """
    if image_size < 2**blocks:
        raise ValueError(f"image_size {image_size} is too small for {blocks} blocks; use at least {2**blocks}.")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}.")
    if num_classes < 2:
        raise ValueError(f"An evaluator needs at least 2 classes, got {num_classes}.")
    inputs = keras.Input(shape=(image_size, image_size, channels), name="image")
    x = inputs
    for block in range(blocks):
        for _ in range(2):
            x = keras.layers.Conv2D(filters * 2**block, 3, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization(momentum=batch_norm_momentum)(x)
            x = keras.layers.ReLU()(x)
        if block < blocks - 1:
            x = keras.layers.MaxPooling2D(2, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Dense(feature_dim, activation="relu", name=FEATURES_LAYER)(x)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def feature_and_probability_model(classifier):
    """A model mapping images to (features [N, feature_dim], probabilities [N, num_classes]).

    Both outputs are float32 and computed in inference mode (no dropout).
    """
    features = keras.layers.Activation("linear", dtype="float32", name="feature_output")(
        classifier.get_layer(FEATURES_LAYER).output
    )
    probabilities = keras.layers.Softmax(dtype="float32", name="probabilities")(classifier.output)
    return keras.Model(classifier.input, [features, probabilities], name=f"{classifier.name}_scores")


def dataset_id(data):
    """The name a card stores for a `--data` value.

    `digits` and `tfds:NAME` are kept as given; a folder is named by its own
    folder name, so `../shared/datasets/mnist` and `/data/mnist` are the same
    dataset.
    """
    if data == "digits" or data.startswith("tfds:"):
        return data
    return pathlib.Path(data).resolve().name


def make_card(data, image_size, channels, class_names, test_accuracy):
    return {
        "dataset": dataset_id(data),
        "image_size": int(image_size),
        "channels": int(channels),
        "class_names": list(class_names),
        "test_accuracy": float(test_accuracy),
    }


def check_compatible(card, image_size, channels, dataset):
    """Raises `ValueError` unless the evaluator of `card` was trained for these images."""
    wanted = {"dataset": dataset_id(dataset), "image_size": int(image_size), "channels": int(channels)}
    mismatches = [
        f"{key} {card.get(key)!r} (these images: {value!r})" for key, value in wanted.items() if card.get(key) != value
    ]
    if mismatches:
        raise ValueError(
            "The evaluator does not match the images it would score: it was trained on "
            + ", ".join(mismatches)
            + ". Its scores would not be comparable; train one with scripts/train_evaluator.py "
            f"--data {dataset} --image-size {image_size}."
        )


def write_card(path, card):
    missing = [key for key in CARD_KEYS if key not in card]
    if missing:
        raise ValueError(f"An evaluator card needs {', '.join(missing)}.")
    return runs.write_json(path, card)


def read_card(path):
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: evaluator card not found (train one with scripts/train_evaluator.py).")
    card = json.loads(path.read_text())
    missing = [key for key in CARD_KEYS if key not in card]
    if missing:
        raise ValueError(f"{path}: not an evaluator card (missing {', '.join(missing)}).")
    return card


def load_evaluator(model_dir):
    """(classifier, card) from a folder holding `model.keras` and `card.json`."""
    model_dir = pathlib.Path(model_dir)
    card = read_card(model_dir / "card.json")
    return keras.models.load_model(model_dir / "model.keras"), card


def augmented_training(dataset, seed, flip=False, translate=0):
    """`dataset` of (images, labels) batches with random flips and shifts (`augment.flip_and_translate`).

    Only the training split is given to this: the test split and every image
    the trained evaluator scores are seen as they are. Each epoch draws new
    flips and shifts.
    """
    if not flip and not translate:
        return dataset
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def apply(batch, batch_seed):
        images, labels = batch
        return augment.flip_and_translate(images, batch_seed, flip, translate), labels

    return tf.data.Dataset.zip((dataset, seeds)).map(apply, num_parallel_calls=tf.data.AUTOTUNE)
