import csv
import hashlib
import json
import pathlib
import shutil
import subprocess
import sys

import imageio.v3 as iio
import keras
import numpy as np
import pytest
import tensorflow as tf

from pipelines import images as image_files
from pipelines import segmentation
from scripts import evaluate as evaluate_script
from scripts import predict_masks as predict_script
from tf_models.core import config as config_lib
from tf_models.core import export as export_lib
from tf_models.core import runner
from tf_models.unet import inference as unet_inference
from tf_models.unet import model as unet_model
from tf_models.unet import task as unet_task
from tests.conftest import shared_dataset

RUN = "tiny"


def tiny_config(root, **overrides):
    values = dict(
        data=str(shared_dataset("carvana")), run_name=RUN, image_size="32x48", depth=2, base_filters=8,
        batch_size=16, epochs=1, steps_per_epoch=4, overlay_count=2, save_every_steps=0,
        logs_root=str(root / "logs"), models_root=str(root / "models"),
    )
    return config_lib.make_config(unet_task.UNetConfig, unet_task.PRESETS, **{**values, **overrides})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("unet")
    keras.utils.set_random_seed(0)
    result = runner.train(unet_task.UNetTask(), tiny_config(root), verbose=0)
    return root, result


def run_flags(root):
    return ["--run", RUN, "--logs-root", str(root / "logs"), "--models-root", str(root / "models")]


def test_one_epoch_through_the_runner_writes_its_artifacts(trained):
    root, result = trained
    assert set(result.history) == {"loss", "dice", "iou", "val_loss", "val_dice", "val_iou"}
    assert (root / "models" / "unet" / RUN / "best.keras").is_file()
    masks = iio.imread(root / "logs" / "unet" / RUN / "masks.png")
    assert masks.ndim == 3 and masks.shape[0] > 100
    with open(root / "logs" / "unet" / RUN / "history.csv", newline="") as file:
        assert "val_dice" in next(csv.DictReader(file))
    assert list((root / "logs" / "unet" / RUN / "validation").glob("events.*"))


