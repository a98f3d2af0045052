"""The Pix2Pix enhancement task: paired data, model, triplet samples and export."""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from pipelines import paired
from tf_models import metrics
from tf_models.pix2pix import model as pix2pix
from tf_models.core import callbacks as callbacks_lib
from tf_models.core import images as image_helpers
from tf_models.core import config as config_lib
from tf_models.core import export as export_lib
from tf_models.core import runner

option = config_lib.option


@dataclasses.dataclass
class Pix2PixConfig(config_lib.TrainConfig):
    data: str = option("", "a folder of clean images (with --degrade) or with input/ and target/")
    degrade: str = option("noise:0.05", "degradation recipe for clean-only folders (see pipelines/augment.py)")
    image_size: int = option(256, "side of the square training crops")
    batch_size: int = option(4, "global batch size")
    epochs: int = option(20, "total number of epochs")
    foreground_crops: int = option(1, "each training crop is the most foreground (breast) of this many random "
                                      "crops (1: plain random crops)")
    test_fraction: float = option(0.15, "share of images (mini-MIAS: film pairs) held out")
    generator: str = option("pix2pix", "pix2pix (the paper's U-Net: 4x4 stride-2 convolutions) or unet "
                                       "(Ronneberger's: two 3x3 convolutions per level, the input's resolution "
                                       "included; with --norm none or batch)")
    generator_filters: int = option(64, "filters of the U-Net's first block")
    generator_depth: int = option(8, "stride-2 blocks of the U-Net; sizes must divide by 2**depth")
    discriminator_filters: int = option(64, "filters of the PatchGAN's first block")
    l1_weight: float = option(100.0, "weight of the L1 term (lambda)")
    norm: str = option("instance", "instance, batch or none")
    dropout_blocks: int = option(3, "decoder blocks with dropout (training only)")
    residual: bool = option(True, "predict a correction added to the input")
    ema_decay: float = option(0.0, "decay of an exponential moving average of the generator's weights (e.g. 0.999; "
                                   "0: none); figures, validation and exports use the average")
    full_resolution_filters: int = option(0, "3x3 convolutions at full resolution around the U-Net (0: none, "
                                             "as in the paper)")
    tissue_weight: float = option(0.0, "extra L1 weight of the pixels inside the tissue (0: none; large: a loss "
                                       "on tissue only)")
    ssim_weight: float = option(0.0, "weight of a 1 - SSIM term in the generator's loss (0: none)")
    adversarial_weight: float = option(1.0, "weight of the PatchGAN term in the generator's loss (0: L1 only)")
    adversarial_start_step: int = option(0, "generator steps of regression alone before the PatchGAN term starts")
    beta_1: float = option(0.5, "Adam beta_1 of both optimizers")
    sample_count: int = option(4, "held-out crops in each epoch's triplet figure")


PRESETS = {
    # Seconds on a CPU: tests, the app demo, `bench --quick` and the fault suite.
    "tiny": dict(degrade="noise:0.05", image_size=32, generator_depth=3, generator_filters=4,
                 discriminator_filters=4, dropout_blocks=1, batch_size=2, sample_count=2, test_fraction=0.25,
                 epochs=1, steps_per_epoch=6),
    # A CPU-sized network (half the paper's widths, depth 6, 128 px crops); the paper's network stays the default.
    "cpu": dict(image_size=128, batch_size=8, generator_filters=32, generator_depth=6,
                discriminator_filters=32, steps_per_epoch=60, epochs=25, save_every_steps=60),
    # A regression denoiser for the CPU: Ronneberger's U-Net (16 to 256 filters, no normalisation) predicting
    # the correction of its input, L1 weighted towards the breast, no PatchGAN term (the discriminator is
    # neither run nor trained), crops drawn from tissue, the learning rate lowered along a cosine.
    "cpu_unet": dict(image_size=128, batch_size=8, generator="unet", generator_filters=16, generator_depth=4,
                     norm="none", dropout_blocks=0, adversarial_weight=0.0, tissue_weight=4.0, foreground_crops=2,
                     learning_rate=1e-3, cosine_decay=True, steps_per_epoch=60, epochs=400, save_every_steps=60),
}


