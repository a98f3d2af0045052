"""Time to quality: training minutes until the project's DCGAN recipe and the TF tutorial's reach an IS proxy.

Examples:
  python scripts/race.py --data ../shared/datasets/mnist --evaluator mnist28 --minutes 30
  python scripts/race.py --data digits --evaluator digits28 --minutes 2 --interval-minutes 0.5 --name race-smoke

Both recipes of scripts/compare_recipes.py (project: preset `mnist`;
tutorial: preset `tutorial_step`) train on the same data in chunks of
--interval-minutes of training time, are scored with the same evaluator
after each chunk, and stop at --minutes or when the IS proxy has reached 50 %
and 60 % of the real held-out images' (the ceiling). Running it again
continues the race where it stopped (logs/experiments/<name>/race_progress.json),
and with a larger --minutes extends it. Any train_dcgan.py flag after these
overrides both recipes.

Writes logs/experiments/<name>/race.json and race.md: minutes to each target
per recipe ("not reached in N min" otherwise), the best share reached, and
the speed-up (the tutorial's minutes over the project's).
"""

import argparse
import sys

from tf_models.core import runner
from tf_models.dcgan import experiments as gan_experiments
from tf_models.core import cli


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, required=True, help="most training minutes of each recipe")
    parser.add_argument("--interval-minutes", type=float, default=1.0, help="training minutes between scorings")
    parser.add_argument("--name", default="", help="folder logs/experiments/NAME (default: race-<minutes>min)")
    gan_experiments.add_scoring_arguments(parser, "scoring")
    args, overrides = gan_experiments.parse_with_dcgan_overrides(parser, argv, "DCGAN flags for both recipes")
    name = args.name or f"race-{args.minutes:g}min"
    runner.print_written(gan_experiments.race(args.minutes, name, overrides, args.evaluator, args.interval_minutes,
                                              args.samples, args.evaluation_batch_size))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
