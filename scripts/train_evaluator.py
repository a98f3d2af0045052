"""Train the evaluator classifier that scores generated images.

Examples:
  python scripts/train_evaluator.py --data digits --image-size 28 --epochs 10 --run-name digits28
  python scripts/train_evaluator.py --data ../shared/datasets/mnist --image-size 28 --epochs 3 --run-name mnist28
  python scripts/train_evaluator.py --data ../shared/datasets/fashion_mnist --image-size 64 --filters 16 --epochs 100 --time-budget-minutes 10 --cosine-decay --run-name fashion64
  python scripts/train_evaluator.py --data ../shared/datasets/cifar10 --image-size 32 --preset cifar32 --run-name cifar32
  python scripts/train_evaluator.py --preset cifar32 --run-name cifar32-augmented

--flip and --translate N augment the training split only (random left-right flips, shifts of up to N
pixels); --preset cifar32 is the CIFAR-10 evaluator with both (any flag after it overrides the preset).

Trains on the train split (images resized to --image-size and scaled to [-1, 1]
like the GAN's), reports accuracy on the test split, and writes
logs/evaluator/<run>/ (TensorBoard, config.json, history.csv) and
saved_models/evaluator/<run>/ (checkpoints/, model.keras, card.json: dataset,
image size, channels, class names, augmentation, test accuracy). Running again
with the same --run-name resumes.
"""

import sys

from tf_models.core import config as config_lib
from tf_models.core import cli, provenance, runner
from tf_models.dcgan import evaluator_task


def main(argv=None):
    config = config_lib.parse_config(evaluator_task.EvaluatorConfig, argv, description=__doc__.splitlines()[0],
                                     epilog=__doc__, presets=evaluator_task.PRESETS)
    command = provenance.command_line(None if argv is None else [sys.argv[0], *argv])
    model_file, card_file, card = evaluator_task.train(config, command=command)
    print(f"\nTest accuracy: {card['test_accuracy']:.4f}")
    runner.print_written([model_file, card_file])
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
