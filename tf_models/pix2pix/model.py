"""Pix2Pix (Isola et al., 2017): a U-Net generator and a PatchGAN discriminator.

The generator maps a low-quality image to a high-quality one; the
discriminator judges (input, output) pairs patch by patch (70x70 receptive
field). The generator's loss is adversarial BCE on logits plus
`l1_weight` x L1 to the target (100 in the paper).

Choices for enhancement, all options:

- `residual=True`: the generator predicts a correction added to its input,
  so an untrained model starts as the identity and training only has to
  learn what the degradation took away.
- `norm="instance"`: instance normalisation (GroupNormalization with one
  group per channel) instead of batch normalisation. It behaves the same in
  training and inference, so the exported model computes exactly what was
  validated, whatever the batch size. The innermost encoder block has no
  normalisation, as its map can be 1x1.
- Dropout in the first `dropout_blocks` decoder blocks is active in training
  only; inference (`training=False`, and so every export) is deterministic.
- `full_resolution_filters=F` (0 in the paper): two 3x3 convolutions of F
  filters at the input's resolution before the first stride-2 block, and two
  after the last transposed one, joined by a skip. The paper's U-Net has no
  layer at full resolution (its first convolution has stride 2 and its last
  is a stride-2 transposed convolution), so every output pixel is painted
  from half-resolution features; a denoiser needs to look at each pixel's
  own neighbourhood.
"""

import keras
import tensorflow as tf

from tf_models import metrics
from tf_models.core import adversarial, precision, strategy

NORMS = ("instance", "batch", "none")


def _normalization(norm):
    if norm == "instance":
        return keras.layers.GroupNormalization(groups=-1, epsilon=1e-5)
    if norm == "batch":
        return strategy.batch_normalization()
    return keras.layers.Identity()


def _encoder_filters(filters, block):
    return filters * min(2**block, 8)


def _full_resolution_convolutions(x, filters):
    for _ in range(2):
        x = keras.layers.Conv2D(filters, 3, padding="same")(x)
        x = keras.layers.LeakyReLU(0.2)(x)
    return x


def build_generator(channels=1, filters=64, depth=8, norm="instance", dropout_blocks=3, residual=True,
                    full_resolution_filters=0, name="generator"):
    """U-Net: `depth` stride-2 4x4 convolutions down, as many transposed ones up, with skips.

    Inputs are [N, H, W, channels] in [-1, 1] with H and W divisible by 2**depth.
    """
    if norm not in NORMS:
        raise ValueError(f"Unknown norm {norm!r}; choose one of {', '.join(NORMS)}.")
    if full_resolution_filters < 0:
        raise ValueError(f"full_resolution_filters must be 0 (none) or positive, got {full_resolution_filters}.")
    inputs = keras.Input(shape=(None, None, channels), name="image")
    x = inputs
    if full_resolution_filters:
        x = full_resolution_skip = _full_resolution_convolutions(x, full_resolution_filters)
    skips = []
    for block in range(depth):
        x = keras.layers.Conv2D(_encoder_filters(filters, block), 4, strides=2, padding="same", use_bias=False)(x)
        if 0 < block < depth - 1:
            x = _normalization(norm)(x)
        x = keras.layers.LeakyReLU(0.2)(x)
        skips.append(x)
    for block in reversed(range(depth - 1)):
        x = keras.layers.Conv2DTranspose(_encoder_filters(filters, block), 4, strides=2, padding="same",
                                         use_bias=False)(x)
        x = _normalization(norm)(x)
        if depth - 2 - block < dropout_blocks:
            x = strategy.dropout(0.5)(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.Concatenate()([x, skips[block]])
    if full_resolution_filters:
        x = keras.layers.Conv2DTranspose(full_resolution_filters, 4, strides=2, padding="same")(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.Concatenate()([x, full_resolution_skip])
        x = _full_resolution_convolutions(x, full_resolution_filters)
        x = keras.layers.Conv2D(channels, 3, padding="same", dtype="float32")(x)
    else:
        x = keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same", dtype="float32")(x)
    if residual:
        outputs = keras.layers.Add(dtype="float32")([inputs, x])
        outputs = keras.layers.Activation("hard_tanh", dtype="float32", name="enhanced")(outputs)
    else:
        outputs = keras.layers.Activation("tanh", dtype="float32", name="enhanced")(x)
    return keras.Model(inputs, outputs, name=name)


def build_discriminator(channels=1, filters=64, norm="instance", name="discriminator"):
    """PatchGAN: C64-C128-C256-C512 (4x4 kernels) and a 1-channel logit map; 70x70 receptive field."""
    source = keras.Input(shape=(None, None, channels), name="input_image")
    candidate = keras.Input(shape=(None, None, channels), name="candidate_image")
    x = keras.layers.Concatenate()([source, candidate])
    for block, strides in enumerate((2, 2, 2, 1)):
        x = keras.layers.Conv2D(filters * 2**block, 4, strides=strides, padding="same", use_bias=block == 0)(x)
        if block > 0:
            x = _normalization(norm)(x)
        x = keras.layers.LeakyReLU(0.2)(x)
    outputs = keras.layers.Conv2D(1, 4, padding="same", dtype="float32", name="patch_logits")(x)
    return keras.Model([source, candidate], outputs, name=name)


def _bce(target, logits):
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), target), logits=logits)


