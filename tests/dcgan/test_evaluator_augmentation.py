"""The evaluator's training augmentation: flips and shifts, on the training split only."""


import numpy as np
import tensorflow as tf


from pipelines import augment, classification
from tf_models.dcgan import evaluator
from tf_models.dcgan import evaluator_task


def test_flip_and_translate_moves_whole_pixels_and_keeps_the_size():
    images = tf.reshape(tf.range(2 * 6 * 6, dtype=tf.float32), (2, 6, 6, 1))
    shifted = augment.flip_and_translate(images, tf.constant([1, 2]), flip=False, translate=2)
    assert shifted.shape == images.shape
    padded = np.pad(images.numpy(), [(0, 0), (2, 2), (2, 2), (0, 0)], mode="reflect")
    for image, result in zip(padded, shifted.numpy()):
        windows = [image[y:y + 6, x:x + 6] for y in range(5) for x in range(5)]
        assert any(np.array_equal(window, result) for window in windows)
    flipped = augment.flip_and_translate(tf.tile(images[:1], (64, 1, 1, 1)), tf.constant([3, 4]), flip=True)
    same = [np.array_equal(image, images[0]) for image in flipped.numpy()]
    mirrored = [np.array_equal(image, images[0].numpy()[:, ::-1]) for image in flipped.numpy()]
    assert all(a or b for a, b in zip(same, mirrored)) and 10 < sum(mirrored) < 54


def test_augmentation_changes_images_not_labels_and_differs_per_epoch():
    data = classification.build_classification_data("digits", 28, 32, seed=0)
    ordered = data.datasets["test"]
    plain = next(iter(ordered))
    augmented = evaluator.augmented_training(ordered, seed=0, flip=True, translate=3)
    first_epoch, second_epoch = next(iter(augmented)), next(iter(augmented))
    np.testing.assert_array_equal(first_epoch[1], plain[1])
    assert not np.array_equal(first_epoch[0], plain[0])
    assert not np.array_equal(first_epoch[0], second_epoch[0]), "each epoch draws new flips and shifts"
    assert evaluator.augmented_training(ordered, 0) is ordered


def test_the_evaluator_task_augments_the_training_split_only(tmp_path, monkeypatch):
    augmented = []
    real_augmented_training = evaluator.augmented_training

    def spy(dataset, *args):
        result = real_augmented_training(dataset, *args)
        augmented.append(result)
        return result

    monkeypatch.setattr(evaluator, "augmented_training", spy)
    config = evaluator_task.EvaluatorConfig(data="digits", run_name="aug", epochs=1, filters=4, flip=True,
                                            translate=2, models_root=str(tmp_path), logs_root=str(tmp_path / "logs"))
    _, _, card = evaluator_task.train(config, verbose=0)
    assert card["augmentation"] == {"flip": True, "translate": 2}
    data = evaluator_task.EvaluatorTask().build_data(config)
    training = data.make_dataset(0)
    assert augmented and augmented[-1] is not data.test_dataset
    test_images = next(iter(data.test_dataset))[0]
    np.testing.assert_array_equal(test_images, next(iter(data.test_dataset))[0])
    assert training.element_spec[0].shape[1:] == (28, 28, 1)


def test_the_cifar32_preset_uses_flips_and_shifts():
    preset = evaluator_task.PRESETS["cifar32"]
    assert preset["flip"] and preset["translate"] > 0 and preset["image_size"] == 32


def test_the_trained_evaluator_scores_images_as_they_are():
    classifier = evaluator.build_evaluator(28, 1, num_classes=10, filters=4, feature_dim=8)
    scorer = evaluator.feature_and_probability_model(classifier)
    images = tf.random.uniform((4, 28, 28, 1), -1, 1, seed=0)
    first, second = scorer(images, training=False), scorer(images, training=False)
    np.testing.assert_array_equal(first[1], second[1])
    assert not any("random" in layer.name for layer in classifier.layers)
