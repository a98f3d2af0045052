"""`evaluate.py --task pix2pix`: the exported model and its classical peers on the same degraded films.

Every held-out film is degraded once, with a fixed seed per film, and that one
degraded image is given to the run's SavedModel (`enhance_float` signature:
the exported graph, inference mode, in blended tiles of the training crop
size, `pix2pix_inference.Enhancer`) and to each method of `--baselines`
(`tf_models/pix2pix/baselines.py`). Every output is scored on [0, 1] against
the clean film, over the whole image and inside the breast mask
(`pipelines.paired.breast_mask`), next to the degraded input itself, with the
seconds each method took per film.

Outputs, in `logs/pix2pix/<run>/evaluation/` (with `--data DIR`: every film of
DIR, in `evaluation-<DIR's name>/`; `--degrade`, `--self-ensemble` and `--tile`
add to the name likewise, so the run's own results stay as they are,
`output_dir`): per_image.csv, metrics.json, metrics.md, triplets.png and, with
baselines, comparison.png (the same zoomed breast crop of a few films for
each method, above its |error| map). `--noise-levels 0.02,0.05,0.08` scores
the recipes `noise:S` in turn, for a model trained on a range of noise, each
in `noise-S/` inside that folder, with a summary `noise_levels.md` beside.
"""

import csv
import io
import json
import pathlib
import re
import time

import numpy as np
import tensorflow as tf

from pipelines import augment, paired
from tf_models import metrics
from tf_models.core import figures, runs
from tf_models.pix2pix import baselines as baselines_lib
from tf_models.pix2pix import inference as pix2pix_inference

SCORES = ("mse", "psnr", "ssim")
REGIONS = ("whole", "breast")
CROP_SIZE = 128
LABELS = {"input": "degraded input", "model": "Pix2Pix"}


def add_arguments(parser):
    parser.add_argument("--run", required=True, help="a run name under saved_models/pix2pix/")
    parser.add_argument("--data", help="folder to evaluate, every film of it (default: the run's own data and "
                                       "held-out split); results go to evaluation-<folder name>/")
    parser.add_argument("--degrade", help="degradation recipe (default: the run's own)")
    parser.add_argument("--baselines", default="", help="comma-separated classical methods run on the same degraded "
                                                        f"inputs: {', '.join(baselines_lib.BASELINES)}")
    parser.add_argument("--noise-levels", help="comma-separated sigmas (e.g. 0.02,0.05,0.08): score the recipe "
                                               "noise:S at each, in place of the run's own")
    parser.add_argument("--self-ensemble", action="store_true", help="average the model over the 8 flips and "
                                                                     "rotations of each film (8 times the time)")
    parser.add_argument("--version", type=int, help="SavedModel version (default: the newest)")
    parser.add_argument("--tile", type=int, help="enhance by blended tiles of this side (default: the training crop "
                                                 "size; 0: each image whole)")
    parser.add_argument("--figure-rows", type=int, default=4)
    parser.add_argument("--logs-root", default="logs")
    parser.add_argument("--models-root", default="saved_models")


def run_config(paths):
    if not paths.config_file.is_file():
        raise ValueError(f"{paths.config_file}: no such run (train it with scripts/train_pix2pix.py).")
    return json.loads(paths.config_file.read_text())


def output_dir(paths, data=None, degrade=None, self_ensemble=False, tile=None):
    """`evaluation/` for the run's own held-out films as trained and served; each option that changes what
    is scored adds to the name, so no evaluation replaces another: `-<folder name>` (`--data`), `-<recipe>`
    (`--degrade`), `-self-ensemble` and `-tile<N>` (`--tile`), e.g. `evaluation-noise-0.08-self-ensemble/`."""
    parts = ["evaluation"]
    if data:
        parts.append(pathlib.Path(data).resolve().name)
    if degrade:
        parts.append(re.sub(r"[^A-Za-z0-9.+]+", "-", degrade))
    if self_ensemble:
        parts.append("self-ensemble")
    if tile is not None:
        parts.append(f"tile{tile}")
    return paths.log_dir / "-".join(parts)


def degraded_films(files, indices, recipe, seed):
    """(name, clean, degraded, breast mask) of each film: one degraded image per film, from a fixed seed."""
    for position, index in enumerate(indices):
        target = next(iter(paired.load_grayscale_dataset([files.targets[index]])))
        if files.inputs is None:
            degraded = augment.degrade(target, recipe, tf.constant([seed + 1_000_003, position], tf.int32))
        else:
            degraded = next(iter(paired.load_grayscale_dataset([files.inputs[index]])))
        yield (pathlib.Path(files.targets[index]).name, target.numpy(), degraded.numpy(),
               paired.breast_mask(target).numpy())


