"""Pneumonia: patient split, class weights, Grad-CAM, a real-data fit, export, ensembles, bad input."""

import logging
import os
import pathlib
import shutil
import subprocess

import imageio.v3 as iio
import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert import interpreter as litert

from pipelines import classification
from scripts import explore_data
from tests.conftest import REPO_ROOT, shared_dataset
from tests.model_checks import assert_config_round_trip
from tf_models.pneumonia import inference
from tf_models.pneumonia import model as pneumonia
from tf_models.core import formats as formats_lib
from tf_models.core import provenance, runner, runs
from tf_models.pneumonia import task as pneumonia_task


def generated_names():
    names, labels = [], []
    for person in range(40):
        for image in range(1 + person % 3):
            names.append(f"person{person}_{'bacteria' if person % 2 else 'virus'}_{image}.jpeg")
            labels.append(1)
    for number in range(20):
        names.append(f"IM-{number:04d}-0001.jpeg")
        names.append(f"NORMAL2-IM-{number:04d}-0001.jpeg")
        labels += [0, 0]
    return names, np.asarray(labels)


def assert_disjoint_split(names, labels, fraction=0.2):
    first = classification.split_by_patient(names, labels, fraction, seed=3)
    second = classification.split_by_patient(names, labels, fraction, seed=3)
    train_index, validation_index = first
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert len(train_index) + len(validation_index) == len(names)
    train_patients = {classification.patient_id(names[i]) for i in train_index}
    validation_patients = {classification.patient_id(names[i]) for i in validation_index}
    assert not train_patients & validation_patients
    assert set(labels[validation_index]) == {0, 1}
    return train_index, validation_index


def test_patient_ids():
    assert classification.patient_id("person1000_bacteria_2931.jpeg") == "person1000"
    assert classification.patient_id("person1_virus_9_1.jpeg") == "person1"
    assert classification.patient_id("IM-0115-0001.jpeg") == classification.patient_id("NORMAL2-IM-0115-0001.jpeg")
    assert classification.patient_id("scan.png") == "scan"


def test_patient_split_is_deterministic_and_disjoint_on_generated_names():
    names, labels = generated_names()
    assert_disjoint_split(names, labels)
    other = classification.split_by_patient(names, labels, 0.2, seed=4)[1]
    assert not np.array_equal(other, classification.split_by_patient(names, labels, 0.2, seed=3)[1])


def test_patient_split_on_the_real_listing():
    root = shared_dataset("chest_xray") / "train"
    names = sorted(os.listdir(root / "NORMAL")) + sorted(os.listdir(root / "PNEUMONIA"))
    labels = np.asarray([0] * len(os.listdir(root / "NORMAL")) + [1] * len(os.listdir(root / "PNEUMONIA")))
    _, validation_index = assert_disjoint_split(names, labels, fraction=0.1)
    share = labels[validation_index].mean()
    assert abs(share - labels.mean()) < 0.03
    assert 0.07 < len(validation_index) / len(names) < 0.13


def test_class_weights_from_counts():
    weights = classification.class_weights([0] * 25 + [1] * 75)
    assert weights == pytest.approx({0: 2.0, 1: 100 / 150})
    assert 25 * weights[0] == pytest.approx(75 * weights[1])
    with pytest.raises(ValueError, match="every class"):
        classification.class_weights([1, 1, 1])


def tiny_model(image_size=32):
    model = pneumonia.build_pneumonia_cnn(image_size, filters=4, blocks=2, dense_units=8, dropout=0.0)
    return pneumonia_task.compile_model(model, 1e-2)


@pytest.mark.parametrize("normalization", ["per_image", "equalize", "rescale"])
def test_config_round_trip_of_the_cnn_and_the_ensemble(normalization):
    members = [pneumonia.build_pneumonia_cnn(32, filters=4, blocks=2, dense_units=8, normalization=normalization,
                                             name=f"member_{index}") for index in range(2)]
    assert_config_round_trip(members[0])
    assert_config_round_trip(pneumonia.build_ensemble(members))


