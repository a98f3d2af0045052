"""Explore a data set before training: class counts per split and sample images.

Examples:
  python scripts/explore_data.py --task pneumonia --data ../shared/datasets/chest_xray
  python scripts/explore_data.py --task pneumonia --data ../shared/datasets/chest_xray --output-dir logs/explore

For pneumonia: a bar chart of NORMAL/PNEUMONIA counts in train (after the
patient-grouped validation split), the carved validation, the original val/
and test/, and a grid of sample images of each class.
"""

import argparse
import pathlib
import sys

import matplotlib
import numpy as np

from pipelines import classification, images
from tf_models.core import cli, figures, runner, runs

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def pneumonia_counts(root, validation_fraction, seed):
    splits, skipped = classification.pneumonia_file_splits(root, validation_fraction, seed)
    counts = {name: classification.class_counts(labels) for name, (_, labels) in splits.items()}
    if (pathlib.Path(root) / "val").is_dir():
        _, labels, more_skipped = classification.list_pneumonia_split(root, "val")
        counts = {"train": counts["train"], "validation": counts["validation"],
                  "val (original)": classification.class_counts(labels), "test": counts["test"]}
        skipped += more_skipped
    return counts, splits, skipped


def plot_counts(counts, path):
    figure, axis = plt.subplots(figsize=(7, 3.8))
    positions = np.arange(len(counts))
    for offset, name in zip((-0.2, 0.2), classification.PNEUMONIA_CLASSES):
        values = [split[name] for split in counts.values()]
        bars = axis.bar(positions + offset, values, width=0.4, label=name)
        axis.bar_label(bars, fontsize=8)
    axis.set_xticks(positions, list(counts))
    axis.set_ylabel("images")
    axis.set_title("class counts per split")
    axis.legend()
    return figures.save_figure(figure, path)


def sample_grid(splits, path, per_class=6, seed=0):
    paths, labels = splits["train"]
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(len(classification.PNEUMONIA_CLASSES)):
        chosen = rng.permutation(np.flatnonzero(labels == index))[:per_class]
        rows.append([images.read_image(paths[i], channels=1) for i in chosen])
    columns = min(len(row) for row in rows)
    return figures.plot_image_rows(
        [row[:columns] for row in rows], [""] * columns, path,
        row_titles=list(classification.PNEUMONIA_CLASSES), value_range=(0, 255),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=("pneumonia",), required=True)
    parser.add_argument("--data", required=True, help="Kermany folder <root>/{train,val,test}/{NORMAL,PNEUMONIA}")
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="logs/pneumonia/explore")
    args = parser.parse_args(argv)
    output = pathlib.Path(args.output_dir)
    counts, splits, skipped = pneumonia_counts(args.data, args.validation_fraction, args.seed)
    written = [
        plot_counts(counts, output / "class_counts.png"),
        sample_grid(splits, output / "samples.png", seed=args.seed),
        runs.write_json(output / "class_counts.json", {"counts": counts, "skipped_files": skipped}),
    ]
    for split, split_counts in counts.items():
        print(f"{split:<16}" + "  ".join(f"{name} {count}" for name, count in split_counts.items()))
    runner.print_written(written)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
