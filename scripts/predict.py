"""The former name of `scripts/classify.py` (same flags); it still works for this release.

Examples:
  python scripts/predict.py --run xray image.png     # the same as: python scripts/classify.py --run xray image.png
"""

import pathlib
import runpy
import sys

from tf_models.core import cli


def main(argv=None):
    print("scripts/predict.py is now scripts/classify.py; the old name goes away in the next release.",
          file=sys.stderr)
    classify = runpy.run_path(str(pathlib.Path(__file__).with_name("classify.py")))
    return classify["main"](argv)


if __name__ == "__main__":
    sys.exit(cli.run(main))
