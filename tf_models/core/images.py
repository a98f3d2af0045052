"""Image helpers for figures, sample grids and the app: uint8 conversion, tiling, PNG and GIF."""

import io

import imageio.v3 as iio
import numpy as np

from tf_models.core import runs


def to_uint8(images, value_range=(-1.0, 1.0)):
    """Maps float images in `value_range` to uint8 [0, 255]."""
    low, high = value_range
    images = (np.asarray(images, dtype=np.float32) - low) / (high - low)
    return np.clip(np.round(images * 255.0), 0, 255).astype(np.uint8)


def tile_images(images, columns=None, padding=2, scale=1):
    """Tiles uint8 images [N, H, W, C] into one grid image [H', W', C]."""
    images = np.asarray(images)
    count, height, width, channels = images.shape
    columns = columns or int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    grid = np.full(
        (rows * (height + padding) + padding, columns * (width + padding) + padding, channels),
        255,
        dtype=np.uint8,
    )
    for index, image in enumerate(images):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        grid[top : top + height, left : left + width] = image
    if scale > 1:
        grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    return grid


def encode_png(image):
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return iio.imwrite("<bytes>", image, extension=".png")


def write_gif(path, frame_paths, seconds_per_frame=0.4):
    """Writes an animated GIF of the PNG frames, atomically."""
    frames = [iio.imread(frame) for frame in frame_paths]
    if not frames:
        return None
    buffer = io.BytesIO()
    iio.imwrite(buffer, np.stack(frames), extension=".gif", duration=int(seconds_per_frame * 1000), loop=0)
    return runs.atomic_write_bytes(path, buffer.getvalue())
