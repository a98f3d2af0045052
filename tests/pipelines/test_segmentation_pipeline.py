import imageio.v3 as iio
import numpy as np
import PIL.Image
import pytest

from pipelines import segmentation
from tests.conftest import shared_dataset

HEIGHT, WIDTH = 16, 24


def car_mask(index):
    """0/1 mask with a rectangle that moves with `index`."""
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    mask[4:12, 2 + index % 8 : 14 + index % 8] = 1
    return mask


def write_mask(path, mask, encoding):
    if encoding == "palette_gif":
        image = PIL.Image.fromarray(mask, mode="P")
        image.putpalette([0, 0, 0, 255, 255, 255])
        image.save(path)
    elif encoding == "zero_one":
        iio.imwrite(path, mask)
    else:
        iio.imwrite(path, mask * 255)


def write_carvana(root, cars=("car0", "car1", "car2", "car3", "car4"), angles=(1, 2, 3), encoding="palette_gif"):
    extension = ".png" if encoding == "zero_255_png" else ".gif"
    (root / "train").mkdir(parents=True, exist_ok=True)
    (root / "train_masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for car_index, car in enumerate(cars):
        for angle in angles:
            mask = car_mask(car_index + angle)
            image = rng.integers(0, 100, size=(HEIGHT, WIDTH, 3), dtype=np.uint8) + 150 * mask[..., None]
            iio.imwrite(root / "train" / f"{car}_{angle:02d}.jpg", image.astype(np.uint8), quality=95)
            write_mask(root / "train_masks" / f"{car}_{angle:02d}_mask{extension}", mask, encoding)
    return root


def write_membrane(root, count=6):
    (root / "image").mkdir(parents=True)
    (root / "label").mkdir(parents=True)
    for index in range(count):
        mask = car_mask(index)
        iio.imwrite(root / "image" / f"{index}.png", (mask * 200 + 20).astype(np.uint8))
        iio.imwrite(root / "label" / f"{index}.png", mask * 255)
    return root


def all_batches(dataset):
    images, masks = zip(*[(image.numpy(), mask.numpy()) for image, mask in dataset])
    return np.concatenate(images), np.concatenate(masks)


def take(dataset, count):
    return all_batches(dataset.take(count))


def test_carvana_pairs_by_id_and_groups_by_car(tmp_path):
    pairs = segmentation.find_pairs(write_carvana(tmp_path / "carvana"))
    assert len(pairs) == 15
    assert pairs[0].example_id == "car0_01" and pairs[0].group == "car0"
    assert pairs[0].mask_path.name == "car0_01_mask.gif"
    assert {pair.group for pair in pairs} == {f"car{index}" for index in range(5)}


def test_png_masks_and_membrane_layout(tmp_path):
    pairs = segmentation.find_pairs(write_carvana(tmp_path / "carvana", encoding="zero_255_png"))
    assert pairs[-1].mask_path.name == "car4_03_mask.png"
    pairs = segmentation.find_pairs(write_membrane(tmp_path / "membrane"))
    assert [pair.example_id for pair in pairs] == [str(index) for index in range(6)]
    assert len({pair.group for pair in pairs}) == 6


@pytest.mark.parametrize("encoding", ["palette_gif", "zero_one", "zero_255_png"])
def test_masks_are_binarised_whatever_their_stored_values(tmp_path, encoding):
    root = write_carvana(tmp_path / "carvana", encoding=encoding)
    data = segmentation.build_segmentation_data(
        str(root), image_size=(HEIGHT, WIDTH), batch_size=2, validation_fraction=0.4, seed=0
    )
    images, masks = all_batches(data.validation_dataset)
    assert images.shape == (data.num_validation, HEIGHT, WIDTH, 3) and masks.shape[-1] == 1
    expected = [car_mask(int(example_id[3]) + int(example_id[-2:])) for example_id in data.validation_ids]
    np.testing.assert_array_equal(masks[..., 0], np.stack(expected))
    assert 0.0 <= images.min() and images.max() <= 1.0


def test_image_without_a_mask(tmp_path):
    root = write_carvana(tmp_path / "carvana")
    (root / "train_masks" / "car2_02_mask.gif").unlink()
    with pytest.raises(ValueError, match=r"car2_02\.jpg: no mask"):
        segmentation.find_pairs(root)


def test_mask_without_an_image(tmp_path):
    root = write_carvana(tmp_path / "carvana")
    (root / "train" / "car1_03.jpg").unlink()
    with pytest.raises(ValueError, match=r"car1_03_mask\.gif: mask without an image"):
        segmentation.find_pairs(root)


def test_mask_not_named_like_its_image(tmp_path):
    root = write_carvana(tmp_path / "carvana")
    (root / "train_masks" / "car1_03_mask.gif").rename(root / "train_masks" / "car1_03.gif")
    with pytest.raises(ValueError, match=r"car1_03\.gif: mask names must end with '_mask'"):
        segmentation.find_pairs(root)


def test_empty_folder_and_wrong_layout(tmp_path):
    (tmp_path / "empty" / "train").mkdir(parents=True)
    (tmp_path / "empty" / "train_masks").mkdir()
    with pytest.raises(ValueError, match=r"train: no image files"):
        segmentation.find_pairs(tmp_path / "empty")
    (tmp_path / "other" / "images").mkdir(parents=True)
    with pytest.raises(ValueError, match="expected train/ \\+ train_masks/"):
        segmentation.find_pairs(tmp_path / "other")
    with pytest.raises(ValueError, match="folder not found"):
        segmentation.find_pairs(tmp_path / "missing")


def test_mask_whose_size_differs_from_its_image(tmp_path):
    root = write_carvana(tmp_path / "carvana")
    write_mask(root / "train_masks" / "car3_01_mask.gif", np.zeros((HEIGHT, WIDTH + 2), np.uint8), "palette_gif")
    with pytest.raises(ValueError, match=r"car3_01_mask\.gif: mask is 26x16 .* car3_01\.jpg is 24x16"):
        segmentation.build_segmentation_data(str(root), image_size=(HEIGHT, WIDTH), batch_size=2)


def test_broken_mask_file(tmp_path):
    root = write_carvana(tmp_path / "carvana")
    (root / "train_masks" / "car0_02_mask.gif").write_bytes(b"GIF89a not really")
    with pytest.raises(ValueError, match=r"car0_02_mask\.gif: cannot be read"):
        segmentation.build_segmentation_data(str(root), image_size=(HEIGHT, WIDTH), batch_size=2)


def test_split_keeps_every_car_on_one_side_and_is_deterministic():
    pairs = segmentation.find_pairs(shared_dataset("carvana_hr"))
    train, validation = segmentation.split_by_group(pairs, 0.2, seed=0)
    train_cars, validation_cars = {pair.group for pair in train}, {pair.group for pair in validation}
    assert not train_cars & validation_cars
    assert len(train) + len(validation) == len(pairs) == 1504
    assert len(validation_cars) == 19 and len(validation) == 19 * 16
    again, _ = segmentation.split_by_group(pairs, 0.2, seed=0)
    assert again == train
    other_train, _ = segmentation.split_by_group(pairs, 0.2, seed=1)
    assert other_train != train


def test_split_needs_two_groups(tmp_path):
    pairs = segmentation.find_pairs(write_carvana(tmp_path / "carvana", cars=("car0",)))
    with pytest.raises(ValueError, match="at least two groups"):
        segmentation.split_by_group(pairs, 0.2, seed=0)
    assert segmentation.split_by_group(pairs, 0.0, seed=0) == (pairs, [])


def test_real_carvana_gives_binary_masks_of_the_right_shape():
    data = segmentation.build_segmentation_data(
        str(shared_dataset("carvana")), image_size=(32, 48), batch_size=16, seed=0
    )
    assert data.num_examples + data.num_validation == 278 and data.channels == 3
    images, masks = take(data.make_dataset(0), 2)
    assert images.shape == (32, 32, 48, 3) and masks.shape == (32, 32, 48, 1)
    assert set(np.unique(masks)) == {0.0, 1.0} and 0.1 < masks.mean() < 0.4
    images, masks = all_batches(data.validation_dataset)
    assert images.shape == (data.num_validation, 32, 48, 3) and set(np.unique(masks)) == {0.0, 1.0}
    train_cars = {example_id.split("_")[0] for example_id in data.train_ids}
    assert not train_cars & {example_id.split("_")[0] for example_id in data.validation_ids}


def test_real_membrane_gives_grayscale_images_and_binary_masks():
    data = segmentation.build_segmentation_data(
        str(shared_dataset("membrane")), image_size=(64, 64), batch_size=4, validation_fraction=0.2, seed=0
    )
    assert (data.num_examples, data.num_validation, data.channels) == (24, 6, 1)
    images, masks = all_batches(data.validation_dataset)
    assert images.shape == (6, 64, 64, 1) and masks.shape == (6, 64, 64, 1)
    assert set(np.unique(masks)) == {0.0, 1.0} and 0.6 < masks.mean() < 0.9


def test_each_epoch_is_endless_and_fixed_and_epochs_differ(tmp_path):
    root = write_carvana(tmp_path / "carvana")
    data = segmentation.build_segmentation_data(
        str(root), image_size=(HEIGHT, WIDTH), batch_size=4, validation_fraction=0.2, seed=3
    )
    first, first_masks = take(data.make_dataset(1), 6)
    assert first.shape[0] == 24 > data.num_examples
    again, again_masks = take(data.make_dataset(1), 6)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first_masks, again_masks)
    other, _ = take(data.make_dataset(2), 6)
    assert not np.array_equal(first, other)


