import importlib.util
import json

import imageio.v3 as iio
import numpy as np
import pytest

from tests.dcgan.evaluators import train_digits_evaluator
from tests.conftest import REPO_ROOT
from tf_models.core import callbacks as callbacks_lib
from tf_models.core import config as config_lib
from tf_models.dcgan import task as dcgan_task
from tf_models.dcgan import experiments as gan_experiments

TINY_DCGAN = ["--data", "digits", "--image-size", "28", "--channels", "1", "--batch-size", "16",
              "--generator-filters", "4", "--discriminator-filters", "4", "--latent-dim", "8", "--sample-count", "4",
              "--save-every-steps", "0", "--no-export"]
SCORING = ["--evaluator", "digits28", "--samples", "150", "--evaluation-batch-size", "150"]


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """Log and model roots holding a tiny digits evaluator (a few seconds of training)."""
    root = tmp_path_factory.mktemp("experiments")
    train_digits_evaluator(root, epochs=3)
    return ["--logs-root", str(root / "logs"), "--models-root", str(root / "models")], root


def read_comparison(root, name):
    """(folder, {label: row}, comparison.json, comparison.md) of a comparison."""
    folder = root / "logs" / "experiments" / name
    comparison = json.loads((folder / "comparison.json").read_text())
    rows = {row["label"]: row for row in comparison["runs"]}
    return folder, rows, comparison, (folder / "comparison.md").read_text()


@pytest.mark.slow
def test_run_experiments_scores_every_preset_and_draws_them(roots, capsys):
    root_flags, root = roots
    flags = ["--name", "tiny", *SCORING, *TINY_DCGAN, *root_flags, "--epochs", "2", "--steps-per-epoch", "2"]
    assert load_script("run_experiments").main(flags) == 0
    folder, rows, comparison, table = read_comparison(root, "tiny")
    assert list(rows) == list(gan_experiments.DEFAULT_PRESETS)
    for preset, row in rows.items():
        assert row["run"] == f"tiny-{preset}"
        assert row["steps"] == 4
        assert set(row["scores"]) == set(comparison["real"])
        assert all(np.isfinite(value) for value in row["scores"].values())
        assert f"| {preset} (`tiny-{preset}`) |" in table
    table_rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(table_rows) == 1 + 3 + 1 and table_rows[-1].startswith("| real (ceiling) |")
    assert comparison["real"]["inception_score"] > max(row["scores"]["inception_score"] for row in rows.values())
    samples = iio.imread(folder / "samples.png")
    losses = iio.imread(folder / "losses.png")
    assert samples.shape[1] > 2 * samples.shape[0] and losses.ndim == 3
    assert str(folder / "comparison.md") in capsys.readouterr().out


@pytest.mark.slow
def test_run_experiments_resumes_its_runs_instead_of_training_again(roots):
    root_flags, root = roots
    flags = ["--name", "again", "--presets", "demo", *SCORING, *TINY_DCGAN, *root_flags, "--epochs", "1",
             "--steps-per-epoch", "2"]
    script = load_script("run_experiments")
    script.main(flags)
    script.main(flags)
    _, rows, _, _ = read_comparison(root, "again")
    assert rows["demo"]["steps"] == 2


@pytest.mark.slow
def test_compare_recipes_trains_both_for_the_budget(roots):
    root_flags, root = roots
    minutes = 0.05
    flags = ["--minutes", str(minutes), "--name", "budget", *SCORING, *TINY_DCGAN, *root_flags,
             "--steps-per-epoch", "5"]
    assert load_script("compare_recipes").main(flags) == 0
    folder, rows, _, table = read_comparison(root, "budget")
    assert list(rows) == ["project", "tutorial"]
    for label, row in rows.items():
        assert row["steps"] > 0
        assert row["training_seconds"] >= minutes * 60
        assert row["images_per_second"] == pytest.approx(row["steps"] * 16 / row["training_seconds"])
        assert f"| {label} (`budget-{label}`) |" in table
    tutorial_config = json.loads((root / "logs" / "dcgan" / "budget-tutorial" / "config.json").read_text())
    assert (tutorial_config["train_step"], tutorial_config["architecture"]) == ("tutorial", "tutorial")
    assert (folder / "samples.png").is_file() and (folder / "losses.png").is_file()
    clock = callbacks_lib.TrainingClock.read(root / "logs" / "dcgan" / "budget-project" / "training_time.json")
    assert clock["steps"] == rows["project"]["steps"]

    assert load_script("compare_recipes").main(flags) == 0, "a spent budget is scored again, not trained further"
    _, again, _, _ = read_comparison(root, "budget")
    assert {label: row["steps"] for label, row in again.items()} == {label: row["steps"] for label, row in rows.items()}


@pytest.mark.parametrize("fields, message", [
    (dict(architecture="dcgan"), "--architecture tutorial"),
    (dict(strategy="mirrored"), "one device"),
    (dict(precision="mixed_float16"), "no loss scaling"),
    (dict(train_step="other"), "Unknown --train-step"),
])
def test_the_tutorial_step_is_refused_where_it_would_not_be_the_tutorials(fields, message):
    config = config_lib.make_config(dcgan_task.DCGANConfig, dcgan_task.PRESETS, preset="tutorial_step", **fields)
    with pytest.raises(ValueError, match=message):
        dcgan_task.DCGANTask().resolve(config)