def zoomed_square_aspects(aspect_zoom):
    """Height / width of a centred white square after 16 seeded zoom-only augmentations."""
    image = np.zeros((1, 64, 64, 1), np.float32)
    image[:, 16:48, 16:48] = 255.0
    augmentation = classification.xray_augmentation(
        seed=0, rotation=0.0, zoom=0.3, shift=0.0, brightness=0.0, contrast=0.0, aspect_zoom=aspect_zoom
    )
    aspects = []
    for _ in range(16):
        rows, columns = np.nonzero(np.asarray(augmentation(image, training=True))[0, ..., 0] > 127)
        aspects.append((np.ptp(rows) + 1) / (np.ptp(columns) + 1))
    return np.asarray(aspects)


def test_aspect_zoom_varies_the_framing_and_plain_zoom_keeps_it():
    np.testing.assert_allclose(zoomed_square_aspects(aspect_zoom=False), 1.0, atol=0.07)
    aspects = zoomed_square_aspects(aspect_zoom=True)
    assert aspects.max() - aspects.min() > 0.2, aspects


def shift_augmentation(**ranges):
    """`xray_augmentation` with every geometric and affine range off, so only `ranges` act."""
    off = dict(rotation=0.0, zoom=0.0, shift=0.0, brightness=0.0, contrast=0.0)
    return classification.xray_augmentation(seed=0, **{**off, **ranges})


def relative_sharpness(images):
    """`explore_data.relative_sharpness` of each image of a batch [N, H, W, 1]."""
    return np.array([explore_data.relative_sharpness(image[..., 0]) for image in images])


def test_blur_augmentation_softens_some_films_and_leaves_the_others():
    films = np.random.default_rng(0).uniform(0, 255, size=(32, 32, 32, 1)).astype("float32")
    sharpness = relative_sharpness(films)
    augmentation = shift_augmentation(blur=1.0)
    ratios = []
    for _ in range(6):
        augmented = np.asarray(augmentation(films, training=True))
        changed = np.abs(augmented - films).max(axis=(1, 2, 3)) > 1e-3
        assert 0 < changed.sum() < len(films), changed
        assert np.all(relative_sharpness(augmented)[changed] < sharpness[changed])
        ratios.append(np.mean(relative_sharpness(augmented)[changed] / sharpness[changed]))
    assert min(ratios) < 0.7 < max(ratios), ratios
    np.testing.assert_allclose(np.asarray(shift_augmentation(blur=1.0)(films, training=False)), films, atol=1e-4)


def test_gamma_moves_the_background_where_standardization_cancels_brightness():
    film = np.full((1, 32, 32, 1), 40.0, np.float32)
    film[:, 4:28, 4:28] = 90.0
    film[:, 8:24, 8:24] = 150.0
    standardize = pneumonia.PerImageStandardization()
    brighter = np.asarray(shift_augmentation(brightness=0.1)(np.repeat(film, 8, 0), training=True))
    assert np.ptp(brighter[:, 0, 0, 0]) > 1.0
    np.testing.assert_allclose(standardize(brighter), np.repeat(standardize(film), 8, 0), atol=1e-3)
    curved = np.asarray(shift_augmentation(gamma=0.5)(np.repeat(film, 8, 0), training=True))
    gamma_of_background = np.log(curved[:, 0, 0, 0] / 255.0) / np.log(40.0 / 255.0)
    gamma_of_lungs = np.log(curved[:, 16, 16, 0] / 255.0) / np.log(150.0 / 255.0)
    np.testing.assert_allclose(gamma_of_background, gamma_of_lungs, rtol=1e-3)
    assert np.all((gamma_of_background > 1 / 1.5 - 1e-4) & (gamma_of_background < 1.5 + 1e-4))
    tissue = np.asarray(standardize(curved))[:, 5, 5, 0]
    assert np.ptp(tissue) > 0.05, tissue


def test_augmentation_ranges_out_of_bounds_are_refused():
    with pytest.raises(ValueError, match="--blur"):
        shift_augmentation(blur=1.5)
    with pytest.raises(ValueError, match="--gamma"):
        shift_augmentation(gamma=-0.1)


def test_model_shape_and_float32_logit():
    model = pneumonia.build_pneumonia_cnn(32, filters=4, blocks=3)
    logits = model(np.zeros((2, 32, 32, 1), np.float32))
    assert logits.shape == (2, 1) and logits.dtype == tf.float32
    with pytest.raises(ValueError, match="too small"):
        pneumonia.build_pneumonia_cnn(8, blocks=4)


