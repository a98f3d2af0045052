"""Train the evaluator classifier that scores generated images.

Examples:
  python scripts/train_evaluator.py --data digits --image-size 28 --epochs 10 --run-name digits28
  python scripts/train_evaluator.py --data ../shared/datasets/mnist --image-size 28 --epochs 3 --run-name mnist28
  python scripts/train_evaluator.py --data ../shared/datasets/fashion_mnist --image-size 64 --epochs 6 --cosine-decay --run-name fashion64
  python scripts/train_evaluator.py --data ../shared/datasets/cifar10 --image-size 32 --epochs 30 --cosine-decay --run-name cifar32

Trains on the train split (images resized to --image-size and scaled to [-1, 1]
like the GAN's), reports accuracy on the test split, and writes
saved_models/evaluator/<run>/model.keras and card.json (dataset, image size,
channels, class names, test accuracy).
"""

import dataclasses
import sys

import keras

from pipelines import classification
from tf_models.dcgan import evaluator
from tf_models.core import config as config_lib
from tf_models.core import cli, runs
from tf_models.core.config import option


@dataclasses.dataclass
class EvaluatorConfig:
    data: str = option("digits", "'digits', 'tfds:NAME' or a local folder with train and test splits")
    run_name: str = option("", "folder name under saved_models/evaluator/; empty means a timestamp")
    epochs: int = option(10, "number of epochs")
    batch_size: int = option(64, "batch size")
    image_size: int = option(28, "side of the square images; the same as the GAN's")
    learning_rate: float = option(1e-3, "Adam learning rate")
    cosine_decay: bool = option(False, "decay the learning rate to 0 over the run along a cosine "
                                       "(Loshchilov & Hutter, 2017)")
    filters: int = option(32, "filters of the first convolution block")
    seed: int = option(0, "seed of weights and data order")
    tfds_data_dir: str = option("", "TensorFlow Datasets data_dir for tfds:NAME sources")
    models_root: str = option("saved_models", "root of the model folders")


def validate(config):
    for name in ("epochs", "batch_size", "image_size", "filters"):
        if getattr(config, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(config, name)}.")
    if config.learning_rate <= 0:
        raise ValueError(f"--learning-rate must be positive, got {config.learning_rate}.")
    runs.validate_run_name(config.run_name)


def learning_rate(config, train_dataset):
    """The constant rate, or with --cosine-decay a schedule reaching 0 at the last step."""
    if not config.cosine_decay:
        return config.learning_rate
    steps_per_epoch = int(train_dataset.cardinality())
    if steps_per_epoch <= 0:
        raise ValueError("--cosine-decay needs a training split of known length.")
    return keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps_per_epoch * config.epochs)


def train(config):
    """Trains, evaluates and saves an evaluator; returns (model file, card file, card)."""
    validate(config)
    runs.set_seed(config.seed)
    data = classification.build_classification_data(
        config.data, config.image_size, config.batch_size, seed=config.seed, tfds_data_dir=config.tfds_data_dir or None
    )
    classifier = evaluator.build_evaluator(
        config.image_size, data.channels, len(data.class_names), filters=config.filters
    )
    classifier.compile(
        optimizer=keras.optimizers.Adam(learning_rate(config, data.datasets["train"])),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    classifier.fit(data.datasets["train"], epochs=config.epochs)
    _, test_accuracy = classifier.evaluate(data.datasets["test"], verbose=0)
    card = evaluator.make_card(config.data, config.image_size, data.channels, data.class_names, test_accuracy)
    paths = runs.RunPaths("evaluator", config.run_name, models_root=config.models_root)
    paths.model_dir.mkdir(parents=True, exist_ok=True)
    runs.save_keras_model(classifier, paths.keras_file)
    card_file = evaluator.write_card(paths.model_dir / "card.json", card)
    return paths.keras_file, card_file, card


def main(argv=None):
    parser = config_lib.build_parser(EvaluatorConfig, __doc__.splitlines()[0], epilog=__doc__)
    config = EvaluatorConfig(**vars(parser.parse_args(argv)))
    config.run_name = config.run_name or runs.default_run_name()
    model_file, card_file, card = train(config)
    print(f"\nTest accuracy: {card['test_accuracy']:.4f}")
    print("Wrote:")
    print(f"  {model_file}")
    print(f"  {card_file}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
