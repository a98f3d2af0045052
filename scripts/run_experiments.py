r"""Train several DCGAN presets on the same data, score each with one evaluator, compare them.

Examples:
  python scripts/run_experiments.py --data ../shared/datasets/fashion_mnist --evaluator fashion64 --name fashion64
  python scripts/run_experiments.py --data ../shared/datasets/fashion_mnist --evaluator fashion64 --name quick \
      --epochs 2 --steps-per-epoch 20
  python scripts/run_experiments.py --data digits --evaluator digits28 --image-size 28 --presets demo tutorial
  python scripts/run_experiments.py --data ../shared/datasets/fashion_mnist --evaluator fashion64 --name fashion64 \
      --conditional

Each preset (default: baseline more_epochs low_lr_d, the Fashion-MNIST 64x64
experiments; --conditional adds their class-conditional variant, fashion64_conditional, as a
fourth row with its class accuracy) trains as the DCGAN run <name>-<preset> through the same runner
as train_dcgan.py, so running the command again resumes the runs. Any
train_dcgan.py flag after these (--epochs, --steps-per-epoch, --image-size,
--no-export...) overrides every preset. The evaluator must be trained for the
same data and image size (scripts/train_evaluator.py).

Writes logs/experiments/<name>/: comparison.md and comparison.json (every
score per preset and for real held-out images, steps, training time),
samples.png (one grid per preset) and losses.png (loss curves per preset).
"""

import argparse
import sys

from tf_models.core import cli, runner
from tf_models.dcgan import task as dcgan_task
from tf_models.dcgan import experiments as gan_experiments


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(gan_experiments.DEFAULT_PRESETS),
                        help=f"DCGAN presets to train, one of {', '.join(dcgan_task.PRESETS)}")
    parser.add_argument("--conditional", action="store_true",
                        help=f"add the conditional variant ({gan_experiments.CONDITIONAL_PRESET}) beside the presets")
    parser.add_argument("--name", default="presets", help="comparison folder logs/experiments/NAME; runs NAME-PRESET")
    gan_experiments.add_scoring_arguments(parser, "preset")
    args, overrides = gan_experiments.parse_with_dcgan_overrides(parser, argv, "DCGAN flags for every preset")
    presets = args.presets + ([gan_experiments.CONDITIONAL_PRESET] if args.conditional else [])
    runner.print_written(gan_experiments.run_presets(presets, args.name, overrides, args.evaluator,
                                                     args.samples, args.evaluation_batch_size))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