def test_grad_cam_has_input_size_and_varies_for_a_trained_model():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 60, size=(64, 32, 32, 1)).astype(np.float32)
    labels = (np.arange(64) % 2).astype(np.float32)[:, None]
    images[labels[:, 0] == 1, 8:20, 4:14] += 180.0
    model = tiny_model()
    model.fit(images, labels, epochs=8, batch_size=16, verbose=0)
    heatmaps = inference.grad_cam(model, images[:4])
    assert heatmaps.shape == (4, 32, 32)
    assert 0.0 <= heatmaps.min() and heatmaps.max() <= 1.0
    assert heatmaps[labels[:4, 0] == 1].std() > 0.01


def real_subset(per_class=32):
    root = shared_dataset("chest_xray") / "train"
    paths, labels = [], []
    for label, name in enumerate(classification.PNEUMONIA_CLASSES):
        files = sorted((root / name).iterdir())[:per_class]
        paths += [str(path) for path in files]
        labels += [label] * len(files)
    return paths, np.asarray(labels)


def test_few_step_fit_lowers_loss_on_real_images():
    paths, labels = real_subset()
    dataset = classification.batch_examples(classification.grayscale_dataset(paths, labels, 64), 16)
    model = pneumonia_task.compile_model(
        pneumonia.build_pneumonia_cnn(64, filters=8, blocks=3, dense_units=16, dropout=0.0), 3e-3
    )
    history = model.fit(dataset, epochs=6, verbose=0).history["loss"]
    assert history[-1] < history[0]


