import argparse
import hashlib
import json

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf

from pipelines import augment, paired
from tf_models.core import config as config_lib
from tf_models.core import runner
from tf_models.pix2pix import evaluation
from tf_models.pix2pix import inference as pix2pix_inference
from tf_models.pix2pix import task as pix2pix_task


def write_films(folder, count, seed):
    """Clean 'mammograms': a black film with a textured half-disc of tissue."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[:64, :64]
    for index in range(count):
        tissue = (rows - 32) ** 2 + columns**2 < (40 + index) ** 2
        texture = 0.45 + 0.1 * np.sin(rows / 3.0 + index) * np.cos(columns / 5.0) + rng.normal(0, 0.02, (64, 64))
        iio.imwrite(folder / f"film{index:02d}.png", np.round(np.clip(tissue * texture, 0, 1) * 255).astype(np.uint8))
    return folder


@pytest.fixture(scope="module")
def blind_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pix2pix_evaluation")
    config = config_lib.make_config(
        pix2pix_task.Pix2PixConfig, data=str(write_films(root / "films", 8, 0)), degrade="noise:0.01-0.08",
        image_size=32, batch_size=2, epochs=1, steps_per_epoch=2, generator_filters=4, generator_depth=3,
        discriminator_filters=4, run_name="blind", test_fraction=0.25, logs_root=str(root / "logs"),
        models_root=str(root / "models"), export=False,
    )
    task = pix2pix_task.Pix2PixTask()
    result = runner.train(task, config, verbose=0)
    runner.export_run(task, result.model, config, result.paths, formats=("savedmodel",), examples=2)
    return root, result.paths, config


def evaluate(root, *flags):
    parser = argparse.ArgumentParser()
    evaluation.add_arguments(parser)
    args = parser.parse_args(["--run", "blind", "--logs-root", str(root / "logs"), "--models-root",
                              str(root / "models"), "--figure-rows", "2", *flags])
    return evaluation.evaluate(args)


def hashes(folder):
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.rglob("*"))
            if path.is_file()}


def test_baselines_receive_exactly_the_models_degraded_inputs(blind_run, monkeypatch):
    root, paths, config = blind_run
    received = {"model": [], "bm3d": [], "nlmeans-blind": []}
    enhance = pix2pix_inference.Enhancer.enhance

    def recording_enhance(self, image, *args, **kwargs):
        received["model"].append(np.array(image))
        return enhance(self, image, *args, **kwargs)

    real_parse = evaluation.baselines_lib.parse_baselines

    def recording_parse(text, recipe):
        def recorder(name, method):
            return lambda image: received[name].append(np.array(image)) or method(image)

        return {name: recorder(name, method) for name, method in real_parse(text, recipe).items()}

    monkeypatch.setattr(pix2pix_inference.Enhancer, "enhance", recording_enhance)
    monkeypatch.setattr(evaluation.baselines_lib, "parse_baselines", recording_parse)
    written = evaluate(root, "--noise-levels", "0.03,0.06", "--baselines", "bm3d,nlmeans-blind")

    files = paired.list_paired_files(config.data, "noise:0.03")
    _, test_index = paired.split_indices(files.targets, config.test_fraction, config.seed)
    expected = []
    for sigma in (0.03, 0.06):
        for position, index in enumerate(test_index):
            clean = next(iter(paired.load_grayscale_dataset([files.targets[index]])))
            seed = tf.constant([config.seed + 1_000_003, position], tf.int32)
            expected.append(augment.degrade(clean, f"noise:{sigma}", seed).numpy())
    for name, inputs in received.items():
        assert len(inputs) == len(expected), name
        for given, wanted in zip(inputs, expected):
            np.testing.assert_array_equal(given, wanted)
    summary = json.loads((paths.log_dir / "evaluation" / "noise-0.06" / "metrics.json").read_text())
    assert summary["recipe"] == "noise:0.06" and summary["methods"] == ["model", "bm3d", "nlmeans-blind"]
    assert summary["bm3d_breast_psnr"] > summary["input_breast_psnr"] + 3, summary
    assert summary["bm3d_seconds_per_film"] > 0 and summary["images"] == len(test_index)
    assert (paths.log_dir / "evaluation" / "noise_levels.md") in written
    assert (paths.log_dir / "evaluation" / "noise-0.03" / "comparison.png").is_file()


def test_evaluating_another_folder_leaves_the_runs_own_evaluation_unchanged(blind_run):
    root, paths, _ = blind_run
    evaluate(root)
    own = paths.log_dir / "evaluation"
    before = hashes(own)
    assert {"metrics.json", "metrics.md", "per_image.csv", "triplets.png"} <= set(before)
    other = write_films(root / "hospital_b", 3, 1)
    written = evaluate(root, "--data", str(other), "--baselines", "nlmeans-blind")
    assert hashes(own) == before
    summary = json.loads((paths.log_dir / "evaluation-hospital_b" / "metrics.json").read_text())
    assert summary["images"] == 3 and summary["data"] == str(other)
    assert all(str(path).startswith(str(paths.log_dir / "evaluation-hospital_b")) for path in written)


def test_self_ensemble_tile_and_recipe_evaluations_each_keep_their_own_folder(blind_run):
    root, paths, _ = blind_run
    evaluate(root)
    own = paths.log_dir / "evaluation"
    before = hashes(own)
    variants = {("--self-ensemble",): "evaluation-self-ensemble", ("--tile", "0"): "evaluation-tile0",
                ("--degrade", "noise:0.02", "--self-ensemble"): "evaluation-noise-0.02-self-ensemble"}
    for flags, folder in variants.items():
        written = evaluate(root, *flags)
        assert all(str(path).startswith(str(paths.log_dir / folder)) for path in written)
        assert json.loads((paths.log_dir / folder / "metrics.json").read_text())["images"] > 0
    assert hashes(own) == before
    assert json.loads((paths.log_dir / "evaluation-self-ensemble" / "metrics.json").read_text())["self_ensemble"]


@pytest.mark.parametrize("flags, message", [
    (["--baselines", "bicubic", "--noise-levels", "0.05"], "bicubic: it undoes a single down: step"),
    (["--baselines", "bm3d"], "draws sigma from a range.*--noise-levels"),
    (["--baselines", "wiener"], "Unknown baseline 'wiener'"),
    (["--noise-levels", "0.05,loud"], "positive sigmas separated by commas"),
])
def test_bad_evaluation_flags_fail_before_scoring(blind_run, flags, message):
    with pytest.raises(ValueError, match=message):
        evaluate(blind_run[0], *flags)
