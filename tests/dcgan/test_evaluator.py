import dataclasses
import importlib.util
import json
import types

import keras
import numpy as np
import pytest

from pipelines import classification
from tests.model_checks import assert_config_round_trip
from tests.conftest import REPO_ROOT
from tf_models.core import runner
from tf_models.dcgan import evaluator
from tf_models.dcgan import evaluator_task


def load_script():
    spec = importlib.util.spec_from_file_location("train_evaluator", REPO_ROOT / "scripts" / "train_evaluator.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("image_size, channels", [(28, 1), (32, 3), (8, 1)])
def test_shapes(image_size, channels):
    classifier = evaluator.build_evaluator(image_size, channels, num_classes=10, filters=4, feature_dim=16)
    images = np.random.default_rng(0).uniform(-1, 1, size=(3, image_size, image_size, channels)).astype("float32")
    assert classifier(images).shape == (3, 10)
    features, probabilities = evaluator.feature_and_probability_model(classifier)(images)
    assert features.shape == (3, 16)
    assert probabilities.shape == (3, 10)
    np.testing.assert_allclose(np.sum(probabilities, axis=1), 1.0, atol=1e-5)
    assert np.all(np.asarray(features) >= 0)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="too small"):
        evaluator.build_evaluator(4, 1, 10)
    with pytest.raises(ValueError, match="channels"):
        evaluator.build_evaluator(28, 2, 10)
    with pytest.raises(ValueError, match="2 classes"):
        evaluator.build_evaluator(28, 1, 1)


def test_config_round_trip_and_keras_file(tmp_path):
    classifier = evaluator.build_evaluator(16, 3, num_classes=4, filters=4, feature_dim=8)
    assert_config_round_trip(classifier)
    classifier.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    images = np.random.default_rng(0).uniform(-1, 1, size=(2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(loaded(images), classifier(images), atol=1e-6)
    assert loaded.get_layer(evaluator.FEATURES_LAYER).units == 8


def test_classification_data_from_class_folders(class_folders):
    data = classification.build_classification_data(str(class_folders), image_size=16, batch_size=4)
    images, labels = next(iter(data.datasets["train"]))
    assert images.shape == (4, 16, 16, 3) and images.dtype == "float32"
    assert float(np.min(images)) >= -1 and float(np.max(images)) <= 1
    assert data.num_examples == {"train": 12, "test": 6}
    assert data.class_names == ("cat", "dog") and data.channels == 3
    test_labels = np.concatenate([batch_labels for _, batch_labels in data.datasets["test"]])
    np.testing.assert_array_equal(test_labels, [0, 0, 0, 1, 1, 1])


def card(**overrides):
    return {**evaluator.make_card("digits", 28, 1, [str(d) for d in range(10)], 0.9), **overrides}


def test_check_compatible_accepts_the_same_data():
    evaluator.check_compatible(card(), image_size=28, channels=1, dataset="digits")
    folder_card = card(dataset=evaluator.dataset_id("/data/mnist"))
    evaluator.check_compatible(folder_card, image_size=28, channels=1, dataset="../shared/datasets/mnist/")


@pytest.mark.parametrize(
    "image_size, channels, dataset, message",
    [
        (32, 1, "digits", "image_size 28"),
        (28, 3, "digits", "channels 1"),
        (28, 1, "tfds:mnist", "dataset 'digits'"),
    ],
)
def test_check_compatible_refuses_a_mismatched_card(image_size, channels, dataset, message):
    with pytest.raises(ValueError, match=message):
        evaluator.check_compatible(card(), image_size=image_size, channels=channels, dataset=dataset)


def test_card_files(tmp_path):
    path = evaluator.write_card(tmp_path / "card.json", card())
    assert evaluator.read_card(path) == card()
    (tmp_path / "other.json").write_text(json.dumps({"dataset": "digits"}))
    with pytest.raises(ValueError, match="not an evaluator card"):
        evaluator.read_card(tmp_path / "other.json")
    with pytest.raises(ValueError, match="not found"):
        evaluator.read_card(tmp_path / "missing.json")


def test_training_on_digits_beats_chance(tmp_path, capsys):
    script = load_script()
    exit_code = script.main([
        "--data", "digits", "--image-size", "16", "--epochs", "3", "--batch-size", "32", "--filters", "8",
        "--run-name", "tiny", "--models-root", str(tmp_path), "--logs-root", str(tmp_path / "logs"),
    ])
    assert exit_code == 0
    model_dir = tmp_path / "evaluator" / "tiny"
    assert str(model_dir / "model.keras") in capsys.readouterr().out
    classifier, saved_card = evaluator.load_evaluator(model_dir)
    assert saved_card["test_accuracy"] > 0.5
    assert {key: saved_card[key] for key in ("dataset", "image_size", "channels")} == {
        "dataset": "digits", "image_size": 16, "channels": 1,
    }
    assert saved_card["class_names"] == [str(d) for d in range(10)]
    assert classifier.input_shape == (None, 16, 16, 1)


def test_cosine_decay_follows_the_time_budget_not_the_epochs(tmp_path):
    """With a budget the rate reaches 0 when the budget ends, however few of the epochs that allows."""
    config = evaluator_task.EvaluatorConfig(learning_rate=0.01, epochs=60, cosine_decay=True, time_budget_minutes=10)
    task = evaluator_task.EvaluatorTask()
    classifier = evaluator.build_evaluator(16, 1, 10, filters=4)
    classifier.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mse")
    paths = types.SimpleNamespace(log_dir=tmp_path)
    assert runner.schedules(task, classifier, paths, dataclasses.replace(config, cosine_decay=False)) == []
    (decay,) = runner.schedules(task, classifier, paths, config)
    (tmp_path / "training_time.json").write_text(json.dumps({"seconds": 300.0, "steps": 100}))
    decay.set_params({"steps": 10})
    decay.on_train_begin()
    decay.on_epoch_begin(1)
    decay.on_train_batch_begin(0)
    assert float(classifier.optimizer.learning_rate) == pytest.approx(0.005, rel=1e-3)
    decay.recorded_seconds = 600.0
    decay.on_train_batch_begin(1)
    assert float(classifier.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)
