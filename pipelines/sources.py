"""Data sources named by `--data`, each returning (image, label) examples.

- `digits`: scikit-learn's bundled 8x8 handwritten digits (1,797 real scans),
  the embedded default for the demo and the tests.
- `tfds:NAME`: a TensorFlow Datasets name, for users online or with a
  prepared `--tfds-data-dir`.
- a folder, recognised by its layout (see `LAYOUTS`).

Every source returns an `ImageSplit` whose dataset yields
(uint8 image [H, W, C], int32 label).
"""

import dataclasses
import gzip
import pathlib
import zlib

import numpy as np
import tensorflow as tf

from pipelines import images

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SPLIT_FOLDERS = ("train", "val", "test")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")
CLASS_NAMES_FILE = "class_names.txt"


@dataclasses.dataclass
class ImageSplit:
    """One split of a source: examples and what is known about them."""

    dataset: tf.data.Dataset
    num_examples: int
    class_names: tuple
    channels: int
    description: str
    paths: tuple = ()


# ---------------------------------------------------------------- digits


def load_digits(split="train", channels=1):
    """scikit-learn's digits: a stratified 80/20 train/test split, seed 0."""
    from sklearn import datasets, model_selection

    digits = datasets.load_digits()
    pixels = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    train_index, test_index = model_selection.train_test_split(
        np.arange(len(pixels)), test_size=0.2, random_state=0, stratify=digits.target
    )
    index = _pick_split(split, {"train": train_index, "test": test_index}, "digits")
    return _from_arrays(
        pixels[index], digits.target[index], tuple(str(d) for d in range(10)), channels,
        f"scikit-learn digits ({split})",
    )


# ---------------------------------------------------------------- idx files


def _open_maybe_gzip(path):
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")


def _find_idx(root, stem):
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.is_file():
            return candidate
    raise ValueError(f"{root}: missing {stem}(.gz) for an MNIST-style idx folder.")