def test_saved_model_takes_uint8_images_and_matches_keras(trained):
    root, result = trained
    serving_dir = root / "models" / "unet" / RUN / "serving" / "1"
    images = np.random.default_rng(0).integers(0, 256, size=(3, 32, 48, 3), dtype=np.uint8)
    served = export_lib.run_saved_model(serving_dir, {"images": images})
    expected = np.asarray(tf.sigmoid(result.model(images.astype("float32") / 255.0, training=False)))
    assert served["mask_probability"].dtype == np.float32 and served["mask_probability"].shape == (3, 32, 48, 1)
    np.testing.assert_allclose(served["mask_probability"], expected, atol=1e-5)
    assert served["mask"].dtype == np.uint8 and set(np.unique(served["mask"])) <= {0, 255}
    decided = np.abs(expected - 0.5) > 1e-4
    np.testing.assert_array_equal(served["mask"][decided], np.where(expected >= 0.5, 255, 0)[decided])
    report = json.loads((root / "models" / "unet" / RUN / "export_formats.json").read_text())
    lite = report["formats"]["tflite"]
    assert lite["max_abs_vs_keras"]["mask_probability"] < 1e-4 and abs(lite["score_drop"]["dice"]) < 1e-3
    cli = pathlib.Path(sys.executable).parent / "saved_model_cli"
    shown = subprocess.run([str(cli), "show", "--dir", str(serving_dir), "--tag_set", "serve",
                            "--signature_def", "serving_default"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "images" in shown.stdout and "mask_probability" in shown.stdout and "DT_UINT8" in shown.stdout


def test_evaluate_reports_both_resolutions(trained, capsys):
    root, _ = trained
    assert evaluate_script.main(["--task", "unet", *run_flags(root), "--worst", "3"]) == 0
    output_dir = root / "logs" / "unet" / RUN / "evaluation"
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["training_resolution"]["image_size"] == "32x48"
    for resolution in ("training_resolution", "original_resolution"):
        assert 0.0 <= metrics[resolution]["iou"] <= metrics[resolution]["dice"] <= 1.0
    with open(output_dir / "per_image.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == metrics["examples"] > 0 and rows[0]["height"] == "31" and rows[0]["width"] == "47"
    assert (output_dir / "worst_masks.png").is_file()
    assert "original" in capsys.readouterr().out


def tree_hashes(*folders, skip=()):
    return {str(path): hashlib.sha256(path.read_bytes()).hexdigest()
            for folder in folders for path in sorted(pathlib.Path(folder).rglob("*"))
            if path.is_file() and not any(part in skip for part in path.parts)}


def test_external_folder_is_scored_whole_and_the_run_is_unchanged(trained, tmp_path):
    root, _ = trained
    external = tmp_path / "other-cars"
    rng = np.random.default_rng(0)
    for folder in ("image", "label"):
        (external / folder).mkdir(parents=True)
    for index in range(5):
        iio.imwrite(external / "image" / f"car{index}.png", rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))
        mask = np.zeros((40, 60), np.uint8)
        mask[10:30, 15 + index : 45] = 255
        iio.imwrite(external / "label" / f"car{index}.png", mask)
    run_folders = (root / "logs" / "unet" / RUN, root / "models" / "unet" / RUN)
    written = ("evaluation-other-cars", "evaluation-other-cars-tta", "evaluation-other-cars-tta-guided")
    before = tree_hashes(*run_folders, skip=written)
    for extra in ([], ["--tta"], ["--tta", "--upsample", "guided"]):
        assert evaluate_script.main(["--task", "unet", *run_flags(root), "--data", str(external), *extra]) == 0
    assert tree_hashes(*run_folders, skip=written) == before
    plain, flipped, guided = (json.loads((run_folders[0] / name / "metrics.json").read_text()) for name in written)
    assert plain["examples"] == flipped["examples"] == guided["examples"] == 5 and "every pair" in plain["data"]
    assert flipped["tta"] and not plain["tta"]
    assert (plain["upsample"], flipped["upsample"], guided["upsample"]) == ("bilinear", "bilinear", "guided")
    with open(run_folders[0] / "evaluation-other-cars" / "per_image.csv", newline="") as file:
        assert [row["example_id"] for row in csv.DictReader(file)] == [f"car{index}" for index in range(5)]


def test_training_split_scores_every_fourth_training_pair_and_no_held_out_car(trained):
    root, _ = trained
    run_folders = (root / "logs" / "unet" / RUN, root / "models" / "unet" / RUN)
    before = tree_hashes(*run_folders, skip=("evaluation-train", "evaluation-train-guided"))
    for extra in ([], ["--upsample", "guided"]):
        assert evaluate_script.main(["--task", "unet", *run_flags(root), "--split", "train", "--worst", "0", *extra]) == 0
    assert tree_hashes(*run_folders, skip=("evaluation-train", "evaluation-train-guided")) == before
    config = tiny_config(root)
    pairs = segmentation.find_pairs(config.data)
    training, validation = segmentation.split_by_group(pairs, config.validation_fraction, config.seed)
    with open(run_folders[0] / "evaluation-train" / "per_image.csv", newline="") as file:
        scored = [row["example_id"] for row in csv.DictReader(file)]
    assert scored == [pair.example_id for pair in training[::4]]
    assert not set(scored) & {pair.example_id for pair in validation}
    metrics = json.loads((run_folders[0] / "evaluation-train-guided" / "metrics.json").read_text())
    assert "train split" in metrics["data"] and metrics["upsample"] == "guided"


def test_predict_masks_writes_original_sizes_and_a_decodable_csv(trained, tmp_path):
    root, _ = trained
    folder = tmp_path / "images"
    folder.mkdir()
    sources = sorted((shared_dataset("carvana") / "train").glob("*.jpg"))[:4]
    for source in sources[:3]:
        shutil.copy(source, folder / source.name)
    iio.imwrite(folder / "large.png", np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8))
    output, submission = tmp_path / "masks", tmp_path / "submission.csv"
    argv = [*run_flags(root), str(folder), str(sources[3]), "--output-dir", str(output), "--rle-csv", str(submission)]
    assert predict_script.main(argv) == 0
    with open(submission, newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["img"] for row in rows] == [p.name for p in sources[:3]] + ["large.png", sources[3].name]
    for row in rows:
        mask = iio.imread(output / f"{pathlib.Path(row['img']).stem}_mask.png")
        expected_shape = (50, 70) if row["img"] == "large.png" else (31, 47)
        assert mask.shape == expected_shape and set(np.unique(mask)) <= {0, 255}
        np.testing.assert_array_equal(unet_inference.rle_decode(row["rle_mask"], mask.shape), mask // 255)


def test_image_size_flag_parses_height_by_width():
    config = config_lib.parse_config(unet_task.UNetConfig, ["--image-size", "32x48", "--depth", "2"],
                                     presets=unet_task.PRESETS)
    assert config.size == (32, 48)
    assert unet_task.parse_image_size("256") == (256, 256)
    assert config_lib.parse_config(unet_task.UNetConfig, ["--preset", "membrane"], presets=unet_task.PRESETS).size == (256, 256)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--image-size", "30x48", "--depth", "2"], r"divisible by 2\*\*2 = 4, e.g. 32x48"),
        (["--image-size", "160x240", "--depth", "6"], "divisible by 2\\*\\*6"),
        (["--image-size", "wide"], "HEIGHTxWIDTH"),
        (["--image-size", "0x48"], "HEIGHTxWIDTH"),
        (["--depth", "0"], "--depth must be at least 1"),
        (["--dropout", "1.0"], "--dropout"),
        (["--channels", "2"], "--channels"),
        (["--validation-fraction", "1"], "--validation-fraction"),
        (["--loss", "focal"], "--loss must be one of bce-dice, lovasz, bce-lovasz, got 'focal'"),
    ],
)
def test_bad_flags_raise_value_errors(argv, message):
    with pytest.raises(ValueError, match=message):
        config_lib.parse_config(unet_task.UNetConfig, argv, presets=unet_task.PRESETS)