def test_export_round_trip(tmp_path):
    model = tiny_model()
    paths = runs.RunPaths("pneumonia", "export", tmp_path / "logs", tmp_path / "models").make_dirs()
    images = np.random.default_rng(2).integers(0, 256, size=(3, 32, 32, 1), dtype=np.uint8)
    written, report = formats_lib.export_formats(model, pneumonia_task.serving_endpoints(model, 0.3), paths.model_dir,
                                                ("savedmodel", "tflite"), {"images": images})
    for format_name in ("savedmodel", "tflite"):
        assert report["formats"][format_name]["max_abs_vs_keras"]["probability"] < 1e-5
    loaded = tf.saved_model.load(str(written[0]))
    outputs = loaded.signatures["serving_default"](images=tf.constant(images))
    expected = tf.sigmoid(model(images.astype(np.float32)))[:, 0].numpy()
    np.testing.assert_allclose(outputs["probability"].numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(outputs["label"].numpy(), (expected >= 0.3).astype(np.int32))
    cli = shutil.which("saved_model_cli", path=str(REPO_ROOT / ".venv" / "bin")) or shutil.which("saved_model_cli")
    output = subprocess.run(
        [cli, "show", "--dir", str(written[0]), "--tag_set", "serve", "--signature_def", "serving_default"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "inputs['images']" in output and "outputs['probability']" in output and "DT_UINT8" in output


def write_kermany(root, per_class=8, size=40):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name, stem in (("NORMAL", "IM-{:04d}-0001"), ("PNEUMONIA", "person{}_bacteria_1")):
            folder = pathlib.Path(root) / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(per_class):
                iio.imwrite(folder / f"{stem.format(index)}.png", rng.integers(0, 256, (size, size), dtype=np.uint8))
    return pathlib.Path(root)


def test_bad_files_are_skipped_and_logged(tmp_path, caplog):
    root = write_kermany(tmp_path / "xray")
    folder = root / "train" / "PNEUMONIA"
    (folder / "person90_virus_1.jpeg").write_bytes(b"this is not an image at all")
    jpeg = iio.imwrite("<bytes>", np.full((40, 40), 120, np.uint8), extension=".jpeg")
    (folder / "person91_virus_1.jpeg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "notes.txt").write_text("not an image")
    iio.imwrite(folder / "person92_bacteria_1.png", np.full((30, 50, 4), 200, np.uint8))
    iio.imwrite(folder / "person93_bacteria_1.jpeg", np.full((50, 30, 3), 90, np.uint8))
    with caplog.at_level(logging.WARNING):
        data = classification.build_pneumonia_data(root, 32, 4, validation_fraction=0.25, seed=0)
    assert sorted(pathlib.Path(path).name for path, _ in data.skipped) == ["person90_virus_1.jpeg", "person91_virus_1.jpeg"]
    assert "skipped 2 unreadable file(s)" in caplog.text
    total = sum(sum(counts.values()) for counts in data.counts.values())
    assert total == 18
    images, labels, weights = next(iter(data.make_dataset(0)))
    assert images.shape == (4, 32, 32, 1) and labels.shape == (4, 1) and weights.shape == (4,)
    assert float(tf.reduce_max(images)) <= 255.0
    for images, _ in data.validation_dataset:
        assert images.shape[1:] == (32, 32, 1)


def test_empty_and_unknown_class_folders_are_refused(tmp_path):
    root = write_kermany(tmp_path / "xray")
    (root / "train" / "COVID").mkdir()
    with pytest.raises(ValueError, match="unknown class"):
        classification.pneumonia_file_splits(root, 0.25)
    (root / "train" / "COVID").rmdir()
    for path in (root / "test" / "NORMAL").iterdir():
        path.unlink()
    with pytest.raises(ValueError, match="NORMAL"):
        classification.pneumonia_file_splits(root, 0.25)


def test_per_image_standardization_ignores_exposure_and_round_trips(tmp_path):
    model = pneumonia.build_pneumonia_cnn(32, filters=4, blocks=2, dense_units=0, normalization="per_image")
    images = np.random.default_rng(0).uniform(40, 160, size=(2, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(model(images * 1.5 + 20), model(images), atol=1e-4)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded(images), model(images), atol=1e-6)
    with pytest.raises(ValueError, match="normalization"):
        pneumonia.build_pneumonia_cnn(32, normalization="zscore")


def test_histogram_equalization_is_monotone_spreads_levels_and_matches_tflite(tmp_path):
    narrow = np.random.default_rng(0).uniform(100, 140, size=(2, 32, 32, 1)).astype("float32")
    equalized = pneumonia.HistogramEqualization(stride=1)(narrow).numpy()
    assert equalized.min() == 0.0 and equalized.max() == 255.0
    order = np.argsort(narrow[0].ravel(), kind="stable")
    assert np.all(np.diff(equalized[0].ravel()[order]) >= 0)
    levels = np.random.default_rng(1).integers(100, 140, size=(1, 32, 32, 1)).astype("float32")
    equalization = pneumonia.HistogramEqualization(stride=1)
    np.testing.assert_allclose(equalization(2 * levels - 60), equalization(levels), atol=1e-4)
    model = pneumonia.build_pneumonia_cnn(32, filters=4, blocks=2, dense_units=0, normalization="equalize")
    saved = tmp_path / "saved"
    model.export(str(saved), verbose=False)
    runner = litert.Interpreter(model_content=tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert())
    runner = runner.get_signature_runner()
    (input_name,) = runner.get_input_details()
    (output,) = runner(**{input_name: narrow}).values()
    np.testing.assert_allclose(output, model(narrow), atol=1e-5)
    model.save(tmp_path / "model.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "model.keras")(narrow), model(narrow), atol=1e-6)


def test_ensemble_averages_member_logits_round_trips_and_explains(tmp_path):
    first = tiny_model()
    second = pneumonia.build_pneumonia_cnn(32, filters=4, blocks=2, dense_units=8, normalization="per_image")
    ensemble = pneumonia.build_ensemble([first, second])
    images = np.random.default_rng(0).uniform(0, 255, size=(3, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(ensemble(images), (first(images) + second(images)) / 2.0, atol=1e-6)
    ensemble.save(tmp_path / "ensemble.keras")
    loaded = keras.models.load_model(tmp_path / "ensemble.keras")
    np.testing.assert_allclose(loaded(images), ensemble(images), atol=1e-6)
    assert [member.name for member in pneumonia.ensemble_members(loaded)] == ["member_0", "member_1"]
    heatmaps = inference.grad_cam(loaded, images)
    assert heatmaps.shape == (3, 32, 32) and heatmaps.max() <= 1.0
    with pytest.raises(ValueError, match="different input shapes"):
        pneumonia.build_ensemble([tiny_model(32), tiny_model(48)])
    with pytest.raises(ValueError, match="at least two"):
        pneumonia.build_ensemble([tiny_model()])


def save_member_run(root, run_name, data, image_size=32, seed=0):
    paths = runs.RunPaths("pneumonia", run_name, root / "logs", root / "models").make_dirs()
    runs.save_keras_model(tiny_model(image_size), paths.keras_file)
    config = {"data": str(data), "image_size": image_size, "validation_fraction": 0.25, "seed": seed,
              "batch_size": 4}
    runs.write_json(paths.config_file, config)
    runs.write_json(paths.log_dir / "training_time.json", {"seconds": 60.0, "steps": 10})
    return paths


def test_ensemble_run_chooses_its_threshold_exports_and_loads(tmp_path):
    data = write_kermany(tmp_path / "xray")
    for name in ("first", "second"):
        save_member_run(tmp_path, name, data)
    roots = dict(logs_root=tmp_path / "logs", models_root=tmp_path / "models")
    command = "python scripts/ensemble_pneumonia.py --members first second --run-name both"
    pneumonia_task.build_ensemble_run(["first", "second"], "both", **roots, command=command)
    paths = runs.RunPaths("pneumonia", "both", **roots)
    assert [entry["command"] for entry in provenance.read(paths.log_dir)] == [command]
    assert pneumonia_task.load_threshold(paths.model_dir)["chosen_on"] == "validation split carved from train/"
    report = runs.json.loads((paths.model_dir / "export_formats.json").read_text())
    for format_name in ("savedmodel", "tflite"):
        assert report["formats"][format_name]["max_abs_vs_keras"]["probability"] < 1e-5
    clock = runs.json.loads((paths.log_dir / "training_time.json").read_text())
    assert (clock["seconds"], clock["steps"]) == (120.0, 20)
    model, config, _ = runner.load_run(pneumonia_task.PneumoniaTask(), pneumonia_task.PneumoniaConfig, "both", **roots)
    assert len(pneumonia.ensemble_members(model)) == 2 and config.image_size == 32

    save_member_run(tmp_path, "other-seed", data, seed=1)
    with pytest.raises(ValueError, match="differ in seed"):
        pneumonia_task.build_ensemble_run(["first", "other-seed"], "mixed", **roots)
    with pytest.raises(ValueError, match="missing-run"):
        pneumonia_task.build_ensemble_run(["first", "missing-run"], "mixed", **roots)


def test_cosine_decay_is_refused_beside_the_plateau_schedule():
    config = pneumonia_task.PneumoniaConfig(cosine_decay=True)
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        pneumonia_task.PneumoniaTask().build_data(config)


def test_mixup_blends_image_label_and_weight_with_one_share_per_example():
    labels = tf.constant([[1.0], [0.0], [1.0], [0.0], [0.0], [1.0]])
    images = tf.reshape(labels, [6, 1, 1, 1]) * tf.ones([6, 4, 4, 1]) * 255.0
    weights = tf.reshape(labels, [6]) * 2.0 + 0.5
    mixed_images, mixed_labels, mixed_weights = classification.mixup(images, labels, weights, 0.4, seed=3)
    mixed_labels = np.asarray(mixed_labels)
    np.testing.assert_allclose(np.asarray(mixed_images)[:, :, :, 0], np.broadcast_to(mixed_labels[:, :, None] * 255.0,
                                                                                    (6, 4, 4)), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(mixed_weights), mixed_labels[:, 0] * 2.0 + 0.5, rtol=1e-5)
    assert np.all((mixed_labels >= 0) & (mixed_labels <= 1)) and len(np.unique(mixed_labels.round(4))) > 2
    unchanged = classification.mixup(images, labels, weights, 0.0)
    for before, after in zip((images, labels, weights), unchanged):
        np.testing.assert_array_equal(np.asarray(before), np.asarray(after))


def test_mixup_flag_gives_soft_training_labels_and_hard_validation_labels(tmp_path):
    root = write_kermany(tmp_path / "xray")
    data = classification.build_pneumonia_data(root, 32, 8, validation_fraction=0.25, seed=0, mixup_alpha=0.4)
    _, labels, _ = next(iter(data.make_dataset(0)))
    assert np.any((np.asarray(labels) > 0.01) & (np.asarray(labels) < 0.99))
    for _, validation_labels in data.validation_dataset:
        assert set(np.unique(np.asarray(validation_labels))) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="--mixup"):
        classification.build_pneumonia_data(root, 32, 8, validation_fraction=0.25, mixup_alpha=-1.0)
