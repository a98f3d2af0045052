"""Using a trained U-Net run: load it, predict masks at each image's original size, write them.

An image is brought to the training size exactly as the training pipeline does
(antialiased bilinear resize, rounded to uint8, scaled to [0, 1]); the predicted
probability is resized back to the image's own size (bilinear) and thresholded
at 0.5, so masks and scores refer to the original pixels. With test-time
augmentation (`tta=True`) the probability is the mean of the image's and of
its left-right mirror's (mirrored back): a car seen from one side looks like
one seen from the other.

How the probability reaches the original size (`upsample`):

- `bilinear`: bilinear resizing of the probability;
- `logit-bicubic`: bicubic resizing of its logit, then the sigmoid: a smoother
  contour than bilinear, and the 0.5 crossing is interpolated where the
  network's evidence is, not where the saturated probability happens to be;
- `guided`: bilinear, then the guided filter (He, Sun and Tang, 2013) with the
  original image's luminance as the guide, so the mask's edges move onto the
  image's own edges at the original resolution.
"""

import csv
import dataclasses
import io
import json
import pathlib

import keras
import cv2
import numpy as np
import tensorflow as tf

from pipelines import images
from tf_models.unet import model as unet
from tf_models.core import images as image_helpers
from tf_models.core import runs
from tf_models.unet import task as unet_task

MODEL_CHOICES = ("best", "final")
UPSAMPLING = ("bilinear", "logit-bicubic", "guided")
GUIDED_EPSILON = 1e-3


def add_run_arguments(parser):
    parser.add_argument("--run", required=True, help="run name under saved_models/unet/")
    parser.add_argument("--model", choices=MODEL_CHOICES, default="best",
                        help="best.keras (highest validation Dice) or model.keras (last epoch)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per prediction batch")
    parser.add_argument("--tta", action="store_true",
                        help="test-time augmentation: average with the horizontally flipped image's prediction")
    parser.add_argument("--upsample", choices=UPSAMPLING, default="bilinear",
                        help="how the probability is brought to the original size: bilinear, bicubic on the logit, "
                             "or bilinear refined by a guided filter on the original image")
    parser.add_argument("--logs-root", default="logs", help="root of the log folders")
    parser.add_argument("--models-root", default="saved_models", help="root of the model folders")


def run_paths(args):
    return runs.RunPaths(unet_task.UNetTask.name, args.run, args.logs_root, args.models_root)


def read_run_config(paths):
    """The run's `UNetConfig`, from its config.json."""
    if not paths.config_file.is_file():
        raise ValueError(f"{paths.config_file}: no config for run {paths.run_name!r}; train it with scripts/train_unet.py.")
    stored = json.loads(paths.config_file.read_text())
    fields = {field.name for field in dataclasses.fields(unet_task.UNetConfig)}
    return unet_task.UNetConfig(**{key: value for key, value in stored.items() if key in fields})


def load_run_model(paths, which="best"):
    """best.keras (falls back to model.keras when the run kept no best) or model.keras."""
    candidates = [paths.model_dir / "best.keras", paths.keras_file] if which == "best" else [paths.keras_file]
    for path in candidates:
        if path.is_file():
            return keras.models.load_model(path), path
    raise ValueError(
        f"{paths.model_dir}: no {' or '.join(p.name for p in candidates)}; train the run with --export "
        "(the default) or pick another --model."
    )


def to_training_size(image, size):
    """uint8 [H, W, C] -> float32 [h, w, C] in [0, 1], resized as the training pipeline resizes."""
    resized = tf.clip_by_value(tf.round(images.resize(image, size)), 0.0, 255.0)
    return (resized / 255.0).numpy()


def predict_probabilities(model, batch, tta=False):
    """Float images [N, h, w, C] in [0, 1] -> foreground probabilities [N, h, w].

    With `tta`, the mean of the probabilities of the images and of their
    horizontal flips, flipped back.
    """
    batch = tf.convert_to_tensor(np.asarray(batch, np.float32))
    probabilities = tf.sigmoid(model(batch, training=False))
    if tta:
        mirrored = tf.sigmoid(model(tf.reverse(batch, axis=[2]), training=False))
        probabilities = (probabilities + tf.reverse(mirrored, axis=[2])) / 2.0
    return np.asarray(probabilities)[..., 0]


def to_original_size(probability, shape, method="bilinear", image=None):
    """Probability [h, w] -> [H, W] (see the module docstring for `method`; `guided` needs the original image)."""
    if method not in UPSAMPLING:
        raise ValueError(f"Unknown upsampling {method!r}; choose one of {', '.join(UPSAMPLING)}.")
    if method == "logit-bicubic":
        clipped = np.clip(probability, 1e-6, 1 - 1e-6).astype(np.float32)
        logit = np.log(clipped) - np.log1p(-clipped)
        return tf.sigmoid(tf.image.resize(logit[..., None], shape[:2], method="bicubic")).numpy()[..., 0]
    resized = tf.image.resize(probability[..., None], shape[:2], method="bilinear").numpy()[..., 0]
    if method == "guided":
        if image is None:
            raise ValueError("Guided upsampling needs the original image.")
        radius = 2 * int(np.ceil(max(shape[0] / probability.shape[0], shape[1] / probability.shape[1])))
        resized = np.clip(guided_filter(luminance(image), resized, radius, GUIDED_EPSILON), 0.0, 1.0)
    return resized