def test_augmentation_keeps_image_and_mask_aligned(tmp_path):
    root = write_membrane(tmp_path / "membrane", count=8)
    augmentation = segmentation.Augmentation(max_shift=0.2, max_zoom=0.2, max_brightness=0.0)
    data = segmentation.build_segmentation_data(
        str(root), image_size=(HEIGHT, WIDTH), batch_size=8, validation_fraction=0.0, augmentation=augmentation
    )
    images, masks = take(data.make_dataset(0), 4)
    unchanged = segmentation.build_segmentation_data(
        str(root), image_size=(HEIGHT, WIDTH), batch_size=8, validation_fraction=0.0, augmentation=None
    )
    plain_images, _ = take(unchanged.make_dataset(0), 4)
    assert not np.allclose(images, plain_images)
    agreement = np.mean((images > 0.5) == (masks > 0.5))
    assert agreement > 0.97, agreement
    assert set(np.unique(masks)) <= {0.0, 1.0}


def test_too_few_pairs_for_a_batch(tmp_path):
    root = write_carvana(tmp_path / "carvana")
    with pytest.raises(ValueError, match="fewer than one batch of 64"):
        segmentation.build_segmentation_data(str(root), image_size=(HEIGHT, WIDTH), batch_size=64)


def test_elastic_deformation_moves_image_and_mask_together():
    import tensorflow as tf

    from pipelines import segmentation

    image = tf.cast(tf.reshape(tf.range(48 * 64) % 64, [48, 64, 1]), tf.float32) / 64.0
    mask = tf.cast(image > 0.5, tf.float32)
    warped_image, warped_mask = segmentation.elastic_deformation(image, mask, [1, 2], sigma=6.0)
    assert warped_image.shape == image.shape and warped_mask.shape == mask.shape
    assert float(tf.reduce_mean(tf.abs(warped_image - image))) > 0.005
    assert set(np.unique(warped_mask.numpy())) <= {0.0, 1.0}
    agreement = np.mean((warped_image.numpy() > 0.5) == (warped_mask.numpy() > 0.5))
    assert agreement > 0.97
    again, _ = segmentation.elastic_deformation(image, mask, [1, 2], sigma=6.0)
    np.testing.assert_array_equal(again.numpy(), warped_image.numpy())
