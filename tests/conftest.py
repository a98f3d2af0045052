"""Shared fixtures: real data from ../shared/datasets, generated image folders, clean Keras state."""

import gzip
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import imageio.v3 as iio  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tf_models.core import devices  # noqa: E402

devices.initialize()  # no spurious cuInit error in the test log of a machine without a GPU

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATASETS = pathlib.Path(
    os.environ.get("SHARED_DATASETS", REPO_ROOT.parent / "shared" / "datasets")
)


def shared_dataset(name):
    """Path of a real data subset; skips (or fails under REQUIRE_SHARED_DATA=1) when absent."""
    path = SHARED_DATASETS / name
    if not path.is_dir():
        message = f"real data folder {path} is missing (set SHARED_DATASETS to its parent folder)"
        if os.environ.get("REQUIRE_SHARED_DATA") == "1":
            pytest.fail(message + "; REQUIRE_SHARED_DATA=1 requires it")
        pytest.skip(message)
    return path


@pytest.fixture(autouse=True)
def main_module_restored():
    """Streamlit's AppTest leaves the app script as `__main__`, which every later spawned process would run."""
    main_module = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main_module


@pytest.fixture(autouse=True)
def float32_policy_and_seed():
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(0)
    yield
    keras.mixed_precision.set_global_policy("float32")


def write_idx(folder, split_stem_images, split_stem_labels, images, labels, compress=True):
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    count, rows, columns = images.shape
    image_bytes = (2051).to_bytes(4, "big") + count.to_bytes(4, "big") + rows.to_bytes(4, "big")
    image_bytes += columns.to_bytes(4, "big") + images.astype(np.uint8).tobytes()
    label_bytes = (2049).to_bytes(4, "big") + count.to_bytes(4, "big") + labels.astype(np.uint8).tobytes()
    for stem, payload in ((split_stem_images, image_bytes), (split_stem_labels, label_bytes)):
        if compress:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / stem).write_bytes(payload)
    return folder


@pytest.fixture
def idx_folder(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
    labels = np.arange(40) % 10
    write_idx(tmp_path / "idx", "train-images-idx3-ubyte", "train-labels-idx1-ubyte", images, labels)
    write_idx(tmp_path / "idx", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", images[:20], labels[:20])
    return tmp_path / "idx", images, labels


def write_class_folders(root, classes=("cat", "dog"), per_class=6, size=(20, 24), channels=3, extension=".png"):
    rng = np.random.default_rng(1)
    root = pathlib.Path(root)
    for name in classes:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            image = rng.integers(0, 256, size=size + (channels,), dtype=np.uint8)
            iio.imwrite(folder / f"{index:03d}{extension}", image if channels == 3 else image[..., 0])
    return root


@pytest.fixture
def class_folders(tmp_path):
    root = tmp_path / "classes"
    write_class_folders(root / "train")
    write_class_folders(root / "test", per_class=3)
    return root
