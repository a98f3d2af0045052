import numpy as np
import pytest

from pipelines import images, sources
from tests.conftest import shared_dataset, write_class_folders, write_idx


def first_example(split):
    image, label = next(iter(split.dataset.take(1)))
    return image.numpy(), int(label)


def test_digits_is_a_stratified_split_of_the_bundled_scans():
    train = sources.load("digits", "train")
    test = sources.load("digits", "test")
    assert train.num_examples + test.num_examples == 1797
    assert test.num_examples == 360
    image, label = first_example(train)
    assert image.shape == (8, 8, 1) and image.dtype == np.uint8 and image.max() > 200
    assert 0 <= label < 10 and train.class_names == tuple(str(d) for d in range(10))


def test_digits_rejects_unknown_split():
    with pytest.raises(ValueError, match="validation"):
        sources.load("digits", "validation")


@pytest.mark.parametrize("compress", [True, False])
def test_idx_files_gz_or_raw(tmp_path, compress):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    labels = np.arange(12) % 3
    write_idx(tmp_path, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", pixels, labels, compress)
    split = sources.load(str(tmp_path))
    assert split.num_examples == 12 and split.channels == 1
    batch = next(iter(split.dataset.batch(12)))
    np.testing.assert_array_equal(batch[0].numpy()[..., 0], pixels)
    np.testing.assert_array_equal(batch[1].numpy(), labels)


def test_idx_test_split_and_rgb_conversion(idx_folder):
    root, pixels, _ = idx_folder
    split = sources.load(str(root), "test", channels=3)
    image, _ = first_example(split)
    assert split.num_examples == 20 and image.shape == (28, 28, 3)
    np.testing.assert_array_equal(image[..., 0], pixels[0])


def test_idx_with_truncated_file_names_the_file(idx_folder):
    root, _, _ = idx_folder
    broken = root / "train-labels-idx1-ubyte.gz"
    broken.write_bytes(broken.read_bytes()[:10])
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz"):
        sources.load(str(root))


def test_idx_count_mismatch(tmp_path):
    write_idx(tmp_path, "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              np.zeros((5, 28, 28), np.uint8), np.zeros(5, np.uint8))
    write_idx(tmp_path / "other", "x", "train-labels-idx1-ubyte", np.zeros((4, 28, 28), np.uint8), np.zeros(4, np.uint8))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes((tmp_path / "other" / "train-labels-idx1-ubyte.gz").read_bytes())
    with pytest.raises(ValueError, match="5 images but 4 labels"):
        sources.load(str(tmp_path))


def test_class_folders_with_splits(class_folders):
    train = sources.load(str(class_folders), "train")
    test = sources.load(str(class_folders), "test")
    assert train.class_names == ("cat", "dog") and train.num_examples == 12 and test.num_examples == 6
    labels = [int(label) for _, label in train.dataset]
    assert labels == [0] * 6 + [1] * 6
    image, _ = first_example(train)
    assert image.shape == (20, 24, 3)


def test_a_sample_is_a_seeded_ordered_subset_with_its_paths(class_folders):
    train = sources.load(str(class_folders), "train")
    every_image = [image.numpy() for image, _ in train.dataset]
    sample = sources.sample(train, 5, seed=3)
    chosen = [image.numpy() for image, _ in sample.dataset]
    assert sample.num_examples == len(chosen) == 5 and len(sample.paths) == 5
    positions = [train.paths.index(path) for path in sample.paths]
    assert positions == sorted(positions)
    for position, image in zip(positions, chosen):
        np.testing.assert_array_equal(image, every_image[position])
    assert sample.paths == sources.sample(train, 5, seed=3).paths != sources.sample(train, 5, seed=4).paths
    assert sources.sample(train, 12) is train


def test_flat_class_folders_are_the_train_split(tmp_path):
    write_class_folders(tmp_path, classes=("a", "b", "c"), per_class=2, channels=1, extension=".jpg")
    split = sources.load(str(tmp_path), channels=1)
    assert split.num_examples == 6 and split.channels == 1
    with pytest.raises(ValueError, match="only a train split"):
        sources.load(str(tmp_path), "test")


def test_junk_files_are_ignored(class_folders):
    (class_folders / "train" / "cat" / ".DS_Store").write_bytes(b"junk")
    (class_folders / "train" / "cat" / "Thumbs.db").write_bytes(b"junk")
    (class_folders / "train" / "cat" / "notes.txt").write_text("not an image")
    assert sources.load(str(class_folders)).num_examples == 12


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"this is not a png file"), "not a valid PNG"),
    ],
)
def test_bad_image_file_is_named(class_folders, damage, message):
    bad = class_folders / "train" / "dog" / "002.png"
    damage(bad)
    with pytest.raises(ValueError, match=message) as error:
        sources.load(str(class_folders))
    assert "002.png" in str(error.value)


def test_empty_class_folder(class_folders):
    for path in (class_folders / "test" / "dog").iterdir():
        path.unlink()
    with pytest.raises(ValueError, match="'dog' has no images"):
        sources.load(str(class_folders), "test")


def test_unknown_class_in_test_split(class_folders):
    write_class_folders(class_folders / "test", classes=("bird",), per_class=1)
    with pytest.raises(ValueError, match="unknown class folder"):
        sources.load(str(class_folders), "test")


def test_missing_and_unrecognised_folders(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        sources.load(str(tmp_path / "nope"))
    (tmp_path / "loose.txt").write_text("x")
    with pytest.raises(ValueError, match="unrecognised folder layout"):
        sources.load(str(tmp_path))


def test_tfds_source_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=7):
        split = sources.load("tfds:mnist", "train")
        image, label = first_example(split)
    assert split.num_examples == 7 and image.shape == (28, 28, 1) and split.class_names[0] == "0"


def test_tfds_unavailable_gives_value_error(tmp_path):
    with pytest.raises(ValueError, match="tfds:no_such_dataset_xyz"):
        sources.load("tfds:no_such_dataset_xyz", tfds_data_dir=str(tmp_path))


def test_read_image_converts_rgba_and_gray(tmp_path):
    import imageio.v3 as iio

    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0] = 255
    iio.imwrite(tmp_path / "a.png", rgba)
    assert images.read_image(tmp_path / "a.png", channels=3).shape == (4, 5, 3)
    gray = images.read_image(tmp_path / "a.png", channels=1)
    assert gray.shape == (4, 5, 1) and int(gray.max()) == 76


def test_real_mnist_idx():
    split = sources.load(str(shared_dataset("mnist")), "test")
    assert split.num_examples == 8000
    image, label = first_example(split)
    assert image.shape == (28, 28, 1) and label == 7


def test_real_cifar10_class_folders():
    split = sources.load(str(shared_dataset("cifar10")), "test")
    assert split.num_examples == 3000 and len(split.class_names) == 10 and split.channels == 3
    image, _ = first_example(split)
    assert image.shape == (32, 32, 3)


def test_an_idx_file_with_a_corrupt_deflate_stream_is_named(tmp_path):
    import gzip

    data = bytearray(gzip.compress((2049).to_bytes(4, "big") + (300).to_bytes(4, "big") + bytes(range(256)) * 2))
    data[20:40] = b"\xff" * 20
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz: cannot be read as an idx file"):
        sources.read_idx(path)
