"""DCGAN runs trained side by side through the shared runner, scored with one evaluator, compared.

Two uses, each a thin script:

- `scripts/run_experiments.py`: a list of presets (the Fashion-MNIST 64x64
  experiments by default), each trained as its own run;
- `scripts/compare_recipes.py`: the project's MNIST recipe against the TF
  tutorial's, each trained for the same wall-clock budget.

Every run is an ordinary DCGAN run (`logs/dcgan/<name>-<label>/`), so running
the same command again resumes the runs instead of starting over; a budgeted
run trains only what is left of its budget (`training_time.json`). The
comparison goes to `logs/experiments/<name>/`: `comparison.md` and
`comparison.json` (every score per run and for real held-out images, steps,
training time, images/s), `samples.png` (one grid per run from the same
noise) and `losses.png` (generator and discriminator losses per epoch).
"""

import dataclasses
import json
import math
import pathlib


from tf_models.core import callbacks as callbacks_lib
from tf_models.core import images as image_helpers
from tf_models.core import config as config_lib
from tf_models.core import figures, provenance, runner, runs
from tf_models.dcgan import task as dcgan_task
from tf_models.dcgan import evaluation as gan_evaluation
from tf_models.dcgan import inference as dcgan_inference
from tf_models.dcgan import model as dcgan

DEFAULT_PRESETS = ("baseline", "more_epochs", "low_lr_d")
# The conditional variant of the Fashion-MNIST comparison (`run_experiments.py --conditional`).
CONDITIONAL_PRESET = "fashion64_conditional"
# label -> DCGAN preset of the equal-budget comparison.
RECIPES = {"project": "mnist", "tutorial": "tutorial_step"}
# Budgeted runs stop at their budget, not at an epoch count.
BUDGET_EPOCHS = 100_000
LOSS_METRICS = ("generator_loss", "discriminator_loss")
SAMPLE_COUNT = 64


@dataclasses.dataclass
class TrainedRun:
    label: str
    paths: runs.RunPaths
    generator: object
    batch_size: int


def add_scoring_arguments(parser, what):
    """The scoring flags both experiment scripts share; `what` names a scored run ("preset", "recipe")."""
    parser.add_argument("--evaluator", required=True, help="an evaluator run under saved_models/evaluator/")
    parser.add_argument("--samples", type=int, default=5000,
                        help=f"generated images per {what} (capped at half the real test set)")
    parser.add_argument("--evaluation-batch-size", type=int, default=500)


def parse_with_dcgan_overrides(parser, argv, description):
    """(the script's own args, {DCGAN field: value} of the train_dcgan.py flags after them)."""
    args, dcgan_argv = parser.parse_known_args(argv)
    overrides = vars(config_lib.build_parser(dcgan_task.DCGANConfig, description).parse_args(dcgan_argv))
    return args, overrides


def _clock(paths):
    return callbacks_lib.TrainingClock.read(paths.log_dir / callbacks_lib.TrainingClock.FILE_NAME)


def check_overrides(overrides):
    """Refuses flags that each run sets itself."""
    for name in ("run_name", "preset", "evaluator"):
        if name in overrides:
            raise ValueError(f"--{name.replace('_', '-')} is set per run here; leave it out.")
    if not overrides.get("data"):
        raise ValueError("--data is required (the real images every run trains on and is scored against).")


def train_run(label, preset, run_name, overrides, budget_seconds=0.0, verbose=1):
    """Trains (or resumes) the DCGAN run `run_name` from `preset` and `overrides`.

    With `budget_seconds`, the run trains until its recorded training time
    reaches the budget, over as many invocations as it takes.
    """
    fields = dict(overrides, preset=preset, run_name=run_name)
    if budget_seconds:
        fields.setdefault("epochs", BUDGET_EPOCHS)
    config = config_lib.make_config(dcgan_task.DCGANConfig, dcgan_task.PRESETS, **fields)
    if budget_seconds:
        config = dataclasses.replace(config, time_budget_minutes=budget_seconds / 60.0)
    paths = runs.RunPaths("dcgan", run_name, pathlib.Path(config.logs_root), pathlib.Path(config.models_root))
    clock_file = paths.log_dir / callbacks_lib.TrainingClock.FILE_NAME
    if not config.fresh and runner.remaining_budget_seconds(config, clock_file) < 0:
        print(f"{run_name}: its {budget_seconds / 60:g} minute budget is spent; scoring it as it is.")
        generator = gan_evaluation.load_run_generator(paths)
    else:
        generator = runner.train(dcgan_task.DCGANTask(), config, verbose=verbose).model.sampling_generator
    return TrainedRun(label, paths, generator, config.batch_size)


