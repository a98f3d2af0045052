"""The Streamlit app's library: find trained runs, check uploads, run each model, compose results.

`scripts/app.py` only lays out pages; everything it computes comes from here,
so it is tested without a browser. The app never writes files: results are
offered as in-memory downloads.

Runs are read from `saved_models/<task>/<run>/` (the root is `TF_MODELS_ROOT`
when set), `.keras` files with Keras safe mode, exports as SavedModels.
"""

import dataclasses
import io
import os
import pathlib

import numpy as np

from tf_models.core import images as image_helpers
from tf_models import registry
from tf_models.core import runs

MODELS_ROOT_VARIABLE = "TF_MODELS_ROOT"
SAMPLES_ROOT_VARIABLE = "SHARED_DATASETS"
MAX_UPLOAD_BYTES = 25 * 2**20
MAX_PIXELS = 40_000_000
MIN_SIDE = 8
UPLOAD_TYPES = ("png", "jpg", "jpeg", "pgm", "bmp", "gif", "tif", "tiff")

def models_root():
    return pathlib.Path(os.environ.get(MODELS_ROOT_VARIABLE) or "saved_models")


def samples_root():
    default = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
    return pathlib.Path(os.environ.get(SAMPLES_ROOT_VARIABLE) or default)


# ---------------------------------------------------------------- runs


def latest_saved_model(model_dir):
    """The highest-numbered `serving/<N>/` holding a saved_model.pb, or None."""
    versions = [path for path in (pathlib.Path(model_dir) / "serving").glob("*")
                if path.name.isdigit() and (path / "saved_model.pb").is_file()]
    return max(versions, key=lambda path: int(path.name), default=None)


def model_artifact(task, model_dir):
    """The file or folder the app loads for a run of `task`, or None while the run has none."""
    model_dir = pathlib.Path(model_dir)
    for name in registry.get(task).app.artifacts:
        if name == "serving/":
            found = latest_saved_model(model_dir)
        else:
            found = model_dir / name if (model_dir / name).is_file() else None
        if found is not None:
            return found
    return None


def list_runs(task, root=None):
    """{run name: artifact path} of the runs of `task` that have something to load, sorted by name."""
    task_dir = pathlib.Path(root or models_root()) / task
    if not task_dir.is_dir():
        return {}
    found = {}
    for run_dir in sorted(path for path in task_dir.iterdir() if path.is_dir()):
        artifact = model_artifact(task, run_dir)
        if artifact is not None and _valid_run_name(run_dir.name):
            found[run_dir.name] = artifact
    return found


def _valid_run_name(name):
    try:
        runs.validate_run_name(name)
    except ValueError:
        return False
    return True


def missing_run_message(task, root=None):
    root = pathlib.Path(root or models_root())
    return (f"No trained {task} run under {root / task}/. Train one with:\n\n    {registry.get(task).app.train_command}\n\n"
            f"(or point {MODELS_ROOT_VARIABLE} at another saved_models folder).")


def load_keras(path):
    """A `.keras` file loaded with safe mode (no arbitrary Python code), the task classes registered."""
    import keras

    registry.import_models()
    return keras.saving.load_model(path, safe_mode=True, compile=False)


# ---------------------------------------------------------------- uploads


@dataclasses.dataclass
class UploadedImage:
    """A decoded upload: pixels [H, W, C] (uint8 or uint16) and notes on what was converted."""

    pixels: np.ndarray
    notes: list

    @property
    def maximum(self):
        return 65535.0 if self.pixels.dtype == np.uint16 else 255.0

    def unit(self):
        """float32 in [0, 1]."""
        return self.pixels.astype(np.float32) / self.maximum

    def as_uint8(self):
        if self.pixels.dtype == np.uint8:
            return self.pixels
        return np.round(self.unit() * 255.0).astype(np.uint8)


def _header(data, name):
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Image.DecompressionBombError:
        raise ValueError(f"{name}: the image is far too large to decode safely.") from None
    except Exception:
        raise ValueError(f"{name}: not an image this app can read; upload a PNG, JPEG, PGM, BMP or TIFF file.") from None


def check_upload_size(data, name, max_bytes=MAX_UPLOAD_BYTES):
    if len(data) == 0:
        raise ValueError(f"{name}: the file is empty (0 bytes).")
    if len(data) > max_bytes:
        raise ValueError(f"{name}: {len(data) / 2**20:.1f} MiB is over the {max_bytes / 2**20:.0f} MiB upload limit.")


def _decode_pixels(data, name):
    import imageio.v3 as iio

    try:
        pixels = np.asarray(iio.imread(data, index=0))
    except Exception as error:
        raise ValueError(f"{name}: the image data is damaged or truncated ({error}).") from None
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"{name}: expected a 2-D grayscale or colour image, got an array of shape {pixels.shape}.")
    if pixels.dtype == np.uint16 or pixels.dtype == np.uint8:
        return pixels
    if np.issubdtype(pixels.dtype, np.integer) and pixels.min() >= 0 and pixels.max() <= 65535:
        return pixels.astype(np.uint16)
    raise ValueError(f"{name}: {pixels.dtype} pixels are not supported; save it as an 8- or 16-bit PNG.")


def read_upload(data, name, channels, max_bytes=MAX_UPLOAD_BYTES, max_pixels=MAX_PIXELS):
    """Checks and decodes uploaded bytes into `channels` (1 or 3) channels; ValueError with a readable message.

    Refused: empty or oversized files, files that are not images, images
    with more than `max_pixels` pixels (checked from the header, before
    decoding: decompression bombs) or a side under 8 pixels. Converted with
    a note: alpha dropped, colour to grayscale or grayscale to colour.
    """
    from pipelines import images

    check_upload_size(data, name, max_bytes)
    width, height = _header(data, name)
    if width * height > max_pixels:
        raise ValueError(f"{name}: {width}x{height} is {width * height / 1e6:.1f} megapixels, over the "
                         f"{max_pixels / 1e6:.0f} megapixel limit; downscale it first.")
    if min(width, height) < MIN_SIDE:
        raise ValueError(f"{name}: {width}x{height} is too small; each side needs at least {MIN_SIDE} pixels.")
    pixels = _decode_pixels(data, name)
    notes = []
    if pixels.shape[-1] in (2, 4):
        notes.append("the alpha channel was dropped")
    if (pixels.shape[-1] >= 3) != (channels == 3):
        source, target = ("colour", "grayscale") if channels == 1 else ("grayscale", "colour")
        notes.append(f"the {source} image was converted to {target}, as the model expects")
    return UploadedImage(images.convert_channels_numpy(pixels, channels), notes)


def list_samples(task, count=6, root=None):
    """A few real images from the shared datasets for a task's sample picker ([] when absent)."""
    samples = registry.get(task).app.samples
    folder = pathlib.Path(root or samples_root()) / samples
    if not samples or not folder.is_dir():
        return []
    from pipelines import images

    return sorted(path for path in folder.iterdir() if images.is_image_path(path))[:count]


def png_bytes(image):
    """PNG bytes of uint8/uint16 [H, W, C] (or float in [0, 1])."""
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16):
        image = image_helpers.to_uint8(image, (0.0, 1.0))
    return image_helpers.encode_png(image)