def score_methods(films, methods):
    """Runs every method on each film's one degraded image; rows of scores and seconds, and the outputs."""
    rows, outputs = [], []
    for name, target, degraded, mask in films:
        row, produced = {"file": name}, {"input": degraded}
        for method, enhance in methods.items():
            start = time.perf_counter()
            produced[method] = np.asarray(enhance(degraded), np.float32)
            row[f"{method}_seconds"] = time.perf_counter() - start
        for method, candidate in produced.items():
            for region, region_mask in (("whole", None), ("breast", mask)):
                for key, value in metrics.image_quality(candidate, target, 1.0, region_mask).items():
                    row[f"{method}_{region}_{key}"] = value
        rows.append(row)
        outputs.append((name, target, mask, produced))
    return rows, outputs


def summarize(rows, method_names):
    summary = {key: float(np.mean([row[key] for row in rows])) for key in rows[0] if key != "file"}
    for method in method_names:
        summary[f"{method}_seconds_per_film"] = summary.pop(f"{method}_seconds")
    for region in REGIONS if "model" in method_names else ():
        summary[f"gain_{region}_psnr_db"] = summary[f"model_{region}_psnr"] - summary[f"input_{region}_psnr"]
        summary[f"gain_{region}_ssim"] = summary[f"model_{region}_ssim"] - summary[f"input_{region}_ssim"]
    return summary


def table(summary, method_names):
    lines = ["| method | PSNR whole | PSNR breast | SSIM whole | SSIM breast | seconds per film |",
             "|---|---|---|---|---|---|"]
    for method in ("input", *method_names):
        seconds = summary.get(f"{method}_seconds_per_film")
        lines.append(f"| {LABELS.get(method, method)} | {summary[f'{method}_whole_psnr']:.2f} | "
                     f"{summary[f'{method}_breast_psnr']:.2f} | {summary[f'{method}_whole_ssim']:.4f} | "
                     f"{summary[f'{method}_breast_ssim']:.4f} | {'' if seconds is None else f'{seconds:.2f}'} |")
    return "\n".join(lines)


def breast_crop(mask, size=CROP_SIZE):
    """(top, left, side) of the square crop centred on the breast mask's centroid, inside the image."""
    height, width = mask.shape[:2]
    side = min(size, height, width)
    rows, columns = np.nonzero(mask.reshape(height, width) > 0)
    centre = (rows.mean(), columns.mean()) if len(rows) else (height / 2, width / 2)
    top = int(np.clip(round(centre[0] - side / 2), 0, height - side))
    left = int(np.clip(round(centre[1] - side / 2), 0, width - side))
    return top, left, side


def plot_comparison(outputs, method_names, path, count):
    """For `count` films, the same zoomed breast crop of each method above its |error| x 4."""
    columns = ["input", *method_names]
    rows, row_titles = [], []
    for name, target, mask, produced in outputs[:count]:
        top, left, side = breast_crop(mask)
        window = (slice(top, top + side), slice(left, left + side))
        rows.append([target[window]] + [produced[method][window] for method in columns])
        rows.append([mask[window]] + [np.clip(np.abs(produced[method] - target)[window] * 4, 0, 1)
                                       for method in columns])
        row_titles += [f"{name} crop at ({top}, {left})", f"{name} |error| x4 (left: mask)"]
    titles = ["Ground truth"] + [LABELS.get(method, method) for method in columns]
    return figures.plot_image_rows(rows, titles, path, row_titles=row_titles)


