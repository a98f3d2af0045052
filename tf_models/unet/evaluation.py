"""`scripts/evaluate.py --task unet`: Dice and IoU of a run on its held-out cars (or slices), or on another folder.

The validation pairs are the run's own split (same folder, validation fraction
and seed, so the same cars). With `--data DIR` naming another folder, every
pair of DIR is scored (an external test set). With `--split train`, every
fourth pair of the run's training split is scored instead: a place to choose
evaluation settings (upsampling, TTA) without looking at the held-out cars.
Each image is scored twice: at the training resolution against the mask
resized as in training (nearest neighbour), and after resizing the predicted
probability to the image's original size against the original mask. Scores
are per image, then averaged (empty vs empty = 1).

Writes to `logs/unet/<run>/evaluation/` (`evaluation-<DIR's name>/` for another
folder, `evaluation-train/` for `--split train`, with `-tta` appended under
`--tta` and `-<method>` under another `--upsample` than bilinear):
metrics.json, per_image.csv and worst_masks.png (the 10 lowest
original-resolution Dice scores: image | true mask | prediction). No other
file of the run changes.
"""

import csv
import io

import numpy as np
import tensorflow as tf

from pipelines import images, segmentation
from tf_models.core import figures, runs
from tf_models.unet import task as unet_task
from tf_models.unet import inference as unet_inference

COLUMNS = ("example_id", "height", "width", "dice", "iou", "dice_original", "iou_original")


def add_arguments(parser):
    unet_inference.add_run_arguments(parser)
    parser.add_argument("--data", default="",
                        help="another segmentation folder, scored whole (default: the run's --data, validation split)")
    parser.add_argument("--split", choices=("validation", "train"), default="validation",
                        help="the run's held-out pairs, or every fourth of its training pairs (for choosing "
                             "evaluation settings); ignored with --data")
    parser.add_argument("--worst", type=int, default=10, help="examples in worst_masks.png")


TRAINING_SUBSAMPLE = 4


def split_pairs(config, data, split="validation"):
    """The run's held-out pairs, or every `TRAINING_SUBSAMPLE`-th of its training pairs."""
    pairs = segmentation.find_pairs(data)
    segmentation.check_sizes(pairs)
    training, validation = segmentation.split_by_group(pairs, config.validation_fraction, config.seed)
    if split == "train":
        return training[::TRAINING_SUBSAMPLE]
    if not validation:
        raise ValueError(f"Run {config.run_name!r} was trained with --validation-fraction 0: no held-out examples.")
    return validation


def all_pairs(data):
    """Every (image, mask) pair of an external folder."""
    pairs = segmentation.find_pairs(data)
    segmentation.check_sizes(pairs)
    return pairs


def read_pair(pair, channels):
    image = images.read_image(pair.image_path, channels)
    mask = segmentation.binarize_mask(tf.constant(images.read_image(pair.mask_path))).numpy()
    return image, mask


def score_pairs(model, pairs, batch_size, tta=False, upsample="bilinear"):
    """Per-image rows (see COLUMNS) and the data the worst-case figure needs."""
    size, channels = tuple(model.input_shape[1:3]), model.input_shape[-1]
    rows, kept = [], []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        originals = [read_pair(pair, channels) for pair in chunk]
        predictions = unet_inference.predict_images(model, [image for image, _ in originals], batch_size, tta,
                                                    upsample)
        for pair, (image, mask), (small, large) in zip(chunk, originals, predictions):
            small_mask = images.resize(mask, size, method="nearest").numpy()
            rows.append(dict(
                zip(COLUMNS, (pair.example_id, *mask.shape[:2],
                              *unet_inference.overlap_scores(small_mask, small),
                              *unet_inference.overlap_scores(mask, large)))
            ))
            kept.append((image, mask, large))
    return rows, kept


def summarize(rows, size, model_path, data, tta=False, upsample="bilinear"):
    def mean(name):
        return float(np.mean([row[name] for row in rows]))

    return {
        "examples": len(rows),
        "model": str(model_path),
        "data": str(data),
        "tta": tta,
        "upsample": upsample,
        "training_resolution": {"image_size": f"{size[0]}x{size[1]}", "dice": mean("dice"), "iou": mean("iou")},
        "original_resolution": {"dice": mean("dice_original"), "iou": mean("iou_original")},
    }


def write_per_image_csv(path, rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return runs.atomic_write_text(path, buffer.getvalue())


def plot_worst(path, rows, kept, count):
    order = np.argsort([row["dice_original"] for row in rows])[:count]
    figure_rows, titles = [], []
    for index in order:
        image, mask, probability = kept[index]
        image = image.astype(np.float32) / 255.0
        figure_rows.append(unet_task.mask_rows([image], [mask.astype(np.float32)], [probability])[0])
        titles.append(f"{rows[index]['example_id']}\nDice {rows[index]['dice_original']:.4f}")
    return figures.plot_image_rows(figure_rows, ["image", "true mask", "prediction"], path, row_titles=titles)


def print_table(metrics):
    training = metrics["training_resolution"]
    original = metrics["original_resolution"]
    print(f"\n{metrics['examples']} images of {metrics['data']}, {metrics['model']}"
          f"{', flip TTA' if metrics['tta'] else ''}, {metrics['upsample']} upsampling")
    print(f"{'resolution':<22}{'Dice':>8}{'IoU':>8}")
    print(f"{'training ' + training['image_size']:<22}{training['dice']:>8.4f}{training['iou']:>8.4f}")
    print(f"{'original':<22}{original['dice']:>8.4f}{original['iou']:>8.4f}")


def evaluate(args):
    paths = unet_inference.run_paths(args)
    config = unet_inference.read_run_config(paths)
    model, model_path = unet_inference.load_run_model(paths, args.model)
    external = runs.is_external_data(args.data, config.data)
    data = args.data if external else config.data
    on_training_pairs = args.split == "train" and not external
    if external:
        split = "every pair"
    elif on_training_pairs:
        split = f"every {TRAINING_SUBSAMPLE}th pair of the train split"
    else:
        split = "validation split"
    pairs = all_pairs(data) if external else split_pairs(config, data, args.split)
    rows, kept = score_pairs(model, pairs, args.batch_size, args.tta, args.upsample)
    metrics = summarize(rows, tuple(model.input_shape[1:3]), model_path, f"{data} ({split})", args.tta, args.upsample)
    print_table(metrics)
    suffix = "-".join(["train"] * on_training_pairs + ["tta"] * args.tta + [args.upsample] * (args.upsample != "bilinear"))
    output_dir = runs.evaluation_dir(paths.log_dir, data if external else "", suffix)
    written = [
        runs.write_json(output_dir / "metrics.json", metrics),
        write_per_image_csv(output_dir / "per_image.csv", rows),
    ]
    if args.worst > 0:
        written.append(plot_worst(output_dir / "worst_masks.png", rows, kept, args.worst))
    return written
