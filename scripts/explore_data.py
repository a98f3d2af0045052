"""Explore a data set before training: class counts per split and sample images.

Examples:
  python scripts/explore_data.py --task pneumonia --data ../shared/datasets/chest_xray
  python scripts/explore_data.py --task pneumonia --data ../shared/datasets/chest_xray --output-dir logs/explore

For pneumonia: a bar chart of NORMAL/PNEUMONIA counts in train (after the
patient-grouped validation split), the carved validation, the original val/
and test/, a grid of sample films of each class of train/ and test/, and film statistics per
split and class (grey level, background, sharpness) that show how test/ is
shifted against train/.
"""

import argparse
import pathlib
import sys

import cv2
import matplotlib
import numpy as np

from pipelines import classification, images
from tf_models.core import cli, figures, runner, runs

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STATISTICS = ("mean grey level", "background (5th percentile)", "relative sharpness")


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
    """One row of sample films per class of train/ and of test/, to compare their look side by side."""
    rng = np.random.default_rng(seed)
    rows, titles = [], []
    for split in ("train", "test"):
        if split not in splits:
            continue
        paths, labels = splits[split]
        for index, name in enumerate(classification.PNEUMONIA_CLASSES):
            chosen = rng.permutation(np.flatnonzero(np.asarray(labels) == index))[:per_class]
            rows.append([images.read_image(paths[i], channels=1) for i in chosen])
            titles.append(f"{split} {name}")
    columns = min(len(row) for row in rows)
    return figures.plot_image_rows(
        [row[:columns] for row in rows], [""] * columns, path, row_titles=titles, value_range=(0, 255),
    )


def relative_sharpness(image):
    """Standard deviation of the Laplacian of a 2-D image over its own: fine detail per unit of contrast.

    A blur lowers it; exposure and contrast (any affine change of the grey
    levels) do not change it.
    """
    image = np.asarray(image, np.float32)
    return float(cv2.Laplacian(image, cv2.CV_32F).std() / max(float(image.std()), 1e-6))


def film_statistics(path, image_size=128):
    """(mean grey level, 5th percentile, relative sharpness of the central half) of one film at `image_size`."""
    film = images.read_image(path, channels=1)[..., 0].astype(np.float32)
    film = cv2.resize(film, (image_size, image_size), interpolation=cv2.INTER_AREA)
    quarter = image_size // 4
    centre = film[quarter:image_size - quarter, quarter:image_size - quarter]
    return float(film.mean()), float(np.percentile(film, 5)), relative_sharpness(centre)


def split_statistics(splits, image_size=128, per_class=300, seed=0):
    """{split: {class: {statistic: (mean, standard deviation), "films": n}}} over a seeded sample of each class."""
    rng = np.random.default_rng(seed)
    summary, values = {}, {}
    for split, (paths, labels) in splits.items():
        for index, name in enumerate(classification.PNEUMONIA_CLASSES):
            chosen = rng.permutation(np.flatnonzero(np.asarray(labels) == index))[:per_class]
            rows = np.asarray([film_statistics(paths[i], image_size) for i in chosen]).reshape(-1, 3)
            values[split, name] = rows
            summary.setdefault(split, {})[name] = {
                "films": len(rows),
                **{statistic: [float(rows[:, column].mean()), float(rows[:, column].std())]
                   for column, statistic in enumerate(STATISTICS)},
            }
    return summary, values


def plot_statistics(values, path):
    figure, axes = plt.subplots(1, len(STATISTICS), figsize=(4.2 * len(STATISTICS), 4.4))
    labels = [f"{split} {name}" for split, name in values]
    for column, (axis, statistic) in enumerate(zip(axes, STATISTICS)):
        axis.boxplot([rows[:, column] for rows in values.values()], showfliers=False)
        axis.set_xticks(np.arange(1, len(labels) + 1), labels, fontsize=7, rotation=35, ha="right")
        axis.set_title(statistic, fontsize=10)
    figure.suptitle("films per split and class (a shifted test/ shows as a box that moves)")
    return figures.save_figure(figure, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=("pneumonia",), required=True)
    parser.add_argument("--data", required=True, help="Kermany folder <root>/{train,val,test}/{NORMAL,PNEUMONIA}")
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--statistics-size", type=int, default=128,
                        help="side at which film statistics are measured (the training size)")
    parser.add_argument("--statistics-films", type=int, default=300, help="films sampled per split and class")
    parser.add_argument("--output-dir", default="logs/pneumonia/explore")
    args = parser.parse_args(argv)
    output = pathlib.Path(args.output_dir)
    counts, splits, skipped = pneumonia_counts(args.data, args.validation_fraction, args.seed)
    summary, values = split_statistics(splits, args.statistics_size, args.statistics_films, args.seed)
    written = [
        plot_counts(counts, output / "class_counts.png"),
        sample_grid(splits, output / "samples.png", seed=args.seed),
        plot_statistics(values, output / "film_statistics.png"),
        runs.write_json(output / "class_counts.json", {"counts": counts, "skipped_files": skipped}),
        runs.write_json(output / "film_statistics.json",
                        {"image_size": args.statistics_size, "statistics": summary}),
    ]
    for split, split_counts in counts.items():
        print(f"{split:<16}" + "  ".join(f"{name} {count}" for name, count in split_counts.items()))
    print(f"\n{'split, class':<22}" + "".join(f"{statistic:>30}" for statistic in STATISTICS))
    for split, classes in summary.items():
        for name, row in classes.items():
            print(f"{split + ' ' + name:<22}" + "".join(
                f"{row[statistic][0]:>22.3f} ± {row[statistic][1]:<5.3f}" for statistic in STATISTICS))
    runner.print_written(written)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
