import numpy as np
import pytest

from pipelines import gan


def take(dataset, count):
    return np.concatenate([batch.numpy() for batch in dataset.take(count)])


def test_batches_are_scaled_resized_and_endless():
    data = gan.build_gan_data("digits", image_size=28, channels=1, batch_size=32)
    batches = take(data.make_dataset(0), 60)  # more than one pass of 1,437 images
    assert batches.shape == (60 * 32, 28, 28, 1)
    assert batches.min() >= -1.0 and batches.max() <= 1.0 and batches.min() < -0.99 and batches.max() > 0.9


def test_each_epoch_has_a_fixed_order_that_differs_between_epochs():
    data = gan.build_gan_data("digits", image_size=28, channels=1, batch_size=16, seed=3)
    np.testing.assert_array_equal(take(data.make_dataset(1), 3), take(data.make_dataset(1), 3))
    assert not np.array_equal(take(data.make_dataset(1), 3), take(data.make_dataset(2), 3))


def test_skip_gives_the_remaining_batches_of_an_epoch():
    data = gan.build_gan_data("digits", image_size=28, channels=3, batch_size=8)
    full = take(data.make_dataset(0), 5)
    resumed = take(data.make_dataset(0).skip(3), 2)
    np.testing.assert_array_equal(full[3 * 8:], resumed)
    assert resumed.shape[-1] == 3


def test_too_few_images_for_a_batch(class_folders):
    with pytest.raises(ValueError, match="fewer than one batch"):
        gan.build_gan_data(str(class_folders), image_size=32, channels=3, batch_size=64)