def _per_example_mean(tensor):
    return tf.reduce_mean(tensor, axis=tf.range(1, tf.rank(tensor)))


@keras.saving.register_keras_serializable(package="tf_models")
class Pix2Pix(adversarial.AdversarialModel):
    """Conditional GAN for image-to-image translation.

    Args:
        channels: image channels (1 for mammograms).
        generator_filters, generator_depth: width and depth of the U-Net.
        discriminator_filters: width of the PatchGAN.
        l1_weight: weight of the L1 term (lambda).
        norm: `instance`, `batch` or `none`.
        dropout_blocks: decoder blocks with dropout (training only).
        residual: predict a correction added to the input.
        full_resolution_filters: width of the full-resolution stem and head (0: none, as in the paper).
        ema_decay: 0 (off) or the decay of an exponential moving average of
            the generator's weights (`AdversarialModel`); inference calls,
            validation and the task's figures and exports then use the average.

    Example:

    ```python
    model = Pix2Pix(channels=1, generator_filters=32, generator_depth=6)
    model.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5))
    model.fit(pairs_in_minus_one_to_one.batch(4), epochs=10)
    enhanced = model.generator(low_quality, training=False)
    ```
    """

    # Per pair, one train_step runs the generator once forward and back, and the discriminator forward on
    # the real and the enhanced pair, backpropagated once and twice (both tapes; tf_models.tools.flops).
    training_passes = {"generator": (1, 1), "discriminator": (2, 3)}

    def __init__(self, channels=1, generator_filters=64, generator_depth=8, discriminator_filters=64,
                 l1_weight=100.0, norm="instance", dropout_blocks=3, residual=True, full_resolution_filters=0,
                 ema_decay=0.0, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.generator_filters = generator_filters
        self.generator_depth = generator_depth
        self.discriminator_filters = discriminator_filters
        self.l1_weight = l1_weight
        self.norm = norm
        self.dropout_blocks = dropout_blocks
        self.residual = residual
        self.full_resolution_filters = full_resolution_filters
        self.generator = build_generator(channels, generator_filters, generator_depth, norm, dropout_blocks, residual,
                                         full_resolution_filters)
        self.init_average_generator(ema_decay, lambda: build_generator(
            channels, generator_filters, generator_depth, norm, dropout_blocks, residual, full_resolution_filters,
            name="average_generator",
        ))
        self.discriminator = build_discriminator(channels, discriminator_filters, norm)
        self.trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ("generator_loss", "l1_loss", "discriminator_loss", "psnr", "ssim")
        }
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update(
            channels=self.channels, generator_filters=self.generator_filters,
            generator_depth=self.generator_depth, discriminator_filters=self.discriminator_filters,
            l1_weight=self.l1_weight, norm=self.norm, dropout_blocks=self.dropout_blocks,
            residual=self.residual, full_resolution_filters=self.full_resolution_filters, ema_decay=self.ema_decay,
        )
        return config

    @property
    def size_multiple(self):
        return 2**self.generator_depth

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, images, training=False):
        return (self.generator if training else self.sampling_generator)(images, training=training)

    def _quality(self, enhanced, target):
        """PSNR (capped at `metrics.PSNR_CAP_DB`, as in the evaluation: a crop of pure background can be
        reproduced exactly) and SSIM on [0, 1]."""
        enhanced01, target01 = (enhanced + 1.0) / 2.0, (target + 1.0) / 2.0
        psnr = tf.minimum(tf.image.psnr(enhanced01, target01, max_val=1.0), metrics.PSNR_CAP_DB)
        self.trackers["psnr"].update_state(psnr)
        self.trackers["ssim"].update_state(tf.image.ssim(enhanced01, target01, max_val=1.0))

    def train_step(self, data):
        source, target = data
        with tf.GradientTape() as generator_tape, tf.GradientTape() as discriminator_tape:
            enhanced = self.generator(source, training=True)
            real_logits = self.discriminator([source, target], training=True)
            fake_logits = self.discriminator([source, enhanced], training=True)
            adversarial_loss = precision.replica_mean(_per_example_mean(_bce(1.0, fake_logits)))
            l1 = precision.replica_mean(_per_example_mean(tf.abs(target - enhanced)))
            generator_loss = adversarial_loss + self.l1_weight * l1
            discriminator_loss = precision.replica_mean(
                _per_example_mean(_bce(1.0, real_logits)) + _per_example_mean(_bce(0.0, fake_logits))
            ) / 2.0
        generator_step = precision.minimize(generator_tape, generator_loss, self.generator.trainable_variables,
                                            self.generator_optimizer)
        with tf.control_dependencies([generator_step]):
            precision.minimize(discriminator_tape, discriminator_loss, self.discriminator.trainable_variables,
                               self.discriminator_optimizer)
            self.update_average_generator()
        replicas = strategy.num_replicas()
        self.trackers["generator_loss"].update_state(adversarial_loss * replicas)
        self.trackers["l1_loss"].update_state(l1 * replicas)
        self.trackers["discriminator_loss"].update_state(discriminator_loss * replicas)
        self._quality(enhanced, target)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def test_step(self, data):
        source, target = data
        enhanced = self.sampling_generator(source, training=False)
        self.trackers["l1_loss"].update_state(tf.reduce_mean(tf.abs(target - enhanced)))
        self._quality(enhanced, target)
        return {name: self.trackers[name].result() for name in ("l1_loss", "psnr", "ssim")}