def test_loss_flag_chooses_the_compiled_loss():
    config = config_lib.parse_config(unet_task.UNetConfig, ["--preset", "tiny", "--loss", "bce-lovasz"],
                                     presets=unet_task.PRESETS)
    model = unet_task.UNetTask().build_model(config, None)
    assert model.loss is unet_model.bce_lovasz_loss


def test_missing_data_folder_is_explained():
    config = config_lib.make_config(unet_task.UNetConfig)
    with pytest.raises(ValueError, match="--data must name a segmentation folder"):
        unet_task.UNetTask().resolve(config)


def test_overlay_tints_only_the_mask():
    image = np.full((2, 2, 1), 0.2, np.float32)
    tinted = unet_task.overlay(image, np.array([[1, 0], [0, 0]]))
    assert tinted.shape == (2, 2, 3)
    np.testing.assert_allclose(tinted[1, 1], [0.2, 0.2, 0.2])
    assert tinted[0, 0, 0] > tinted[0, 0, 1]


def test_resumed_run_keeps_the_best_dice_so_far(tmp_path):
    history = tmp_path / "history.csv"
    assert unet_task.best_validation_dice(history) is None
    history.write_text("epoch,dice,val_dice\n0,0.5,0.61\n1,0.7,0.83\n2,0.8,0.79\n")
    assert unet_task.best_validation_dice(history) == pytest.approx(0.83)


def test_predict_masks_with_tta_writes_the_flip_averaged_masks(trained, tmp_path):
    root, result = trained
    source = sorted((shared_dataset("carvana") / "train").glob("*.jpg"))[0]
    assert predict_script.main([*run_flags(root), str(source), "--output-dir", str(tmp_path), "--tta"]) == 0
    mask = iio.imread(tmp_path / f"{source.stem}_mask.png")
    image = image_files.read_image(source, 3)
    model = keras.models.load_model(root / "models" / "unet" / RUN / "best.keras")
    (_, probability), = unet_inference.predict_images(model, [image], tta=True)
    np.testing.assert_array_equal(mask, np.where(probability >= 0.5, 255, 0))


def test_init_from_starts_a_larger_run_from_a_smaller_runs_weights(trained, monkeypatch):
    root, _ = trained
    started_from = {}
    initialise = runner.initialise_from_run

    def recording_initialise(task, model, config):
        initialise(task, model, config)
        started_from["weights"] = [weight.copy() for weight in model.get_weights()]

    monkeypatch.setattr(runner, "initialise_from_run", recording_initialise)
    larger = runner.train(unet_task.UNetTask(), tiny_config(root, run_name="larger", image_size="48x64",
                                                            init_from=RUN, export=False), verbose=0)
    saved = keras.saving.load_model(root / "models" / "unet" / RUN / "model.keras", compile=False)
    assert len(started_from["weights"]) == len(saved.get_weights())
    for started, trained_weight in zip(started_from["weights"], saved.get_weights()):
        np.testing.assert_array_equal(started, trained_weight)
    assert json.loads(larger.paths.config_file.read_text())["init_from"] == RUN
    assert larger.history["loss"], "the larger run trains on from those weights"
    with pytest.raises(ValueError, match="no .*model.keras"):
        runner.train(unet_task.UNetTask(), tiny_config(root, run_name="orphan", init_from="missing"), verbose=0)
    with pytest.raises(ValueError, match="do not fit this model"):
        runner.train(unet_task.UNetTask(), tiny_config(root, run_name="narrow", base_filters=4, init_from=RUN),
                     verbose=0)