def read_idx(path):
    """Reads an idx file (images: magic 2051, labels: magic 2049) into NumPy."""
    try:
        with _open_maybe_gzip(path) as file:
            data = file.read()
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"{path}: cannot be read as an idx file ({error}).") from error
    if len(data) < 8:
        raise ValueError(f"{path}: too short for an idx header.")
    magic = int.from_bytes(data[:4], "big")
    count = int.from_bytes(data[4:8], "big")
    if magic == 2049:
        shape, offset = (count,), 8
    elif magic == 2051:
        rows, columns = int.from_bytes(data[8:12], "big"), int.from_bytes(data[12:16], "big")
        shape, offset = (count, rows, columns), 16
    else:
        raise ValueError(f"{path}: unknown idx magic number {magic} (expected 2049 or 2051).")
    expected = int(np.prod(shape))
    if len(data) - offset != expected:
        raise ValueError(
            f"{path}: header says {shape} ({expected} bytes) but the file holds {len(data) - offset}."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def load_idx(root, split="train", channels=1):
    root = pathlib.Path(root)
    stems = IDX_FILES.get(split)
    if stems is None:
        raise ValueError(f"{root}: idx folders have the splits train and test, not {split!r}.")
    pixels = read_idx(_find_idx(root, stems[0]))
    labels = read_idx(_find_idx(root, stems[1]))
    if pixels.ndim != 3 or labels.ndim != 1 or len(pixels) != len(labels):
        raise ValueError(f"{root}: {split} has {len(pixels)} images but {len(labels)} labels.")
    return _from_arrays(
        pixels[..., None], labels, idx_class_names(root, int(labels.max()) + 1), channels,
        f"idx files in {root} ({split})",
    )


def idx_class_names(root, count):
    """The class names of an idx folder: its `class_names.txt` (one per line), Fashion-MNIST's, or the digits.

    A folder whose name contains `fashion` holds Fashion-MNIST (the Zalando
    files have the same names as MNIST's).
    """
    names_file = pathlib.Path(root) / CLASS_NAMES_FILE
    if names_file.is_file():
        names = tuple(line.strip() for line in names_file.read_text().splitlines() if line.strip())
        if len(names) < count:
            raise ValueError(f"{names_file}: {len(names)} class names for {count} labels; give one name per line.")
        return names
    if "fashion" in pathlib.Path(root).resolve().name.lower() and count <= len(FASHION_MNIST_CLASSES):
        return FASHION_MNIST_CLASSES
    return tuple(str(label) for label in range(count))


# ---------------------------------------------------------------- class folders


def _class_root(root, split):
    """`root/<split>/` when the folder has split subfolders, else `root` for train."""
    has_splits = any((root / name).is_dir() for name in SPLIT_FOLDERS)
    if has_splits:
        split_root = root / split
        if not split_root.is_dir():
            present = [name for name in SPLIT_FOLDERS if (root / name).is_dir()]
            raise ValueError(f"{root}: no {split!r} split folder (found: {', '.join(present)}).")
        return split_root, root / "train"
    if split != "train":
        raise ValueError(f"{root}: a flat class-folder layout has only a train split, not {split!r}.")
    return root, root


def class_names_of(folder):
    names = sorted(p.name for p in pathlib.Path(folder).iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise ValueError(f"{folder}: no class subfolders; expected {folder}/<class>/<image files>.")
    return tuple(names)


def list_class_folder(root, split="train", class_names=None, check=True):
    """(paths, labels, class_names) of `root[/<split>]/<class>/*`.

    `check=False` lists image files without checking their headers, for
    callers that validate (and may skip) files themselves.
    """
    root = pathlib.Path(root)
    split_root, train_root = _class_root(root, split)
    class_names = tuple(class_names or class_names_of(train_root))
    unknown = sorted(set(class_names_of(split_root)) - set(class_names))
    if unknown:
        raise ValueError(
            f"{split_root}: unknown class folder(s) {unknown}; the classes are {list(class_names)}."
        )
    paths, labels = [], []
    for label, name in enumerate(class_names):
        folder = split_root / name
        files = images.list_images(folder, check=check) if folder.is_dir() else []
        if not files:
            raise ValueError(f"{folder}: class {name!r} has no images in split {split!r}.")
        paths += [str(p) for p in files]
        labels += [label] * len(files)
    return paths, np.asarray(labels, dtype=np.int32), class_names


def load_class_folders(root, split="train", channels=None):
    paths, labels, class_names = list_class_folder(root, split)
    channels = channels or images.colour_channels(images.read_image(paths[0]).shape[-1])
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels)).map(
        lambda path, label: (images.decode_path(path, channels), label),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ImageSplit(dataset, len(paths), class_names, channels, f"class folders in {root} ({split})", tuple(paths))


# ---------------------------------------------------------------- TFDS


def load_tfds(name, split="train", channels=None, data_dir=None):
    import tensorflow_datasets as tfds

    try:
        dataset, info = tfds.load(name, split=split, as_supervised=True, with_info=True, data_dir=data_dir)
    except Exception as error:
        raise ValueError(
            f"tfds:{name} could not be loaded ({type(error).__name__}: {error}). TFDS downloads the "
            "data on first use; offline, prepare it with --tfds-data-dir or pass a local folder."
        ) from error
    image_channels = info.features["image"].shape[-1]
    class_names = tuple(info.features["label"].names)
    dataset = dataset.map(
        lambda image, label: (images.convert_channels(image, channels or image_channels), tf.cast(label, tf.int32)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ImageSplit(
        dataset, _tfds_count(info, split, dataset), class_names, channels or image_channels, f"tfds:{name} ({split})"
    )


def _tfds_count(info, split, dataset):
    """The split size from the dataset info, or counted (prepared folders without metadata)."""
    try:
        return info.splits[split].num_examples
    except KeyError:
        count = int(dataset.cardinality())
        return count if count >= 0 else int(dataset.reduce(0, lambda total, _: total + 1))


def resized_cache(split, image_size, channels):
    """(uint8 image resized to `image_size` with `channels`, label), cached in memory.

    The cache is filled by one full pass here: an epoch shorter than the data
    would otherwise discard a partly filled cache and decode again.
    """

    def prepare(image, label):
        image = images.resize(images.convert_channels(image, channels), image_size)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), label

    cached = split.dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).cache()
    images.fill_cache(cached, split.paths, split.description)
    return cached


# ---------------------------------------------------------------- dispatch


def _is_idx_folder(root):
    return any((root / f"{IDX_FILES['train'][0]}{ext}").is_file() for ext in ("", ".gz"))


def _is_class_folder(root):
    candidates = [root / name for name in SPLIT_FOLDERS if (root / name).is_dir()] or [root]
    return any(p.is_dir() and not p.name.startswith(".") for p in candidates[0].iterdir())


LAYOUTS = {
    "idx": (_is_idx_folder, load_idx, "MNIST/Fashion-MNIST idx files (train-images-idx3-ubyte[.gz], ...)"),
    "class_folders": (_is_class_folder, load_class_folders, "class folders <root>[/{train,test}]/<class>/<images>"),
}


def detect_layout(root):
    root = pathlib.Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: data folder not found (give 'digits', 'tfds:NAME' or a folder).")
    for name, (detect, _, _) in LAYOUTS.items():
        if detect(root):
            return name
    expected = "; ".join(description for _, _, description in LAYOUTS.values())
    raise ValueError(f"{root}: unrecognised folder layout. Expected one of: {expected}.")


def load(data, split="train", channels=None, tfds_data_dir=None):
    """Loads one split of the source named by `data` (see the module docstring)."""
    if data == "digits":
        return load_digits(split, channels or 1)
    if data.startswith("tfds:"):
        return load_tfds(data[len("tfds:"):], split, channels, tfds_data_dir)
    layout = detect_layout(data)
    return LAYOUTS[layout][1](pathlib.Path(data), split, channels)


def sample(split, count, seed=0):
    """`count` examples of `split` drawn without replacement by a seeded permutation, kept in their order.

    The whole split when `count` is at least its size.
    """
    if count >= split.num_examples:
        return split
    chosen = np.sort(np.random.default_rng(seed).permutation(split.num_examples)[:count])
    keep = np.zeros(split.num_examples, bool)
    keep[chosen] = True
    keep = tf.constant(keep)
    dataset = split.dataset.enumerate().filter(lambda index, example: keep[index]).map(lambda index, example: example)
    return dataclasses.replace(
        split, dataset=dataset, num_examples=count,
        paths=tuple(split.paths[index] for index in chosen) if split.paths else (),
        description=f"{split.description}, {count} drawn at random (seed {seed})",
    )


def _pick_split(split, indices, name):
    if split not in indices:
        raise ValueError(f"{name} has the splits {', '.join(indices)}, not {split!r}.")
    return indices[split]


def _from_arrays(pixels, labels, class_names, channels, description):
    channels = channels or pixels.shape[-1]
    pixels = images.convert_channels_numpy(pixels, channels)
    dataset = tf.data.Dataset.from_tensor_slices((pixels, np.asarray(labels, dtype=np.int32)))
    return ImageSplit(dataset, len(pixels), class_names, channels, description)