def luminance(image):
    """uint8 [H, W, C] -> float32 [H, W] in [0, 1] (`tf.image.rgb_to_grayscale` for colour)."""
    image = tf.convert_to_tensor(np.asarray(image, np.float32) / 255.0)
    if image.shape.rank == 3 and image.shape[-1] == 3:
        image = tf.image.rgb_to_grayscale(image)
    return image.numpy().reshape(image.shape[:2])


def guided_filter(guide, source, radius, epsilon):
    """He et al.'s guided filter with a grey guide: per window, `source` ~ a * guide + b, averaged over windows."""
    def box(values):
        return cv2.boxFilter(values, -1, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)

    guide, source = np.asarray(guide, np.float32), np.asarray(source, np.float32)
    mean_guide, mean_source = box(guide), box(source)
    variance = box(guide * guide) - mean_guide * mean_guide
    slope = (box(guide * source) - mean_guide * mean_source) / (variance + epsilon)
    offset = mean_source - slope * mean_guide
    return box(slope) * guide + box(offset)


def predict_images(model, originals, batch_size=8, tta=False, upsample="bilinear"):
    """uint8 images of any sizes -> [(probability at training size, probability at original size)]."""
    size = tuple(model.input_shape[1:3])
    results = []
    for start in range(0, len(originals), batch_size):
        chunk = originals[start : start + batch_size]
        small = predict_probabilities(model, [to_training_size(image, size) for image in chunk], tta)
        results += [(probability, to_original_size(probability, image.shape, upsample, image))
                    for probability, image in zip(small, chunk)]
    return results


def overlap_scores(true_mask, probability):
    """(Dice, IoU) of one image with the Keras metrics' definitions (threshold 0.5, empty vs empty = 1)."""
    true_mask = np.asarray(true_mask, np.float32).reshape((1,) + probability.shape[:2] + (1,))
    predicted = np.asarray(probability, np.float32).reshape(true_mask.shape)
    return tuple(
        float(metric.per_image_scores(true_mask, predicted)[0])
        for metric in (unet.DiceCoefficient(from_logits=False), unet.IoU(from_logits=False))
    )


def collect_images(inputs):
    """Image files named or inside the folders named, in order; ValueError for a missing path or a stem twice."""
    paths, seen = [], {}
    for item in map(pathlib.Path, inputs):
        if item.is_dir():
            found = images.list_images(item)
        elif item.is_file():
            found = [images.check_image_file(item)]
        else:
            raise ValueError(f"{item}: no such image file or folder.")
        for path in found:
            if path.stem in seen:
                raise ValueError(f"{path} and {seen[path.stem]}: two images named {path.stem!r} would write one mask.")
            seen[path.stem] = path
            paths.append(path)
    if not paths:
        raise ValueError(f"No image files found in {', '.join(map(str, inputs))}.")
    return paths


def write_masks(model, image_paths, output_dir, rle_csv=None, batch_size=8, tta=False, upsample="bilinear"):
    """Writes `<stem>_mask.png` (0/255, original size) per image and, optionally, a Kaggle CSV `img,rle_mask`."""
    output_dir = pathlib.Path(output_dir)
    channels = model.input_shape[-1]
    written, rows = [], []
    for start in range(0, len(image_paths), batch_size):
        chunk = image_paths[start : start + batch_size]
        originals = [images.read_image(path, channels) for path in chunk]
        for path, (_, probability) in zip(chunk, predict_images(model, originals, batch_size, tta, upsample)):
            mask = (probability >= 0.5).astype(np.uint8)
            written.append(runs.atomic_write_bytes(output_dir / f"{path.stem}_mask.png", image_helpers.encode_png(mask * 255)))
            rows.append((path.name, rle_encode(mask)))
    if rle_csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["img", "rle_mask"])
        writer.writerows(rows)
        written.append(runs.atomic_write_text(rle_csv, buffer.getvalue()))
    return written


def rle_encode(mask):
    """Binary mask [H, W] (or [H, W, 1]) -> Kaggle Carvana run-length string.

    The Carvana convention (the competition's `train_masks.csv` and its
    submission files): the mask is flattened row by row (left to right, then top
    to bottom), pixels are numbered from 1, and the string is space-separated
    `start length` pairs of the foreground runs; an empty mask is "". (Other
    Kaggle competitions, e.g. Airbus ships, number pixels column by column instead.)
    """
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise ValueError(f"rle_encode needs a 2-D mask [H, W], got shape {mask.shape}.")
    pixels = np.concatenate([[0], (mask.reshape(-1) > 0).astype(np.int8), [0]])
    runs = np.flatnonzero(pixels[1:] != pixels[:-1]) + 1
    runs[1::2] -= runs[::2]
    return " ".join(str(value) for value in runs)


def rle_decode(rle, shape):
    """Kaggle Carvana run-length string -> uint8 0/1 mask of `shape` (height, width); see `rle_encode`."""
    height, width = shape
    values = np.asarray(str(rle).split(), dtype=np.int64)
    if values.size % 2:
        raise ValueError(f"A run-length string needs start/length pairs; got {values.size} numbers.")
    starts, lengths = values[0::2] - 1, values[1::2]
    if values.size and (starts.min() < 0 or lengths.min() < 1 or (starts + lengths).max() > height * width):
        raise ValueError(f"Run-length string does not fit a {height}x{width} mask (1-indexed starts, positive lengths).")
    flat = np.zeros(height * width, dtype=np.uint8)
    for start, length in zip(starts, lengths):
        flat[start : start + length] = 1
    return flat.reshape(height, width)