def score_runs(trained, evaluator, data, models_root, samples, batch_size, seed=0, tfds_data_dir=None):
    """Every run's scores and the real ceiling, all with one evaluator and the same real images."""
    image_size, channels = trained[0].generator.output_shape[1], trained[0].generator.output_shape[-1]
    scorer, card = gan_evaluation.load_scorer(models_root, evaluator, image_size, channels, data)
    real = gan_evaluation.real_outputs(scorer, data, image_size, channels, batch_size, tfds_data_dir)
    num_classes = len(card["class_names"])
    results = {run.label: gan_evaluation.compare(run.generator, scorer, real, num_classes, samples, batch_size, seed)
               for run in trained}
    first = results[trained[0].label]
    comparison = {"evaluator": evaluator, "evaluator_test_accuracy": card["test_accuracy"], "data": data,
                  "num_classes": num_classes, "samples": first["samples"], "real": first["real"], "runs": []}
    for run in trained:
        clock = _clock(run.paths)
        comparison["runs"].append({
            "label": run.label, "run": run.paths.run_name, "scores": results[run.label]["generated"],
            "training_seconds": clock["seconds"], "steps": clock["steps"], "batch_size": run.batch_size,
            "images_per_second": clock["steps"] * run.batch_size / clock["seconds"] if clock["seconds"] else 0.0,
        })
        if "class_accuracy" in results[run.label]:
            comparison["runs"][-1]["class_accuracy"] = results[run.label]["class_accuracy"]
    return comparison


def _score_cells(scores, real, num_classes, class_accuracy=None):
    classes = int(round(scores["distinct_fraction"] * num_classes))
    accuracy = f"{class_accuracy['overall']:.3f}" if class_accuracy else "-"
    return [f"{scores['realism']:.3f}", f"{classes}/{num_classes}", f"{abs(scores['class_entropy']):.3f}",
            f"{scores['inception_score']:.3f}", f"{100 * scores['inception_score'] / real['inception_score']:.0f} %",
            f"{scores['fcd']:.3f}", f"{scores['kid']:.4f}", accuracy]