class Pix2PixTask(runner.Task):
    name = "pix2pix"

    def __init__(self):
        self.samples = None
        self.data = None

    def resolve(self, config):
        if not config.data:
            raise ValueError("--data is required: a folder of clean images (with --degrade) or input/ + target/.")
        if config.image_size % 2**config.generator_depth:
            raise ValueError(
                f"--image-size {config.image_size} must be divisible by 2**--generator-depth "
                f"({2**config.generator_depth})."
            )
        if config.generator not in pix2pix.GENERATORS:
            raise ValueError(f"Unknown --generator {config.generator!r}; choose one of "
                             f"{', '.join(pix2pix.GENERATORS)}.")
        if config.norm not in pix2pix.NORMS:
            raise ValueError(f"Unknown --norm {config.norm!r}; choose one of {', '.join(pix2pix.NORMS)}.")
        return config

    def build_data(self, config):
        data = paired.build_paired_data(
            config.data, config.image_size, config.batch_size, config.degrade, config.seed, config.test_fraction,
            foreground_crops=config.foreground_crops,
        )
        self.samples = next(iter(data.validation_dataset.unbatch().batch(config.sample_count)))
        self.data = data
        return data

    def build_model(self, config, data):
        model = pix2pix.Pix2Pix(
            channels=1, generator_filters=config.generator_filters, generator_depth=config.generator_depth,
            discriminator_filters=config.discriminator_filters, l1_weight=config.l1_weight, norm=config.norm,
            dropout_blocks=config.dropout_blocks, residual=config.residual,
            full_resolution_filters=config.full_resolution_filters, ema_decay=config.ema_decay,
            tissue_weight=config.tissue_weight, ssim_weight=config.ssim_weight,
            adversarial_weight=config.adversarial_weight, adversarial_start_step=config.adversarial_start_step,
            generator=config.generator,
        )
        model.compile(keras.optimizers.Adam(beta_1=config.beta_1), keras.optimizers.Adam(beta_1=config.beta_1))
        for optimizer, rate in self.learning_rates(model, config):
            optimizer.learning_rate = rate
        return model

    def learning_rates(self, model, config):
        return [(model.generator_optimizer, config.learning_rate), (model.discriminator_optimizer, config.learning_rate)]

    def callbacks(self, model, paths, config):
        source, target = self.samples

        def triplets():
            enhanced = model.sampling_generator(source, training=False)
            return tf.concat([source, target, enhanced], axis=2)

        return [callbacks_lib.SampleGrid(triplets, paths.samples_dir, log_dir=paths.log_dir, scale=1, columns=1,
                                         name="input_target_enhanced")]

    def export_metadata(self, config):
        return {"size_multiple": 2**config.generator_depth, "tile_size": config.image_size}

    def inference_model(self, model):
        return model.sampling_generator

    def serving_endpoints(self, model, paths):
        return serving_endpoints(model.sampling_generator)

    def deployment_examples(self, model, config, split, count):
        """Degraded crops (uint8) and their clean targets, from the held-out images or training batches."""
        dataset = self.data.validation_dataset if split == "validation" else self.data.make_dataset(0)
        sources, targets = export_lib.take_examples(dataset, count)
        return {"image": image_helpers.to_uint8(sources)}, image_helpers.to_uint8(targets)

    def deployment_score(self, outputs, targets):
        """Mean PSNR (dB) of the enhanced crops against their targets."""
        scores = [metrics.image_quality(output, target, max_val=255.0)["psnr"]
                  for output, target in zip(outputs["enhanced"], targets)]
        return {"psnr": float(np.mean(scores))}


def serving_endpoints(generator):
    """Raw images in, enhanced images out; H and W must divide by 2**depth.

    - `serving_default`: `image` uint8 [N, H, W, 1] -> `enhanced` uint8.
    - `enhance_uint16`: `image` uint16 -> `enhanced` uint16 (16-bit mammograms).
    - `enhance_float`: `image` float32 in [0, 1] -> `enhanced` float32 in [0, 1].
    """

    def enhance_unit(images):
        return (generator(images * 2.0 - 1.0, training=False) + 1.0) / 2.0

    def quantized(maximum, dtype):
        def enhance(image):
            unit = enhance_unit(tf.cast(image, tf.float32) / maximum)
            return {"enhanced": tf.cast(tf.round(tf.clip_by_value(unit, 0.0, 1.0) * maximum), dtype)}

        return enhance

    spec = [None, None, None, 1]
    return {
        "serving_default": (quantized(255.0, tf.uint8), [tf.TensorSpec(spec, tf.uint8, name="image")]),
        "enhance_uint16": (quantized(65535.0, tf.uint16), [tf.TensorSpec(spec, tf.uint16, name="image")]),
        "enhance_float": (lambda image: {"enhanced": enhance_unit(image)},
                          [tf.TensorSpec(spec, tf.float32, name="image")]),
    }