def enhance_tiled(generator, image, tile=256, overlap=32, size_multiple=1):
    """Enhances a whole [H, W, C] image in [-1, 1] by overlapping tiles with blended seams.

    Neighbouring tiles overlap by 2 x `overlap` pixels. Each tile is weighted
    by a window that is ~0 in its outer `overlap / 2` pixels (where the
    network saw the tile's padding instead of the image) and rises linearly
    to 1 at `overlap` pixels in, and the weighted tiles are averaged, so seams
    do not show. The image is reflect-padded to whole tiles and cropped back.
    """
    if tile % size_multiple:
        raise ValueError(f"The tile size {tile} must be a multiple of {size_multiple}.")
    if not 0 <= overlap < tile // 2:
        raise ValueError(f"The overlap must be between 0 and half the tile ({tile // 2}), got {overlap}.")
    image = tf.convert_to_tensor(image, tf.float32)
    height, width = int(image.shape[0]), int(image.shape[1])
    stride = tile - 2 * overlap if overlap else tile
    rows = max(1, -(-(height - tile) // stride) + 1) if height > tile else 1
    columns = max(1, -(-(width - tile) // stride) + 1) if width > tile else 1
    padded_height, padded_width = (rows - 1) * stride + tile, (columns - 1) * stride + tile
    pad = [[0, padded_height - height], [0, padded_width - width], [0, 0]]
    mode = "REFLECT" if padded_height - height < height and padded_width - width < width else "SYMMETRIC"
    padded = tf.pad(image, pad, mode=mode)
    distance = tf.minimum(tf.range(tile, dtype=tf.float32), tf.reverse(tf.range(tile, dtype=tf.float32), [0]))
    half = max(overlap / 2.0, 1.0)
    ramp = tf.clip_by_value((distance - half + 1.0) / half, 1e-6, 1.0) if overlap else tf.ones([tile])
    window = (ramp[:, None] * ramp[None, :])[..., None]
    tiles = [padded[r * stride:r * stride + tile, c * stride:c * stride + tile]
             for r in range(rows) for c in range(columns)]
    outputs = tf.concat([generator(tf.stack(tiles[i:i + 8]), training=False) for i in range(0, len(tiles), 8)], 0)
    total = tf.zeros_like(padded)
    weight = tf.zeros_like(padded[..., :1])
    for index, output in enumerate(tf.unstack(outputs)):
        r, c = divmod(index, columns)
        paddings = [[r * stride, padded_height - r * stride - tile], [c * stride, padded_width - c * stride - tile], [0, 0]]
        total += tf.pad(output * window, paddings)
        weight += tf.pad(window, paddings)
    return (total / weight)[:height, :width]
