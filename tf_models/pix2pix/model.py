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

Loss options, all off by default (the paper's loss):

- `tissue_weight=W`: each pixel's L1 term is weighted by 1 + W inside the
  tissue of the target (a 5x5 box blur of it above `TISSUE_THRESHOLD`, the
  evaluation's breast mask threshold) and by 1 outside, normalised by the
  sum of the weights; a large W is a loss on tissue only. Mammograms are
  mostly film background, which would otherwise dominate the mean.
- `ssim_weight=S`: adds S x (1 - SSIM) of the output against the target, on [0, 1].
- `adversarial_weight=A` (1 in the paper) scales the PatchGAN term of the
  generator's loss (0: regression only), and `adversarial_start_step=K`
  switches it on only after K generator steps (regression first).
"""

import keras
import tensorflow as tf

from tf_models import metrics
from tf_models.core import adversarial, blocks, precision, strategy

NORMS = ("instance", "batch", "none")
GENERATORS = ("pix2pix", "unet")
TISSUE_THRESHOLD = 0.04


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
                    full_resolution_filters=0, architecture="pix2pix", name="generator"):
    """Image [N, H, W, channels] in [-1, 1] -> enhanced image, H and W divisible by 2**depth.

    `architecture="pix2pix"`: the paper's U-Net, `depth` stride-2 4x4
    convolutions down and as many transposed ones up, with skips.
    `architecture="unet"`: Ronneberger's U-Net (`blocks.unet_features`: two
    3x3 convolutions per level at every resolution, the input's included)
    and a 1x1 convolution; `norm` is `none` or `batch`, and the paper's
    dropout and full-resolution stem do not apply.
    """
    if norm not in NORMS:
        raise ValueError(f"Unknown norm {norm!r}; choose one of {', '.join(NORMS)}.")
    if architecture not in GENERATORS:
        raise ValueError(f"Unknown generator {architecture!r}; choose one of {', '.join(GENERATORS)}.")
    if full_resolution_filters < 0:
        raise ValueError(f"full_resolution_filters must be 0 (none) or positive, got {full_resolution_filters}.")
    inputs = keras.Input(shape=(None, None, channels), name="image")
    if architecture == "unet":
        x = _ronneberger_correction(inputs, channels, filters, depth, norm, dropout_blocks, full_resolution_filters)
    else:
        x = _pix2pix_correction(inputs, channels, filters, depth, norm, dropout_blocks, full_resolution_filters)
    if residual:
        outputs = keras.layers.Add(dtype="float32")([inputs, x])
        outputs = keras.layers.Activation("hard_tanh", dtype="float32", name="enhanced")(outputs)
    else:
        outputs = keras.layers.Activation("tanh", dtype="float32", name="enhanced")(x)
    return keras.Model(inputs, outputs, name=name)


def _ronneberger_correction(inputs, channels, filters, depth, norm, dropout_blocks, full_resolution_filters):
    if norm == "instance":
        raise ValueError("The unet generator takes norm 'none' or 'batch' (--norm), not 'instance'.")
    if dropout_blocks or full_resolution_filters:
        raise ValueError("The unet generator has no decoder dropout and no full-resolution stem of its own: "
                         "set --dropout-blocks 0 and --full-resolution-filters 0.")
    x = blocks.unet_features(inputs, depth, filters, batch_norm=norm == "batch")
    return keras.layers.Conv2D(channels, 1, dtype="float32", name="correction")(x)


def _pix2pix_correction(inputs, channels, filters, depth, norm, dropout_blocks, full_resolution_filters):
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
        return keras.layers.Conv2D(channels, 3, padding="same", dtype="float32")(x)
    return keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same", dtype="float32")(x)


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


def tissue_mask(target):
    """1 inside the tissue of a [N, H, W, C] batch in [-1, 1]: its 5x5 box blur on [0, 1] above the threshold."""
    blurred = tf.nn.avg_pool2d((target + 1.0) / 2.0, 5, 1, "SAME")
    return tf.cast(blurred > TISSUE_THRESHOLD, target.dtype)


def weighted_l1(target, enhanced, tissue_weight=0.0):
    """Per-example L1, each pixel weighted by 1 + `tissue_weight` inside the tissue mask (0: the plain mean)."""
    error = tf.abs(target - enhanced)
    if not tissue_weight:
        return _per_example_mean(error)
    weights = 1.0 + tissue_weight * tissue_mask(target)
    axes = tf.range(1, tf.rank(error))
    return tf.reduce_sum(weights * error, axis=axes) / tf.reduce_sum(weights * tf.ones_like(error), axis=axes)


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
        tissue_weight: extra L1 weight of the pixels inside the tissue (0: none).
        ssim_weight: weight of a 1 - SSIM term (0: none).
        adversarial_weight: weight of the PatchGAN term (1 in the paper; 0: regression only).
        adversarial_start_step: generator steps before the PatchGAN term is switched on (0: from the start).
        generator: `pix2pix` (the paper's U-Net) or `unet` (Ronneberger's, see `build_generator`).

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
                 ema_decay=0.0, tissue_weight=0.0, ssim_weight=0.0, adversarial_weight=1.0,
                 adversarial_start_step=0, generator="pix2pix", **kwargs):
        super().__init__(**kwargs)
        for name, value in (("tissue_weight", tissue_weight), ("ssim_weight", ssim_weight),
                            ("adversarial_weight", adversarial_weight),
                            ("adversarial_start_step", adversarial_start_step)):
            if value < 0:
                raise ValueError(f"{name} must be 0 or positive, got {value}.")
        self.tissue_weight = tissue_weight
        self.ssim_weight = ssim_weight
        self.adversarial_weight = adversarial_weight
        self.adversarial_start_step = adversarial_start_step
        self.channels = channels
        self.generator_filters = generator_filters
        self.generator_depth = generator_depth
        self.discriminator_filters = discriminator_filters
        self.l1_weight = l1_weight
        self.norm = norm
        self.dropout_blocks = dropout_blocks
        self.residual = residual
        self.full_resolution_filters = full_resolution_filters
        self.generator_architecture = generator
        self.generator = build_generator(channels, generator_filters, generator_depth, norm, dropout_blocks, residual,
                                         full_resolution_filters, generator)
        self.init_average_generator(ema_decay, lambda: build_generator(
            channels, generator_filters, generator_depth, norm, dropout_blocks, residual, full_resolution_filters,
            generator, name="average_generator",
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
            tissue_weight=self.tissue_weight, ssim_weight=self.ssim_weight,
            adversarial_weight=self.adversarial_weight, adversarial_start_step=self.adversarial_start_step,
            generator=self.generator_architecture,
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

    def _adversarial_scale(self):
        if not self.adversarial_start_step:
            return self.adversarial_weight
        started = self.generator_optimizer.iterations >= self.adversarial_start_step
        return tf.where(started, self.adversarial_weight, 0.0)

    def _regression_loss(self, enhanced, target):
        """lambda x (tissue-weighted) L1, plus the SSIM term when asked for; also returns the L1."""
        l1 = precision.replica_mean(weighted_l1(target, enhanced, self.tissue_weight))
        loss = self.l1_weight * l1
        if self.ssim_weight:
            ssim = tf.image.ssim((enhanced + 1.0) / 2.0, (target + 1.0) / 2.0, max_val=1.0)
            loss += self.ssim_weight * precision.replica_mean(1.0 - ssim)
        return loss, l1

    def train_step(self, data):
        if not self.adversarial_weight:
            return self._regression_step(data)
        source, target = data
        with tf.GradientTape() as generator_tape, tf.GradientTape() as discriminator_tape:
            enhanced = self.generator(source, training=True)
            real_logits = self.discriminator([source, target], training=True)
            fake_logits = self.discriminator([source, enhanced], training=True)
            adversarial_loss = precision.replica_mean(_per_example_mean(_bce(1.0, fake_logits)))
            regression_loss, l1 = self._regression_loss(enhanced, target)
            generator_loss = self._adversarial_scale() * adversarial_loss + regression_loss
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
        self.trackers["discriminator_loss"].update_state(discriminator_loss * replicas)
        self._training_metrics(enhanced, target, l1 * replicas)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _regression_step(self, data):
        """`adversarial_weight=0`: the generator alone, the discriminator neither run nor updated."""
        source, target = data
        with tf.GradientTape() as tape:
            enhanced = self.generator(source, training=True)
            loss, l1 = self._regression_loss(enhanced, target)
        step = precision.minimize(tape, loss, self.generator.trainable_variables, self.generator_optimizer)
        with tf.control_dependencies([step]):
            self.update_average_generator()
        self._training_metrics(enhanced, target, l1 * strategy.num_replicas())
        return {name: self.trackers[name].result() for name in ("l1_loss", "psnr", "ssim")}

    def _training_metrics(self, enhanced, target, l1):
        self.trackers["l1_loss"].update_state(l1)
        self._quality(enhanced, target)

    def test_step(self, data):
        source, target = data
        enhanced = self.sampling_generator(source, training=False)
        self.trackers["l1_loss"].update_state(tf.reduce_mean(tf.abs(target - enhanced)))
        self._quality(enhanced, target)
        return {name: self.trackers[name].result() for name in ("l1_loss", "psnr", "ssim")}

