"""DCGAN (Radford, Metz and Chintala, 2015) for 28, 32 and 64 pixel images.

The generator maps a latent vector to an image in [-1, 1] with transposed
convolutions; the discriminator maps an image to one real/fake logit with
strided convolutions. Both follow the paper's guidelines (no pooling, batch
normalisation everywhere except the generator output and the discriminator
input), with LeakyReLU(0.2) in both networks as the Fashion-MNIST recipe asks
(the paper uses ReLU in the generator).

The discriminator returns a logit, and the losses are binary cross-entropy on
logits. This is the same objective as a sigmoid output with BCE on
probabilities, computed in a numerically stable way (log-sum-exp), and it keeps
the loss in float32 under mixed precision.
"""

import math

import keras
import tensorflow as tf

from tf_models.dcgan import tutorial as tutorial_dcgan
from tf_models.core import adversarial, precision, strategy

SUPPORTED_IMAGE_SIZES = (28, 32, 64)
ARCHITECTURES = ("dcgan", "tutorial")


def _base_size(image_size):
    if image_size not in SUPPORTED_IMAGE_SIZES:
        raise ValueError(
            f"DCGAN image size {image_size} is not supported; choose one of {SUPPORTED_IMAGE_SIZES}."
        )
    return 7 if image_size == 28 else 4


