"""The project's MNIST recipe against the TF tutorial's, trained for the same wall-clock budget.

Examples:
  python scripts/compare_recipes.py --data ../shared/datasets/mnist --evaluator mnist28 --minutes 10
  python scripts/compare_recipes.py --data digits --evaluator digits28 --minutes 1 --name digits-1min

(a) project: DCGAN preset `mnist` (the DCGAN networks with a 32-filter
discriminator, Adam(4e-4, 0.5), batch 32). (b) tutorial: preset `tutorial_step`, the tutorial's networks
trained by its own step (tf_models.dcgan.tutorial.make_train_step, Adam(1e-4),
batch 256). Both read the same pipeline (pipelines/gan.py) and run through the
same runner with --time-budget-minutes, as runs <name>-project and
<name>-tutorial; running the command again trains each only for what is left
of its budget. Then both are scored with the same evaluator (trained for the
same data at 28x28: scripts/train_evaluator.py). Any train_dcgan.py flag after
these overrides both recipes (e.g. --no-export).

Writes logs/experiments/<name>/: comparison.md and comparison.json (IS proxy
and its % of the real ceiling, FCD, KID, realism, classes produced, steps,
images/s), samples.png and losses.png.
"""

import argparse
import sys

from tf_models.core import cli, runner
from tf_models.dcgan import experiments as gan_experiments


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, required=True, help="training time of each recipe")
    parser.add_argument("--name", default="", help="comparison folder logs/experiments/NAME (default: "
                                                    "recipes-<minutes>min); runs NAME-project, NAME-tutorial")
    gan_experiments.add_scoring_arguments(parser, "recipe")
    args, overrides = gan_experiments.parse_with_dcgan_overrides(parser, argv, "DCGAN flags for both recipes")
    name = args.name or f"recipes-{args.minutes:g}min"
    runner.print_written(gan_experiments.compare_recipes(args.minutes, name, overrides, args.evaluator,
                                                         args.samples, args.evaluation_batch_size))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
