"""`evaluate.py --task pix2pix`: MSE, PSNR and SSIM of the exported model on held-out images.

Every held-out image is degraded with a fixed seed, enhanced by the run's
SavedModel (`enhance_float` signature: the exported graph, inference mode) in
blended tiles of the training crop size (`pix2pix_task.Enhancer`), and scored
on [0, 1] against its clean target: the prediction and, as the baseline every
number must be read against, the degraded input itself; over the whole image
and inside the breast mask (`pipelines.paired.breast_mask`).
"""

import csv
import io
import json
import pathlib

import numpy as np
import tensorflow as tf

from pipelines import augment, paired
from tf_models import metrics
from tf_models.core import figures, runs
from tf_models.pix2pix import task as pix2pix_task

SCORES = ("mse", "psnr", "ssim")


def add_arguments(parser):
    parser.add_argument("--run", required=True, help="a run name under saved_models/pix2pix/")
    parser.add_argument("--data", help="folder to evaluate (default: the run's own data and held-out split)")
    parser.add_argument("--degrade", help="degradation recipe (default: the run's own)")
    parser.add_argument("--version", type=int, help="SavedModel version (default: the newest)")
    parser.add_argument("--tile", type=int, help="enhance by blended tiles of this side (default: the training crop "
                                                 "size; 0: each image whole)")
    parser.add_argument("--figure-rows", type=int, default=4)
    parser.add_argument("--logs-root", default="logs")
    parser.add_argument("--models-root", default="saved_models")


def _run_config(paths):
    if not paths.config_file.is_file():
        raise ValueError(f"{paths.config_file}: no such run (train it with scripts/train_pix2pix.py).")
    return json.loads(paths.config_file.read_text())


def score_image(prediction, degraded, target, mask):
    row = {}
    for name, candidate in (("model", prediction), ("baseline", degraded)):
        for region, region_mask in (("whole", None), ("breast", mask)):
            for key, value in metrics.image_quality(candidate, target, 1.0, region_mask).items():
                row[f"{name}_{region}_{key}"] = value
    return row


def summarize(rows):
    summary = {}
    for key in rows[0]:
        if key == "file":
            continue
        summary[key] = float(np.mean([row[key] for row in rows]))
    for region in ("whole", "breast"):
        summary[f"gain_{region}_psnr_db"] = summary[f"model_{region}_psnr"] - summary[f"baseline_{region}_psnr"]
        summary[f"gain_{region}_ssim"] = summary[f"model_{region}_ssim"] - summary[f"baseline_{region}_ssim"]
    return summary


def table(summary):
    lines = ["| region | metric | degraded input | Pix2Pix | gain |", "|---|---|---|---|---|"]
    for region in ("whole", "breast"):
        for key in SCORES:
            baseline, model = summary[f"baseline_{region}_{key}"], summary[f"model_{region}_{key}"]
            lines.append(f"| {region} | {key} | {baseline:.4f} | {model:.4f} | {model - baseline:+.4f} |")
    return "\n".join(lines)


def _write_csv(path, rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return runs.atomic_write_text(path, buffer.getvalue())


def evaluate(args):
    paths = runs.RunPaths("pix2pix", args.run, pathlib.Path(args.logs_root), pathlib.Path(args.models_root))
    config = _run_config(paths)
    recipe = args.degrade or config["degrade"]
    files = paired.list_paired_files(args.data or config["data"], recipe)
    _, test_index = paired.split_indices(files.targets, config["test_fraction"], config["seed"])
    if args.data:
        test_index = np.arange(len(files.targets))
    serving_dir = pix2pix_task.latest_serving_dir(paths, args.version)
    enhancer = pix2pix_task.load_enhancer(serving_dir)
    tile = enhancer.tile_size if args.tile is None else args.tile
    rows, figure_rows = [], []
    for position, index in enumerate(test_index):
        target = next(iter(paired.load_grayscale_dataset([files.targets[index]])))
        if files.inputs is None:
            seed = tf.constant([config["seed"] + 1_000_003, position], tf.int32)
            degraded = augment.degrade(target, recipe, seed)
        else:
            degraded = next(iter(paired.load_grayscale_dataset([files.inputs[index]])))
        prediction = enhancer.enhance(degraded, tile)
        mask = paired.breast_mask(target).numpy()
        rows.append({"file": pathlib.Path(files.targets[index]).name,
                     **score_image(prediction, degraded.numpy(), target.numpy(), mask)})
        if len(figure_rows) < args.figure_rows:
            figure_rows.append([degraded.numpy(), target.numpy(), prediction,
                                np.abs(prediction - target.numpy()) * 4])
    summary = {"run": args.run, "saved_model_version": int(serving_dir.name), "recipe": recipe, "images": len(rows),
               "tile": tile or "whole image",
               "range": "[0, 1]", "psnr_cap_db": metrics.PSNR_CAP_DB, **summarize(rows)}
    output_dir = paths.log_dir / "evaluation"
    written = [
        _write_csv(output_dir / "per_image.csv", rows),
        runs.write_json(output_dir / "metrics.json", summary),
        runs.atomic_write_text(output_dir / "metrics.md", table(summary) + "\n"),
        figures.plot_image_rows(figure_rows, ["Input (degraded)", "Ground truth", "Predicted", "|error| x4"],
                                output_dir / "triplets.png", row_titles=[r["file"] for r in rows]),
    ]
    tiling = f"tiles of {tile}" if tile else "whole images"
    print(f"{len(rows)} held-out images, recipe {recipe}, SavedModel version {serving_dir.name}, {tiling}:\n"
          f"{table(summary)}")
    return written