def _upsampling_steps(image_size):
    return int(math.log2(image_size // _base_size(image_size)))


def build_generator(image_size=28, channels=1, latent_dim=100, filters=64, name="generator"):
    """Latent vector -> image in [-1, 1].

    The first transposed convolution turns the latent vector (as a 1x1 map)
    into a `base x base` map (4x4, or 7x7 for 28 px); each following one
    doubles the size and halves the filters, down to `filters` before the
    output layer. For 64 px, latent 100 and filters 32 this is the five-layer
    generator 1 -> 4 -> 8 -> 16 -> 32 -> 64 with 256, 128, 64, 32 filters.
    """
    base = _base_size(image_size)
    steps = _upsampling_steps(image_size)
    inputs = keras.Input(shape=(latent_dim,), name="latent")
    x = keras.layers.Reshape((1, 1, latent_dim))(inputs)
    x = keras.layers.Conv2DTranspose(filters * 2 ** (steps - 1), base, padding="valid", use_bias=False)(x)
    x = strategy.batch_normalization()(x)
    x = keras.layers.LeakyReLU(0.2)(x)
    for step in range(steps - 1):
        x = keras.layers.Conv2DTranspose(
            filters * 2 ** (steps - 2 - step), 4, strides=2, padding="same", use_bias=False
        )(x)
        x = strategy.batch_normalization()(x)
        x = keras.layers.LeakyReLU(0.2)(x)
    x = keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same")(x)
    outputs = keras.layers.Activation("tanh", dtype="float32", name="image")(x)
    return keras.Model(inputs, outputs, name=name)


def build_discriminator(image_size=28, channels=1, filters=64, name="discriminator"):
    """Image -> one logit (positive: real).

    Strided 4x4 convolutions halve the size and double the filters down to the
    base map (4x4, or 7x7 for 28 px); a last convolution over the whole base
    map gives the logit. For 64 px and filters 32 this is the five-layer
    discriminator 64 -> 32 -> 16 -> 8 -> 4 -> 1.
    """
    base = _base_size(image_size)
    steps = _upsampling_steps(image_size)
    inputs = keras.Input(shape=(image_size, image_size, channels), name="image")
    x = inputs
    for step in range(steps):
        x = keras.layers.Conv2D(filters * 2**step, 4, strides=2, padding="same", use_bias=step == 0)(x)
        if step > 0:
            x = strategy.batch_normalization()(x)
        x = keras.layers.LeakyReLU(0.2)(x)
    x = keras.layers.Conv2D(1, base, padding="valid")(x)
    outputs = keras.layers.Flatten(dtype="float32", name="logit")(x)
    return keras.Model(inputs, outputs, name=name)


def build_networks(architecture, image_size, channels, latent_dim, generator_filters, discriminator_filters):
    """(generator, discriminator) of `architecture`: `dcgan` (above) or `tutorial` (TF tutorial, 28x28x1)."""
    generator = build_architecture_generator(architecture, image_size, channels, latent_dim, generator_filters)
    if architecture == "tutorial":
        return generator, tutorial_dcgan.build_discriminator()
    return generator, build_discriminator(image_size, channels, discriminator_filters)


def build_architecture_generator(architecture, image_size, channels, latent_dim, filters, name_prefix=""):
    """The generator of `architecture` (see `build_networks`), its name prefixed with `name_prefix`."""
    if architecture == "dcgan":
        return build_generator(image_size, channels, latent_dim, filters, name=f"{name_prefix}generator")
    if architecture == "tutorial":
        if (image_size, channels) != (tutorial_dcgan.IMAGE_SIZE, 1):
            raise ValueError(
                f"The tutorial architecture makes 28x28x1 images, not {image_size}x{image_size}x{channels}."
            )
        return tutorial_dcgan.build_generator(latent_dim, name=f"{name_prefix}tutorial_generator")
    raise ValueError(f"Unknown DCGAN architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}.")


def _binary_cross_entropy(target, logits):
    target = tf.fill(tf.shape(logits), tf.cast(target, logits.dtype))
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits)


@keras.saving.register_keras_serializable(package="tf_models")
class DCGAN(adversarial.AdversarialModel):
    """A generator and a discriminator trained against each other.

    Args:
        image_size: 28, 32 or 64.
        channels: 1 (grayscale) or 3 (RGB).
        latent_dim: size of the latent vector (nz).
        generator_filters: filters of the generator's last hidden layer (ngf).
        discriminator_filters: filters of the discriminator's first layer (ndf).
        real_label: target for real images (0.9 gives one-sided label smoothing).
        seed: seed of the latent noise drawn in `train_step`.
        architecture: `dcgan` (the builders above) or `tutorial` (the TF
            tutorial's networks, `tf_models.tutorial_dcgan`; the filter counts
            are then the tutorial's own).
        ema_decay: 0 (off) or the decay of an exponential moving average of
            the generator's weights, e.g. 0.999 (`AdversarialModel`): `generate`,
            inference calls of the model, and the task's sample grids, exports
            and scoring then sample the average.

    Example:

    ```python
    gan = DCGAN(image_size=28, channels=1)
    gan.compile(
        generator_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
        discriminator_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
    )
    gan.fit(images_in_minus_one_to_one.batch(128), epochs=5)
    images = gan.generate(16)
    ```
    """

    def __init__(
        self,
        image_size=28,
        channels=1,
        latent_dim=100,
        generator_filters=64,
        discriminator_filters=64,
        real_label=1.0,
        seed=None,
        architecture="dcgan",
        ema_decay=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.image_size = image_size
        self.channels = channels
        self.latent_dim = latent_dim
        self.generator_filters = generator_filters
        self.discriminator_filters = discriminator_filters
        self.real_label = real_label
        self.seed = seed
        self.architecture = architecture
        self.generator, self.discriminator = build_networks(
            architecture, image_size, channels, latent_dim, generator_filters, discriminator_filters
        )
        self.init_average_generator(ema_decay, lambda: build_architecture_generator(
            architecture, image_size, channels, latent_dim, generator_filters, name_prefix="average_"
        ))
        self.seed_generator = keras.random.SeedGenerator(seed, name="noise_seed")
        self.generator_loss_tracker = keras.metrics.Mean(name="generator_loss")
        self.discriminator_loss_tracker = keras.metrics.Mean(name="discriminator_loss")
        self.real_score_tracker = keras.metrics.Mean(name="real_score")
        self.fake_score_tracker = keras.metrics.Mean(name="fake_score")
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update(
            image_size=self.image_size,
            channels=self.channels,
            latent_dim=self.latent_dim,
            generator_filters=self.generator_filters,
            discriminator_filters=self.discriminator_filters,
            real_label=self.real_label,
            seed=self.seed,
            architecture=self.architecture,
            ema_decay=self.ema_decay,
        )
        return config

    @property
    def metrics(self):
        return [
            self.generator_loss_tracker,
            self.discriminator_loss_tracker,
            self.real_score_tracker,
            self.fake_score_tracker,
        ]

    def call(self, latent, training=False):
        return (self.generator if training else self.sampling_generator)(latent, training=training)

    def sample_latent(self, batch_size):
        return keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)

    def sample_replica_latent(self, batch_size):
        """Noise for this replica's `batch_size` images: its rows of one draw for the global batch.

        The seed state is shared by the replicas, so drawing `batch_size`
        vectors on each would give every replica the same noise. Slicing one
        global draw gives each replica its own noise and makes a step on N
        replicas use the noise one replica would use for the whole batch.
        """
        return strategy.replica_rows(self.sample_latent(batch_size * strategy.num_replicas()), batch_size)

    def generate(self, count, seed=None):
        """`count` images in [-1, 1] from fresh noise."""
        latent = keras.random.normal((count, self.latent_dim), seed=seed)
        return self.sampling_generator(latent, training=False)

    def train_step(self, data):
        """One alternating update: the discriminator, then the generator against the updated discriminator.

        The generator's forward pass is computed once and serves both updates
        (as in the PyTorch DCGAN example): the generator's weights do not change
        while the discriminator is updated, so its images are those a second
        forward pass with the same noise would give. The generator's gradient
        still goes through the updated discriminator. `make bench` times this
        step against the TF tutorial's (docs/benchmarks.md).
        """
        real_images = data[0] if isinstance(data, (tuple, list)) else data
        batch_size = tf.shape(real_images)[0]

        with tf.GradientTape() as generator_tape:
            fake_images = self.generator(self.sample_replica_latent(batch_size), training=True)
            with generator_tape.stop_recording():
                with tf.GradientTape() as tape:
                    real_logits = self.discriminator(real_images, training=True)
                    fake_logits = self.discriminator(fake_images, training=True)
                    discriminator_loss = precision.replica_mean(
                        _binary_cross_entropy(self.real_label, real_logits)
                        + _binary_cross_entropy(0.0, fake_logits)
                    )
                precision.minimize(
                    tape, discriminator_loss, self.discriminator.trainable_variables, self.discriminator_optimizer
                )
            generated_logits = self.discriminator(fake_images, training=True)
            generator_loss = precision.replica_mean(_binary_cross_entropy(1.0, generated_logits))
        precision.minimize(
            generator_tape, generator_loss, self.generator.trainable_variables, self.generator_optimizer
        )
        self.update_average_generator()

        replicas = strategy.num_replicas()
        self.generator_loss_tracker.update_state(generator_loss * replicas)
        self.discriminator_loss_tracker.update_state(discriminator_loss * replicas)
        self.real_score_tracker.update_state(tf.sigmoid(real_logits))
        self.fake_score_tracker.update_state(tf.sigmoid(fake_logits))
        return {metric.name: metric.result() for metric in self.metrics}