def _write_csv(path, rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return runs.atomic_write_text(path, buffer.getvalue())


def evaluate_recipe(files, indices, recipe, config, methods, directory, figure_rows):
    """Scores every method on the films of `indices` degraded by `recipe`; writes `directory`."""
    rows, outputs = score_methods(degraded_films(files, indices, recipe, config["seed"]), methods)
    names = list(methods)
    summary = {"recipe": recipe, "images": len(rows), "range": "[0, 1]", "psnr_cap_db": metrics.PSNR_CAP_DB,
               "methods": names, **summarize(rows, names)}
    written = [_write_csv(directory / "per_image.csv", rows),
               runs.atomic_write_text(directory / "metrics.md", table(summary, names) + "\n")]
    if "model" in methods:
        written.append(figures.plot_image_rows(
            [[produced["input"], target, produced["model"], np.clip(np.abs(produced["model"] - target) * 4, 0, 1)]
             for _, target, _, produced in outputs[:figure_rows]],
            ["Input (degraded)", "Ground truth", "Predicted", "|error| x4"], directory / "triplets.png",
            row_titles=[name for name, *_ in outputs[:figure_rows]]))
    if names != ["model"]:
        written.append(plot_comparison(outputs, names, directory / "comparison.png", figure_rows))
    return summary, written


def _noise_levels(text):
    try:
        levels = [float(level) for level in text.split(",") if level.strip()]
    except ValueError:
        levels = []
    if not levels or min(levels) <= 0:
        raise ValueError(f"--noise-levels {text!r}: expected positive sigmas separated by commas, e.g. 0.02,0.05,0.08.")
    return levels


def evaluate(args):
    paths = runs.RunPaths("pix2pix", args.run, pathlib.Path(args.logs_root), pathlib.Path(args.models_root))
    config = run_config(paths)
    recipe = args.degrade or config["degrade"]
    levels = _noise_levels(args.noise_levels) if args.noise_levels else None
    recipes = [f"noise:{level:g}" for level in levels] if levels else [recipe]
    files = paired.list_paired_files(args.data or config["data"], recipes[0])
    if levels and files.inputs is not None:
        raise ValueError(f"--noise-levels: {args.data or config['data']} holds real input/target pairs; "
                         "noise levels apply to a folder of clean images.")
    peers = [baselines_lib.parse_baselines(args.baselines, each) for each in recipes]
    _, test_index = paired.split_indices(files.targets, config["test_fraction"], config["seed"])
    if args.data:
        test_index = np.arange(len(files.targets))
    serving_dir = pix2pix_inference.latest_serving_dir(paths, args.version)
    enhancer = pix2pix_inference.load_enhancer(serving_dir)
    tile = enhancer.tile_size if args.tile is None else args.tile

    def model(image):
        return enhancer.enhance(image, tile, self_ensemble=args.self_ensemble)

    directory = output_dir(paths, args.data, args.degrade, args.self_ensemble, args.tile)
    details = {"run": args.run, "saved_model_version": int(serving_dir.name), "tile": tile or "whole image",
               "self_ensemble": bool(args.self_ensemble), "data": str(args.data or config["data"])}
    written, summaries = [], []
    for each, methods in zip(recipes, peers):
        folder = directory / f"noise-{each.partition(':')[2]}" if levels else directory
        summary, files_written = evaluate_recipe(files, test_index, each, config, {"model": model, **methods},
                                                 folder, args.figure_rows)
        summary = {**details, **summary}
        written += [runs.write_json(folder / "metrics.json", summary), *files_written]
        summaries.append(summary)
        print(f"{summary['images']} images, recipe {each}, SavedModel version {serving_dir.name}, "
              f"{'tiles of ' + str(tile) if tile else 'whole images'}"
              f"{', self-ensemble x8' if args.self_ensemble else ''}:\n{table(summary, summary['methods'])}")
    if levels:
        written += write_level_summary(directory, summaries)
    return written


def write_level_summary(directory, summaries):
    """One table of breast PSNR / SSIM per method and noise level."""
    names = ["input", *summaries[0]["methods"]]
    lines = ["| recipe | " + " | ".join(LABELS.get(name, name) for name in names) + " |",
             "|---|" + "---|" * len(names)]
    for summary in summaries:
        cells = [f"{summary[f'{name}_breast_psnr']:.2f} dB / {summary[f'{name}_breast_ssim']:.3f}" for name in names]
        lines.append(f"| {summary['recipe']} | " + " | ".join(cells) + " |")
    text = "Breast PSNR / SSIM\n\n" + "\n".join(lines) + "\n"
    print(text)
    return [runs.atomic_write_text(directory / "noise_levels.md", text),
            runs.write_json(directory / "noise_levels.json", {"levels": summaries})]


def compare_baselines(data, recipe, names, directory, seed=0, test_fraction=0.15, every_file=False, figure_rows=4):
    """The classical methods alone (no trained run) on the held-out split a run with `seed` and
    `test_fraction` would score (`every_file`: every file of `data`), degraded with the same seeds."""
    files = paired.list_paired_files(data, recipe)
    methods = baselines_lib.parse_baselines(names, recipe)
    if not methods:
        raise ValueError(f"--baselines: name at least one of {', '.join(baselines_lib.BASELINES)}.")
    _, indices = paired.split_indices(files.targets, test_fraction, seed)
    indices = np.arange(len(files.targets)) if every_file else indices
    summary, written = evaluate_recipe(files, indices, recipe, {"seed": seed}, methods, pathlib.Path(directory),
                                       figure_rows)
    summary = {"data": str(data), "seed": seed, "test_fraction": test_fraction, **summary}
    print(f"{summary['images']} images, recipe {recipe}:\n{table(summary, summary['methods'])}")
    return [runs.write_json(pathlib.Path(directory) / "metrics.json", summary), *written]
