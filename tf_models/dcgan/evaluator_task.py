"""Training the evaluator classifier through the shared runner (resume, TensorBoard, time budget, export).

The run lives in `logs/evaluator/<run>/` and `saved_models/evaluator/<run>/`;
its export is `model.keras` and `card.json` (dataset, image size, channels,
class names, augmentation and the test-split accuracy), which GAN scoring reads.
"""

import dataclasses

import keras
import tensorflow as tf

from pipelines import classification, sources
from pipelines import gan as gan_pipeline
from tf_models.core import config as config_lib
from tf_models.core import runner
from tf_models.dcgan import evaluator

option = config_lib.option


@dataclasses.dataclass
class EvaluatorConfig(config_lib.TrainConfig):
    data: str = option("digits", "'digits', 'tfds:NAME' or a local folder with train and test splits")
    epochs: int = option(10, "number of epochs")
    batch_size: int = option(64, "batch size")
    image_size: int = option(28, "side of the square images; the same as the GAN's")
    learning_rate: float = option(1e-3, "Adam learning rate")
    filters: int = option(32, "filters of the first convolution block")
    flip: bool = option(False, "flip training images left-right at random (not for digits)")
    translate: int = option(0, "shift training images by up to this many pixels (reflected borders)")
    save_every_steps: int = option(0, "also checkpoint every N steps (0: epoch ends only)")


PRESETS = {
    # Seconds on a CPU: tests.
    "tiny": dict(data="digits", epochs=2, batch_size=32, filters=8),
    # The CIFAR-10 evaluator: the shared 32x32 subset overfits without augmentation.
    "cifar32": dict(data="../shared/datasets/cifar10", image_size=32, epochs=60, cosine_decay=True, filters=64,
                    flip=True, translate=4),
}


@dataclasses.dataclass
class EvaluatorData:
    test_dataset: tf.data.Dataset
    num_examples: int
    class_names: tuple
    channels: int
    cached_train: tf.data.Dataset
    config: EvaluatorConfig

    def make_dataset(self, epoch):
        """The training split, shuffled and augmented anew for each epoch (the same for the same epoch)."""
        seed = self.config.seed * 1000 + epoch
        dataset = self.cached_train.shuffle(min(10_000, self.num_examples), seed=seed)
        dataset = dataset.batch(self.config.batch_size).map(
            lambda image, label: (gan_pipeline.to_unit_range(image), label),
            num_parallel_calls=tf.data.AUTOTUNE)
        dataset = evaluator.augmented_training(dataset, seed, self.config.flip, self.config.translate)
        return dataset.prefetch(tf.data.AUTOTUNE)


class EvaluatorTask(runner.Task):
    """A CNN classifier on the GAN's data, at the GAN's image size and [-1, 1] scale."""

    name = "evaluator"
    export_formats = ()

    def resolve(self, config):
        if config.translate < 0 or config.translate >= config.image_size:
            raise ValueError(f"--translate must be in [0, {config.image_size}), got {config.translate}.")
        if config.filters <= 0:
            raise ValueError(f"--filters must be positive, got {config.filters}.")
        return config

    def build_data(self, config):
        tfds_data_dir = config.tfds_data_dir or None
        train_split = sources.load(config.data, split="train", tfds_data_dir=tfds_data_dir)
        test_split = sources.load(config.data, split="test", channels=train_split.channels,
                                  tfds_data_dir=tfds_data_dir)
        if tuple(test_split.class_names) != tuple(train_split.class_names):
            raise ValueError(f"{test_split.description}: classes {list(test_split.class_names)} differ from "
                             f"{train_split.description}: {list(train_split.class_names)}.")
        test_dataset = classification.batch_split(test_split, config.image_size, train_split.channels,
                                                  config.batch_size)
        cached = sources.resized_cache(train_split, config.image_size, train_split.channels)
        self.data = EvaluatorData(test_dataset, train_split.num_examples,
                                  tuple(train_split.class_names), train_split.channels, cached, config)
        return self.data

    def build_model(self, config, data):
        classifier = evaluator.build_evaluator(config.image_size, data.channels, len(data.class_names),
                                               filters=config.filters)
        classifier.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                           loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        return classifier

    def before_export(self, model, paths, config):
        """card.json with the accuracy on the test split, measured once at the end."""
        _, test_accuracy = model.evaluate(self.data.test_dataset, verbose=0)
        card = evaluator.make_card(config.data, config.image_size, self.data.channels, self.data.class_names,
                                   test_accuracy)
        card["augmentation"] = {"flip": config.flip, "translate": config.translate}
        return [evaluator.write_card(paths.model_dir / "card.json", card)]


def train(config, verbose=None, command=None):
    """Trains (or resumes), scores on the test split and exports; returns (model file, card file, card)."""
    result = runner.train(EvaluatorTask(), dataclasses.replace(config, export=True), verbose, command)
    card_file = result.paths.model_dir / "card.json"
    return result.paths.keras_file, card_file, evaluator.read_card(card_file)