def markdown_table(comparison):
    """One row per run and one for the real held-out images (the ceiling)."""
    header = ["run", "realism", "classes produced", "class entropy", "IS proxy", "IS / real", "FCD", "KID",
              "class accuracy", "steps", "training time", "images/s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    real, num_classes = comparison["real"], comparison["num_classes"]
    for row in comparison["runs"]:
        cells = [f"{row['label']} (`{row['run']}`)", *_score_cells(row["scores"], real, num_classes,
                                                                   row.get("class_accuracy")), str(row["steps"]),
                 f"{row['training_seconds'] / 60:.1f} min", f"{row['images_per_second']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    ceiling = {"overall": comparison["evaluator_test_accuracy"]}
    lines.append("| " + " | ".join(["real (ceiling)", *_score_cells(real, real, num_classes, ceiling), "", "", ""])
                 + " |")
    note = (f"\n{comparison['samples']} generated images per run and as many real held-out images, scored by the "
            f"evaluator `{comparison['evaluator']}` (test accuracy {comparison['evaluator_test_accuracy']:.4f}); "
            "FCD and KID against the other half of the real held-out images. Lower FCD/KID is better. "
            "Class accuracy (conditional runs): the share of images classified as the class asked for; its "
            "ceiling is the evaluator's test accuracy.\n")
    return "\n".join(lines) + "\n" + note


def samples_figure(trained, path, count=SAMPLE_COUNT, seed=0):
    """One grid per run, side by side, from the same latent vectors."""
    grids = []
    for run in trained:
        latent = dcgan_inference.latent_vectors(dcgan.latent_dim_of(run.generator), count, seed)
        grids.append(image_helpers.tile_images(dcgan_inference.generate_images(run.generator, latent)))
    return figures.plot_image_rows([grids], [run.label for run in trained], path, value_range=(0, 255),
                                   panel_inches=5.0)


def losses_figure(trained, path):
    histories = {run.label: figures.read_history(run.paths.log_dir / "history.csv") for run in trained}
    return figures.plot_runs(histories, LOSS_METRICS, path, title="losses per epoch")


def write_comparison(folder, comparison, trained):
    """comparison.md, comparison.json, samples.png and losses.png in `folder`; returns their paths."""
    folder = pathlib.Path(folder)
    return [
        runs.atomic_write_text(folder / "comparison.md", markdown_table(comparison)),
        runs.write_json(folder / "comparison.json", comparison),
        samples_figure(trained, folder / "samples.png"),
        losses_figure(trained, folder / "losses.png"),
        provenance.record(folder),
    ]


def comparison_folder(name, overrides):
    runs.validate_run_name(name)
    return pathlib.Path(overrides.get("logs_root", "logs")) / "experiments" / name


def _score_and_write(trained, name, overrides, evaluator, samples, batch_size):
    comparison = score_runs(trained, evaluator, overrides["data"], overrides.get("models_root", "saved_models"),
                            samples, batch_size, tfds_data_dir=overrides.get("tfds_data_dir") or None)
    written = write_comparison(comparison_folder(name, overrides), comparison, trained)
    print(markdown_table(comparison))
    return written


def run_presets(presets, name, overrides, evaluator, samples=5000, batch_size=500, verbose=1):
    """Trains each preset as run `<name>-<preset>`, scores all, writes the comparison; returns the paths."""
    check_overrides(overrides)
    unknown = [preset for preset in presets if preset not in dcgan_task.PRESETS]
    if unknown:
        raise ValueError(f"Unknown preset(s) {', '.join(unknown)}; choose from {', '.join(dcgan_task.PRESETS)}.")
    comparison_folder(name, overrides)
    trained = [train_run(preset, preset, f"{name}-{preset}", overrides, verbose=verbose) for preset in presets]
    return _score_and_write(trained, name, overrides, evaluator, samples, batch_size)


def compare_recipes(minutes, name, overrides, evaluator, samples=5000, batch_size=500, verbose=1):
    """Trains the project's and the tutorial's recipe for `minutes` of training each, scores both."""
    check_overrides(overrides)
    if minutes <= 0:
        raise ValueError(f"--minutes must be positive, got {minutes}.")
    comparison_folder(name, overrides)
    trained = [train_run(label, preset, f"{name}-{label}", overrides, minutes * 60.0, verbose)
               for label, preset in RECIPES.items()]
    return _score_and_write(trained, name, overrides, evaluator, samples, batch_size)


# Shares of the real images' IS proxy (the ceiling) whose first crossing `race` times.
RACE_TARGETS = (0.5, 0.6)


PROGRESS_FILE = "race_progress.json"


def _race_recipe(label, preset, name, overrides, minutes, interval_minutes, scoring, targets, progress, save):
    """Trains one recipe in `interval_minutes` chunks up to `minutes`, scoring after each; returns its row.

    `progress` holds what an earlier invocation of the race measured for this
    recipe (its last chunk's budget, its curve, the targets reached); `save`
    is called after every scoring, so a killed race loses at most one chunk.
    """
    scorer, real, num_classes, samples, batch_size = scoring
    state = progress.setdefault(label, {"budget_minutes": 0.0, "curve": [], "reached": {}})
    curve, reached = state["curve"], state["reached"]
    while state["budget_minutes"] < minutes and len(reached) < len(targets):
        state["budget_minutes"] = min(state["budget_minutes"] + interval_minutes, minutes)
        if curve and curve[-1]["training_minutes"] >= state["budget_minutes"]:
            continue  # the last chunk's final step ran past this budget too: nothing left to train in it
        run = train_run(label, preset, f"{name}-{label}", overrides, state["budget_minutes"] * 60.0, 0)
        result = gan_evaluation.compare(run.generator, scorer, real, num_classes, samples, batch_size)
        clock = _clock(run.paths)
        share = result["generated"]["inception_score"] / result["real"]["inception_score"]
        curve.append({"training_minutes": clock["seconds"] / 60.0, "steps": clock["steps"], "is_share": share})
        for target in targets:
            if share >= target and str(target) not in reached:
                reached[str(target)] = clock["seconds"] / 60.0
        state["batch_size"] = run.batch_size
        save()
    return {"label": label, "run": f"{name}-{label}", "preset": preset, "batch_size": state.get("batch_size"),
            "minutes_to": {str(target): reached.get(str(target)) for target in targets}, "curve": curve,
            "best_is_share": max(point["is_share"] for point in curve)}


def _load_progress(folder, settings):
    """The per-recipe progress of an earlier invocation of this race ({} for a new one)."""
    path = folder / PROGRESS_FILE
    if not path.is_file():
        return {}
    stored = json.loads(path.read_text())
    if stored["settings"] != settings:
        raise ValueError(f"{path}: this race was run with {stored['settings']}, not {settings}; its curves would "
                         f"not compare. Pass a new --name, or the same scoring flags.")
    return stored["recipes"]


def race(minutes, name, overrides, evaluator, interval_minutes=1.0, samples=2000, batch_size=500,
         targets=RACE_TARGETS):
    """Training minutes until each recipe's IS proxy first reaches each share of the real ceiling.

    Each recipe of `RECIPES` trains on the same data in `interval_minutes`
    chunks of its own training clock (scoring is not counted), is scored with
    one evaluator after each chunk, and stops at `minutes` or once every
    target is reached; a target not reached is reported as such. The times
    are the clock at the first scoring at or above the target, so they are
    upper bounds with the interval as resolution. Progress is kept in
    `race_progress.json`: running the race again continues it, and a larger
    `minutes` extends it. Writes `race.json` and `race.md` to
    `logs/experiments/<name>/`; returns their paths.
    """
    check_overrides(overrides)
    if minutes <= 0 or interval_minutes <= 0:
        raise ValueError(f"--minutes and --interval-minutes must be positive, got {minutes} and {interval_minutes}.")
    folder = comparison_folder(name, overrides)
    settings = {"evaluator": evaluator, "interval_minutes": interval_minutes, "samples": samples,
                "targets": list(targets), "overrides": {key: str(value) for key, value in sorted(overrides.items())}}
    progress = _load_progress(folder, settings)

    def save():
        runs.write_json(folder / PROGRESS_FILE, {"settings": settings, "recipes": progress})

    config = dcgan_task.DCGANTask().resolve(config_lib.make_config(dcgan_task.DCGANConfig, dcgan_task.PRESETS,
                                                                   **dict(overrides, preset=RECIPES["project"])))
    scorer, card = gan_evaluation.load_scorer(overrides.get("models_root", "saved_models"), evaluator,
                                              config.image_size, config.channels, overrides["data"])
    real = gan_evaluation.real_outputs(scorer, overrides["data"], config.image_size, config.channels, batch_size,
                                       overrides.get("tfds_data_dir") or None)
    scoring = (scorer, real, len(card["class_names"]), samples, batch_size)
    rows = [_race_recipe(label, preset, name, overrides, minutes, interval_minutes, scoring, targets, progress, save)
            for label, preset in RECIPES.items()]
    result = {"evaluator": evaluator, "data": overrides["data"], "minutes": minutes,
              "interval_minutes": interval_minutes, "targets": list(targets), "recipes": rows,
              "speedup": {str(target): _speedup(rows, str(target)) for target in targets},
              "speedup_at_least": {str(target): _speedup_bound(rows, str(target)) for target in targets}}
    written = [runs.write_json(folder / "race.json", result),
               runs.atomic_write_text(folder / "race.md", race_markdown(result)), provenance.record(folder)]
    print(race_markdown(result))
    return written


def _speedup(rows, target):
    """The peer's minutes over the project's for `target`, or None unless both reached it."""
    minutes = {row["label"]: row["minutes_to"][target] for row in rows}
    if minutes.get("project") and minutes.get("tutorial"):
        return minutes["tutorial"] / minutes["project"]
    return None


def _speedup_bound(rows, target):
    """Where only the project reached `target`: the tutorial's training minutes over the project's, a lower bound."""
    by_label = {row["label"]: row for row in rows}
    project, tutorial = by_label["project"]["minutes_to"][target], by_label["tutorial"]["minutes_to"][target]
    if project and tutorial is None:
        return by_label["tutorial"]["curve"][-1]["training_minutes"] / project
    return None


def _speedup_text(result, target):
    value, bound = result["speedup"][target], result.get("speedup_at_least", {}).get(target)
    if value:
        return f"{value:.2f}x"
    if bound:
        return f"more than {math.floor(100 * bound) / 100:.2f}x (the tutorial did not reach it)"
    return "n/a"


def race_markdown(result):
    """One row per recipe: training minutes to each target ("not reached in N min"), best share, steps."""
    targets = result["targets"]
    header = ["recipe", *(f"minutes to IS {100 * target:.0f} % of real" for target in targets),
              "best IS / real", "steps", "training minutes"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in result["recipes"]:
        cells = [f"{row['label']} (`{row['preset']}`, batch {row['batch_size']})"]
        for target in targets:
            value = row["minutes_to"][str(target)]
            cells.append(f"{value:.1f}" if value is not None else f"not reached in {result['minutes']:g} min")
        last = row["curve"][-1]
        cells += [f"{100 * row['best_is_share']:.0f} %", str(last["steps"]), f"{last['training_minutes']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    speedups = ", ".join(f"{100 * float(target):.0f} %: {_speedup_text(result, target)}" for target in result["speedup"])
    return ("\n".join(lines) + f"\n\nScored every {result['interval_minutes']:g} training minutes with "
            f"`{result['evaluator']}`; speed-up (tutorial minutes / project minutes) {speedups}.\n")
