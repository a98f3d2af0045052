"""Image files: listing, validation, decoding and resizing.

Decoding in `tf.data` uses `tf.io.decode_image` (PNG, JPEG, GIF, BMP) and, for
DICOM files (`.dcm`, see `pipelines.dicom`), pydicom through `tf.numpy_function`.
Files are checked before a pipeline is built, so a broken file is reported by
name up front instead of failing in the middle of an epoch.
"""

import logging
import pathlib
import re

import imageio.v3 as iio
import numpy as np
import tensorflow as tf

from pipelines import dicom

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".pgm") + dicom.DICOM_EXTENSIONS
JUNK_FILES = {".ds_store", "thumbs.db", "desktop.ini"}
_SIGNATURES = {
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".jpg": (b"\xff\xd8\xff",),
    ".jpeg": (b"\xff\xd8\xff",),
    ".gif": (b"GIF87a", b"GIF89a"),
    ".bmp": (b"BM",),
    ".pgm": (b"P5", b"P2"),
}


def is_image_path(path):
    return pathlib.Path(path).suffix.lower() in IMAGE_EXTENSIONS


def check_image_file(path):
    """Raises `ValueError` naming the file if it is empty or not what its extension says."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found.")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{path}: the file is empty (0 bytes).")
    with open(path, "rb") as file:
        head = file.read(132)
    if dicom.is_dicom_path(path):
        if not dicom.has_dicom_marker(head):
            raise ValueError(f"{path}: not a DICOM file (no 'DICM' marker at byte 128).")
        return path
    signatures = _SIGNATURES.get(path.suffix.lower())
    if signatures and not any(head.startswith(signature) for signature in signatures):
        raise ValueError(
            f"{path}: not a valid {path.suffix.lower()[1:].upper()} file "
            f"(its first bytes are {head[:8]!r})."
        )
    return path


def list_images(folder, check=True):
    """Sorted image files directly inside `folder`.

    Hidden files and desktop junk (`.DS_Store`, `Thumbs.db`) are ignored;
    other non-image files are skipped with a warning.
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: folder not found.")
    images, skipped = [], []
    for path in sorted(folder.iterdir()):
        if path.is_dir() or path.name.startswith(".") or path.name.lower() in JUNK_FILES:
            continue
        (images if is_image_path(path) else skipped).append(path)
    if skipped:
        logger.warning(
            "%s: skipped %d non-image file(s): %s", folder, len(skipped), ", ".join(p.name for p in skipped[:5])
        )
    if check:
        for path in images:
            check_image_file(path)
    return images


def readable_images(paths):
    """(readable paths, [(path, reason)]) after a full decode of each file with PIL."""
    from PIL import Image

    readable, skipped = [], []
    for path in paths:
        try:
            if dicom.is_dicom_path(path):
                dicom.read_dicom(path)
            else:
                with Image.open(path) as image:
                    image.load()
            readable.append(path)
        except Exception as error:  # PIL raises many types for broken files
            skipped.append((str(path), f"{type(error).__name__}: {error}"))
    return readable, skipped


def fill_cache(dataset, paths, description):
    """Runs one pass over a cached `dataset` decoded from `paths`, so a bad file stops the run here.

    A file whose header is fine but whose pixels are not (a truncated JPEG)
    fails in TensorFlow's decoder, which does not say which file it was; the
    files are then decoded one by one (with PIL, then with TensorFlow, which
    refuses some files PIL reads, such as CMYK JPEGs) and a `ValueError`
    names the bad ones. Returns `dataset` with its cache filled.
    """
    try:
        dataset.reduce(0, lambda count, _: count + 1)
    except tf.errors.OpError as error:
        _, unreadable = readable_images(paths)
        if not unreadable:
            unreadable = tensorflow_unreadable(paths)
        if not unreadable:
            raise decode_error(description, error) from None
        raise ValueError(
            f"{unreadable[0][0]}: cannot be decoded ({unreadable[0][1]}); {len(unreadable)} unreadable file(s) in "
            f"{description}: {', '.join(pathlib.Path(path).name for path, _ in unreadable[:5])}. "
            "Remove or replace them (PNG or RGB JPEG)."
        ) from error
    return dataset


def tensorflow_unreadable(paths):
    """[(path, reason)] of the non-DICOM files among `paths` that `decode_image` refuses as gray or colour."""
    unreadable = []
    for path in paths:
        if dicom.is_dicom_path(path):
            continue
        try:
            contents = tf.io.read_file(str(path))
            for channels in (1, 3):
                decode_image(contents, channels)
        except tf.errors.OpError as error:
            unreadable.append((str(path), str(decode_error(path, error)).split(": ", 1)[1]))
    return unreadable


def colour_channels(channels):
    """1 for gray or gray + alpha, 3 for colour or colour + alpha: alpha is dropped on decoding."""
    return 1 if channels in (1, 2) else 3


def image_header(path):
    """(width, height, PIL mode) from the file header, without decoding the pixels.

    A grayscale DICOM reads as mode "L" (up to 8 bits) or "I;16"; any other DICOM is refused.
    """
    from PIL import Image

    path = check_image_file(path)
    if dicom.is_dicom_path(path):
        dataset = dicom.read_dataset(path)
        rows, columns = dicom.check_grayscale(dataset, str(path))
        return columns, rows, "L" if int(dataset.get("BitsStored", 16) or 16) <= 8 else "I;16"
    try:
        with Image.open(path) as image:
            return image.size[0], image.size[1], image.mode
    except Exception as error:
        raise ValueError(f"{path}: cannot be read as an image ({error}).") from error