@pytest.mark.parametrize("overrides, message", [
    (dict(data="digits", run_name="mine"), "--run-name is set per run"),
    (dict(data="digits", evaluator="digits28"), "--evaluator is set per run"),
    (dict(), "--data is required"),
])
def test_flags_that_each_run_sets_itself_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        gan_experiments.check_overrides(overrides)


@pytest.mark.slow
def test_race_times_each_recipe_to_each_share_of_the_ceiling(roots):
    root_flags, root = roots
    flags = ["--minutes", "0.04", "--interval-minutes", "0.02", "--name", "race", *SCORING, *TINY_DCGAN,
             *root_flags, "--steps-per-epoch", "5"]
    assert load_script("race").main(flags) == 0
    folder = root / "logs" / "experiments" / "race"
    result = json.loads((folder / "race.json").read_text())
    assert [row["label"] for row in result["recipes"]] == ["project", "tutorial"]
    table = (folder / "race.md").read_text()
    for row in result["recipes"]:
        curve = row["curve"]
        assert 1 <= len(curve) <= 2 and curve[-1]["steps"] > 0
        assert [point["training_minutes"] for point in curve] == sorted(point["training_minutes"] for point in curve)
        assert row["best_is_share"] == max(point["is_share"] for point in curve)
        for target, minutes in row["minutes_to"].items():
            first = next((point["training_minutes"] for point in curve if point["is_share"] >= float(target)), None)
            assert minutes == first
        assert f"| {row['label']} (`{row['preset']}`" in table
    for target, speedup in result["speedup"].items():
        minutes = [row["minutes_to"][target] for row in result["recipes"]]
        assert speedup == (minutes[1] / minutes[0] if all(minutes) else None)
    assert "not reached in 0.04 min" in table or all(all(row["minutes_to"].values()) for row in result["recipes"])



@pytest.mark.slow
def test_running_a_race_again_with_more_minutes_extends_its_curves(roots):
    root_flags, root = roots
    flags = ["--interval-minutes", "0.02", "--name", "race-extended", *SCORING, *TINY_DCGAN, *root_flags,
             "--steps-per-epoch", "5"]
    race = load_script("race")
    assert race.main(["--minutes", "0.02", *flags]) == 0
    folder = root / "logs" / "experiments" / "race-extended"
    first = {row["label"]: row["curve"] for row in json.loads((folder / "race.json").read_text())["recipes"]}
    assert race.main(["--minutes", "0.04", *flags]) == 0
    result = json.loads((folder / "race.json").read_text())
    for row in result["recipes"]:
        curve = row["curve"]
        earlier = first[row["label"]]
        assert curve[:len(earlier)] == earlier
        if not all(row["minutes_to"].values()) and earlier[-1]["training_minutes"] < 0.04:
            assert len(curve) == len(earlier) + 1 and curve[-1]["steps"] > curve[-2]["steps"]
        else:  # every target reached, or the first race's last step already ran past 0.04 minutes
            assert curve == earlier
    with pytest.raises(ValueError, match="race_progress.json: this race was run with"):
        race.main(["--minutes", "0.04", *flags[:-2], "--steps-per-epoch", "6"])

def race_row(label, minutes_to, last_minutes):
    return {"label": label, "preset": label, "batch_size": 8, "minutes_to": minutes_to, "best_is_share": 0.5,
            "curve": [{"training_minutes": last_minutes, "steps": 100, "is_share": 0.5}]}


def test_race_gives_a_lower_bound_when_only_the_project_reaches_a_target():
    rows = [race_row("project", {"0.5": 2.0, "0.6": 4.0}, 4.0), race_row("tutorial", {"0.5": 8.0, "0.6": None}, 12.0)]
    result = {"evaluator": "mnist28", "minutes": 12, "interval_minutes": 2, "targets": [0.5, 0.6], "recipes": rows,
              "speedup": {target: gan_experiments._speedup(rows, target) for target in ("0.5", "0.6")},
              "speedup_at_least": {target: gan_experiments._speedup_bound(rows, target) for target in ("0.5", "0.6")}}
    assert result["speedup"] == {"0.5": 4.0, "0.6": None}
    assert result["speedup_at_least"] == {"0.5": None, "0.6": 3.0}
    table = gan_experiments.race_markdown(result)
    assert "50 %: 4.00x" in table and "60 %: more than 3.00x (the tutorial did not reach it)" in table
    assert "| tutorial (`tutorial`, batch 8) | 8.0 | not reached in 12 min |" in table
    rows[1]["curve"][-1]["training_minutes"] = 11.9999
    result["speedup_at_least"]["0.6"] = gan_experiments._speedup_bound(rows, "0.6")
    assert "60 %: more than 2.99x" in gan_experiments.race_markdown(result)
