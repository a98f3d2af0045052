"""The U-Net segmentation task (Carvana cars, ISBI membranes) for the shared runner.

Trains `tf_models.unet.build_unet` with Adam, BCE + soft Dice and the Dice/IoU
metrics on a folder that `pipelines.segmentation` recognises. Besides the
standard logs, each epoch writes `masks.png` (image | true mask | predicted
overlay for a few validation images) and the same rows to TensorBoard, and
keeps `best.keras`, the model with the highest validation Dice so far.

The SavedModel's `serving_default` takes raw uint8 images [N, H, W, C] of the
training size and returns `mask_probability` float32 [N, H, W, 1] and `mask`
uint8 {0, 255} [N, H, W, 1].
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from pipelines import segmentation
from tf_models.unet import model as unet
from tf_models.core import callbacks as callbacks_lib
from tf_models.core import images as image_helpers
from tf_models.core import config as config_lib
from tf_models.core import export as export_lib
from tf_models.core import figures, runner

option = config_lib.option

SERVING_INPUT = "images"
OVERLAY_COLOR = np.array([1.0, 0.1, 0.1], dtype=np.float32)


def parse_image_size(text):
    """'160x240' -> (160, 240) (height x width); '256' -> (256, 256)."""
    parts = str(text).lower().replace(" ", "").split("x")
    try:
        size = tuple(int(part) for part in parts)
    except ValueError:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"--image-size must be HEIGHTxWIDTH (e.g. 160x240) or one side (256), got {text!r}.")
    return size


@dataclasses.dataclass
class UNetConfig(config_lib.TrainConfig):
    data: str = option("", "a Carvana folder (train/ + train_masks/) or an image/ + label/ folder")
    image_size: str = option("160x240", "HEIGHTxWIDTH of the training images, each divisible by 2**depth")
    channels: int = option(0, "1 or 3; 0 uses 1 when every image is grayscale, else 3")
    batch_size: int = option(8, "global batch size (all replicas together)")
    learning_rate: float = option(1e-3, "Adam learning rate")
    depth: int = option(4, "number of 2x2 poolings (4 in the paper)")
    base_filters: int = option(16, "filters of the first level (64 in the paper)")
    batch_norm: bool = option(True, "batch normalisation after each convolution")
    dropout: float = option(0.0, "dropout rate after the bottleneck (0: none)")
    loss: str = option("bce-dice", "bce-dice (cross-entropy + soft Dice), lovasz (the Lovasz hinge, a surrogate of "
                                   "1 - IoU) or bce-lovasz (cross-entropy + Lovasz hinge)")
    validation_fraction: float = option(0.2, "fraction of cars (or slices) held out for validation")
    augment: bool = option(True, "random flip, shift/zoom and brightness, alike for image and mask")
    elastic_sigma: float = option(0.0, "with --augment: the paper's elastic deformation, sigma in pixels (10 in the paper)")
    overlay_count: int = option(4, "validation images drawn in masks.png and TensorBoard")

    def __post_init__(self):
        height, width = parse_image_size(self.image_size)
        if self.depth < 1:
            raise ValueError(f"--depth must be at least 1, got {self.depth}.")
        factor = 2**self.depth
        if height % factor or width % factor:
            raise ValueError(
                f"--image-size {self.image_size} does not suit --depth {self.depth}: height and width must be "
                f"divisible by 2**{self.depth} = {factor}, e.g. "
                f"{max(factor, round(height / factor) * factor)}x{max(factor, round(width / factor) * factor)}."
            )
        if self.base_filters < 1:
            raise ValueError(f"--base-filters must be positive, got {self.base_filters}.")
        if self.channels not in (0, 1, 3):
            raise ValueError(f"--channels must be 0 (from the data), 1 or 3, got {self.channels}.")
        if self.loss not in unet.LOSSES:
            raise ValueError(f"--loss must be one of {', '.join(unet.LOSSES)}, got {self.loss!r}.")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"--dropout must be in [0, 1), got {self.dropout}.")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"--validation-fraction must be in [0, 1), got {self.validation_fraction}.")

    @property
    def size(self):
        return parse_image_size(self.image_size)


PRESETS = {
    # Seconds on a CPU: tests, the app demo, `bench --quick` and the fault suite.
    "tiny": dict(image_size="32x48", depth=2, base_filters=4, batch_size=4, overlay_count=2,
                 validation_fraction=0.25, epochs=1, steps_per_epoch=6),
    # CPU-sized Carvana: a quarter of the paper's widths (1/16 of its FLOPs) at 160x240.
    "carvana": dict(image_size="160x240", depth=4, base_filters=16, batch_size=8, learning_rate=1e-3, epochs=2),
    # The paper's widths (64 -> 1024 filters), no batch norm, dropout at the bottleneck.
    "paper": dict(depth=4, base_filters=64, batch_norm=False, dropout=0.5, batch_size=4, learning_rate=1e-4),
    # The paper's own task: ISBI 2012 EM slices, grayscale, one slice per validation group, the paper's elastic
    # deformation.
    "membrane": dict(image_size="256x256", channels=1, depth=4, base_filters=16, batch_size=4,
                     learning_rate=1e-3, validation_fraction=0.2, steps_per_epoch=30, epochs=60, elastic_sigma=10.0),
}


def overlay(image, mask):
    """Float image [H, W, C] in [0, 1] with `mask` (0/1 or probability >= 0.5) tinted red; RGB."""
    image = np.asarray(image, dtype=np.float32)
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
    selected = np.asarray(mask).reshape(rgb.shape[:2] + (1,)) >= 0.5
    return np.where(selected, 0.5 * rgb + 0.5 * OVERLAY_COLOR, rgb)


def mask_rows(images, true_masks, probabilities):
    """[image | true mask | predicted overlay] rows, RGB float in [0, 1]."""
    rows = []
    for image, true_mask, probability in zip(images, true_masks, probabilities):
        rgb = overlay(image, np.zeros(image.shape[:2]))
        rows.append([rgb, np.repeat(np.asarray(true_mask, np.float32), 3, axis=-1), overlay(image, probability)])
    return rows


class MaskOverlays(keras.callbacks.Callback):
    """After every epoch: `masks.png` and a TensorBoard image of fixed validation examples."""

    def __init__(self, images, masks, figure_path, log_dir):
        super().__init__()
        self.images, self.masks = np.asarray(images), np.asarray(masks)
        self.figure_path = figure_path
        self.writer = tf.summary.create_file_writer(str(log_dir / "validation"))

    def on_epoch_end(self, epoch, logs=None):
        probabilities = np.asarray(tf.sigmoid(self.model(self.images, training=False)))
        rows = mask_rows(self.images, self.masks, probabilities)
        figures.plot_image_rows(rows, ["image", "true mask", "prediction"], self.figure_path)
        strips = np.stack([np.concatenate(row, axis=1) for row in rows])
        grid = image_helpers.tile_images(image_helpers.to_uint8(strips, (0.0, 1.0)), columns=1)
        with self.writer.as_default():
            tf.summary.image("masks", grid[None], step=epoch + 1)
        self.writer.flush()


def best_validation_dice(history_path):
    """The highest `val_dice` in an existing history.csv (for resumed runs), or None."""
    return callbacks_lib.best_logged_value(history_path, "val_dice", "max")


class UNetTask(runner.Task):
    name = "unet"

    def __init__(self):
        self.data = None

    def resolve(self, config):
        if not config.data or config.data == "digits":
            raise ValueError(
                "--data must name a segmentation folder, e.g. ../shared/datasets/carvana_hr "
                "(train/ + train_masks/) or ../shared/datasets/membrane (image/ + label/)."
            )
        return config

    def build_data(self, config):
        self.data = segmentation.build_segmentation_data(
            config.data,
            image_size=config.size,
            batch_size=config.batch_size,
            validation_fraction=config.validation_fraction,
            seed=config.seed,
            channels=config.channels or None,
            augmentation=segmentation.Augmentation(elastic_sigma=config.elastic_sigma) if config.augment else None,
        )
        return self.data

    def build_model(self, config, data):
        channels = config.channels or (data.channels if data is not None else 3)
        model = unet.build_unet(
            config.size + (channels,),
            depth=config.depth,
            base_filters=config.base_filters,
            batch_norm=config.batch_norm,
            dropout=config.dropout,
        )
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            loss=unet.LOSSES[config.loss],
            metrics=[unet.DiceCoefficient(), unet.IoU()],
        )
        model.optimizer.build(model.trainable_variables)
        return model

    def sample_batch(self, count):
        """(images float [0, 1], masks) of the first validation examples (training ones without a split)."""
        dataset = self.data.validation_dataset or self.data.make_dataset(0)
        images, masks = next(iter(dataset.unbatch().batch(count).take(1)))
        return images.numpy(), masks.numpy()

    def callbacks(self, model, paths, config):
        images, masks = self.sample_batch(config.overlay_count)
        result = [MaskOverlays(images, masks, paths.log_dir / "masks.png", paths.log_dir)]
        if self.data.validation_dataset is not None:
            result.append(callbacks_lib.BestModel(paths.model_dir / "best.keras", "val_dice", "max",
                                                  paths.log_dir / "history.csv"))
        return result

    def serving_endpoints(self, model, paths):
        return serving_endpoints(model)

    def deployment_examples(self, model, config, split, count):
        """uint8 images and their masks: held-out cars, or (augmented) training batches."""
        dataset = self.data.validation_dataset if split == "validation" else self.data.make_dataset(0)
        images, masks = export_lib.take_examples(dataset, count)
        return {SERVING_INPUT: image_helpers.to_uint8(images, (0.0, 1.0))}, masks

    def deployment_score(self, outputs, targets):
        """Dice and IoU of the served `mask` (the same per-image definitions as training)."""
        scores = {}
        for metric in (unet.DiceCoefficient(from_logits=False), unet.IoU(from_logits=False)):
            metric.update_state(targets, np.asarray(outputs["mask"], np.float32) / 255.0)
            scores[metric.name] = float(metric.result())
        return scores


def serving_endpoints(model):
    """`serving_default`: uint8 images [N, H, W, C] -> mask_probability float32, mask uint8 {0, 255}."""
    height, width, channels = model.input_shape[1:]

    def from_images(images):
        probabilities = tf.sigmoid(model(tf.cast(images, tf.float32) / 255.0, training=False))
        return {"mask_probability": probabilities, "mask": tf.cast(tf.where(probabilities >= 0.5, 255.0, 0.0), tf.uint8)}

    return {"serving_default": (from_images, [tf.TensorSpec([None, height, width, channels], tf.uint8, name=SERVING_INPUT)])}