def read_image(path, channels=None):
    """Reads one image file into a NumPy array [H, W, C] (uint8 or uint16).

    `channels` 1 converts colour to grayscale (luma); 3 repeats a gray channel.
    A DICOM is mapped as `pipelines.dicom` describes (VOI applied): uint8 for
    up to 8 bits stored, else uint16 spanning 0..65535.
    """
    path = check_image_file(path)
    if dicom.is_dicom_path(path):
        return convert_channels_numpy(dicom.read_dicom(path).as_integers(), channels)
    try:
        image = iio.imread(path, index=0) if path.suffix.lower() == ".gif" else iio.imread(path)
    except Exception as error:
        raise ValueError(f"{path}: cannot be decoded as an image ({error}).") from error
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise ValueError(f"{path}: expected a 2-D image, got an array of shape {image.shape}.")
    return convert_channels_numpy(image, channels)


def convert_channels_numpy(image, channels):
    """Converts [..., C] arrays to `channels` (alpha dropped, luma for gray)."""
    if channels is None or image.shape[-1] == channels:
        return image
    if image.shape[-1] in (2, 4):
        image = image[..., :-1]
    if channels == 1 and image.shape[-1] == 3:
        weights = np.array([0.2989, 0.5870, 0.1140], dtype=np.float64)
        gray = np.tensordot(image.astype(np.float64), weights, axes=([-1], [0]))
        return np.round(gray).astype(image.dtype)[..., None]
    if channels == 3 and image.shape[-1] == 1:
        return np.repeat(image, 3, axis=-1)
    return image


def decode_image(contents, channels):
    """Decodes PNG/JPEG/GIF/BMP bytes in a tf.data map: uint8 [H, W, channels] (a GIF's first frame)."""
    if channels == 1:
        is_gif = tf.equal(tf.strings.substr(contents, 0, 3), "GIF")
        image = tf.cond(is_gif, lambda: convert_channels(decode_image(contents, 3), 1),
                        lambda: tf.io.decode_image(contents, channels=1, expand_animations=False))
    else:
        image = tf.io.decode_image(contents, channels=channels, expand_animations=False)
    image.set_shape([None, None, channels])
    return image


def _read_dicom_uint8(path, channels):
    image = dicom.read_dicom(path.decode())
    pixels = np.round(image.unit * 255.0).astype(np.uint8)
    return np.repeat(pixels, channels, axis=-1) if channels == 3 else pixels


def decode_path(path, channels):
    """Reads and decodes an image file by path in a tf.data map: uint8 [H, W, channels].

    DICOM files (by extension) go through pydicom in `tf.numpy_function`, the
    others through `decode_image`.
    """

    def read_dicom():
        image = tf.numpy_function(_read_dicom_uint8, [path, channels], tf.uint8, stateful=False)
        image.set_shape([None, None, channels])
        return image

    is_dicom = tf.strings.regex_full_match(tf.strings.lower(path), r".*\.(dcm|dicom)")
    image = tf.cond(is_dicom, read_dicom, lambda: decode_image(tf.io.read_file(path), channels))
    image.set_shape([None, None, channels])
    return image


def decode_error(path, error):
    """A `ValueError` naming `path` for a TensorFlow decoding error, without TensorFlow's internal op names."""
    reason = re.sub(r"\{\{.*?\}\}|\[Op:[^\]]*\]", "", getattr(error, "message", str(error))).strip()
    return ValueError(f"{path}: cannot be decoded as an image ({reason or type(error).__name__}).")


def convert_channels(image, channels):
    """Converts a [H, W, C] tensor to `channels` (1 or 3)."""
    current = image.shape[-1]
    if current == channels:
        return image
    if current == 3 and channels == 1:
        return tf.cast(tf.round(tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))), image.dtype)
    if current == 1 and channels == 3:
        return tf.image.grayscale_to_rgb(image)
    raise ValueError(f"Cannot convert images with {current} channels to {channels}.")


def resize(image, size, method="bilinear"):
    """Resizes a [H, W, C] image to `size` (int or (height, width)); returns float32."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    image = tf.cast(image, tf.float32)
    if tuple(image.shape[:2]) == size:
        return image
    return tf.image.resize(image, size, method=method, antialias=method != "nearest")


def to_signature_input(image, shape, dtype):
    """One decoded image [H, W, C] as a model input of `shape` ([None, H, W, C], None = any) and uint8/uint16.

    Channels are converted, the image is resized when the shape fixes its
    height and width, and grey levels are rescaled when the bit depth differs.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.uint8, np.uint16):
        raise ValueError(f"Image inputs must be uint8 or uint16, the signature asks for {dtype}.")
    image = convert_channels_numpy(np.asarray(image), shape[-1])
    source_maximum = np.iinfo(image.dtype).max if image.dtype.kind in "ui" else 1.0
    scaled = image.astype(np.float32) * (np.iinfo(dtype).max / source_maximum)
    height, width = shape[1], shape[2]
    if height is not None and width is not None and (height, width) != scaled.shape[:2]:
        scaled = resize(scaled, (height, width)).numpy()
    return np.clip(np.round(scaled), 0, np.iinfo(dtype).max).astype(dtype)
