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

With `num_classes` > 0 the model is class-conditional (Mirza and Osindero,
2014): the generator takes (latent, class id) and joins a learned class
embedding to the latent vector; the discriminator judges (image, class id),
either by projection (Miyato and Koyama, 2018: the logit is a linear function
of the image features plus their inner product with a learned class
embedding) or by one-hot class maps concatenated to the image channels.

With a `class_prior` the model is self-conditioned (Liu et al., 2020): the
classes are clusters of the training images (`pipelines.gan.pseudo_labels`),
the discriminator judges (image, cluster) as above, and the generator takes
the latent vector alone and reads its cluster from the latent's first entry
(`LatentCluster`), so each cluster is drawn as often as the training images
hold it. Outside training such a generator is an unconditional one.
"""

import math
import statistics

import keras
import tensorflow as tf

from tf_models.dcgan import tutorial as tutorial_dcgan
from tf_models.core import adversarial, precision, strategy

SUPPORTED_IMAGE_SIZES = (28, 32, 64)
ARCHITECTURES = ("dcgan", "tutorial")
CONDITIONINGS = ("projection", "concat")
LATENT_INPUT = "latent"
CLASS_INPUT = "class_id"


def _base_size(image_size):
    if image_size not in SUPPORTED_IMAGE_SIZES:
        raise ValueError(
            f"DCGAN image size {image_size} is not supported; choose one of {SUPPORTED_IMAGE_SIZES}."
        )
    return 7 if image_size == 28 else 4


def _upsampling_steps(image_size):
    return int(math.log2(image_size // _base_size(image_size)))


def prior_thresholds(prior):
    """Standard-normal quantiles at the cumulative shares of `prior` (all but the last): the cluster boundaries."""
    total = float(sum(prior))
    if len(prior) < 2 or min(prior) < 0 or total <= 0:
        raise ValueError(f"A cluster prior needs two or more non-negative shares with a positive sum, not {prior}.")
    cumulative, thresholds = 0.0, []
    for share in prior[:-1]:
        cumulative += share / total
        thresholds.append(statistics.NormalDist().inv_cdf(min(max(cumulative, 1e-12), 1.0 - 1e-12)))
    return thresholds


def latent_cluster_ids(latent, thresholds):
    """Cluster ids [N] int32 of latent vectors [N, D]: how many thresholds their first entry exceeds.

    For latent ~ N(0, I) and `thresholds = prior_thresholds(prior)`, id k comes with probability prior[k].
    """
    first = keras.ops.cast(latent[:, :1], "float32")
    above = keras.ops.greater(first, keras.ops.convert_to_tensor([thresholds], dtype="float32"))
    return keras.ops.sum(keras.ops.cast(above, "int32"), axis=-1)


@keras.saving.register_keras_serializable(package="tf_models")
class LatentCluster(keras.layers.Layer):
    """Latent vectors [N, D] -> the cluster ids [N] they stand for under `prior` (`latent_cluster_ids`)."""

    def __init__(self, prior, **kwargs):
        super().__init__(**kwargs)
        self.prior = [float(share) for share in prior]
        self.thresholds = prior_thresholds(self.prior)

    def call(self, latent):
        return latent_cluster_ids(latent, self.thresholds)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],)

    def get_config(self):
        return {**super().get_config(), "prior": self.prior}


def build_generator(image_size=28, channels=1, latent_dim=100, filters=64, name="generator", num_classes=0,
                    embedding_dim=50, class_prior=()):
    """Latent vector (and, with `num_classes` > 0, class id) -> image in [-1, 1].

    The first transposed convolution turns the latent vector (as a 1x1 map)
    into a `base x base` map (4x4, or 7x7 for 28 px); each following one
    doubles the size and halves the filters, down to `filters` before the
    output layer. For 64 px, latent 100 and filters 32 this is the five-layer
    generator 1 -> 4 -> 8 -> 16 -> 32 -> 64 with 256, 128, 64, 32 filters.
    A conditional generator concatenates an `embedding_dim` class embedding
    to the latent vector before the first layer. With a `class_prior` (one
    share per class) the class is not an input but the latent's cluster
    (`LatentCluster`).
    """
    base = _base_size(image_size)
    steps = _upsampling_steps(image_size)
    latent = keras.Input(shape=(latent_dim,), name=LATENT_INPUT)
    inputs, x = latent, latent
    if class_prior:
        class_id = LatentCluster(class_prior, dtype="float32", name="latent_cluster")(latent)
        embedding = keras.layers.Embedding(len(class_prior), embedding_dim, name="cluster_embedding")(class_id)
        x = keras.layers.Concatenate()([latent, embedding])
    elif num_classes:
        class_id = keras.Input(shape=(), dtype="int32", name=CLASS_INPUT)
        embedding = keras.layers.Embedding(num_classes, embedding_dim, name="class_embedding")(class_id)
        inputs = [latent, class_id]
        x = keras.layers.Concatenate()([latent, embedding])
    x = keras.layers.Reshape((1, 1, x.shape[-1]))(x)
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


def build_discriminator(image_size=28, channels=1, filters=64, name="discriminator", num_classes=0,
                        conditioning="projection"):
    """Image (and, with `num_classes` > 0, class id) -> one logit (positive: real).

    Strided 4x4 convolutions halve the size and double the filters down to the
    base map (4x4, or 7x7 for 28 px); a last convolution over the whole base
    map gives the logit. For 64 px and filters 32 this is the five-layer
    discriminator 64 -> 32 -> 16 -> 8 -> 4 -> 1.

    Conditional, `conditioning` is `projection` (the logit plus the inner
    product of the flattened base map with the class's embedding) or `concat`
    (`num_classes` one-hot maps joined to the image channels).
    """
    if conditioning not in CONDITIONINGS:
        raise ValueError(f"Unknown conditioning {conditioning!r}; choose one of {', '.join(CONDITIONINGS)}.")
    base = _base_size(image_size)
    steps = _upsampling_steps(image_size)
    image = keras.Input(shape=(image_size, image_size, channels), name="image")
    inputs, x = image, image
    if num_classes:
        class_id = keras.Input(shape=(), dtype="int32", name=CLASS_INPUT)
        inputs = [image, class_id]
        if conditioning == "concat":
            maps = keras.layers.CategoryEncoding(num_classes, output_mode="one_hot")(class_id)
            maps = keras.layers.Reshape((1, 1, num_classes))(maps)
            maps = keras.layers.UpSampling2D(image_size)(maps)
            x = keras.layers.Concatenate()([image, maps])
    for step in range(steps):
        x = keras.layers.Conv2D(filters * 2**step, 4, strides=2, padding="same", use_bias=step == 0)(x)
        if step > 0:
            x = strategy.batch_normalization()(x)
        x = keras.layers.LeakyReLU(0.2)(x)
    features = x
    x = keras.layers.Conv2D(1, base, padding="valid")(x)
    x = keras.layers.Flatten()(x)
    if num_classes and conditioning == "projection":
        flat = keras.layers.Flatten()(features)
        embedding = keras.layers.Embedding(num_classes, flat.shape[-1], name="class_projection")(class_id)
        x = keras.layers.Add()([x, keras.layers.Dot(axes=1)([flat, embedding])])
    outputs = keras.layers.Activation("linear", dtype="float32", name="logit")(x)
    return keras.Model(inputs, outputs, name=name)


def build_networks(architecture, image_size, channels, latent_dim, generator_filters, discriminator_filters,
                   num_classes=0, conditioning="projection", embedding_dim=50, class_prior=()):
    """(generator, discriminator) of `architecture`: `dcgan` (above) or `tutorial` (TF tutorial, 28x28x1)."""
    generator = build_architecture_generator(architecture, image_size, channels, latent_dim, generator_filters,
                                             num_classes=num_classes, embedding_dim=embedding_dim,
                                             class_prior=class_prior)
    if architecture == "tutorial":
        return generator, tutorial_dcgan.build_discriminator()
    return generator, build_discriminator(image_size, channels, discriminator_filters, num_classes=num_classes,
                                          conditioning=conditioning)


def build_architecture_generator(architecture, image_size, channels, latent_dim, filters, name_prefix="",
                                 num_classes=0, embedding_dim=50, class_prior=()):
    """The generator of `architecture` (see `build_networks`), its name prefixed with `name_prefix`."""
    if architecture == "dcgan":
        return build_generator(image_size, channels, latent_dim, filters, name=f"{name_prefix}generator",
                               num_classes=num_classes, embedding_dim=embedding_dim, class_prior=class_prior)
    if architecture == "tutorial":
        if num_classes:
            raise ValueError("The tutorial architecture is unconditional; use --architecture dcgan with "
                             "--conditional.")
        if (image_size, channels) != (tutorial_dcgan.IMAGE_SIZE, 1):
            raise ValueError(
                f"The tutorial architecture makes 28x28x1 images, not {image_size}x{image_size}x{channels}."
            )
        return tutorial_dcgan.build_generator(latent_dim, name=f"{name_prefix}tutorial_generator")
    raise ValueError(f"Unknown DCGAN architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}.")


def latent_dim_of(generator):
    """The latent size of a generator, conditional (two inputs) or not."""
    shapes = generator.input_shape
    return (shapes[0] if isinstance(shapes, list) else shapes)[-1]


def num_classes_of(generator):
    """The number of classes a conditional generator takes (0: unconditional)."""
    if not isinstance(generator.input_shape, list):
        return 0
    return generator.get_layer("class_embedding").input_dim


def generator_inputs(generator, latent, class_ids=None):
    """The generator's input for `latent` (and `class_ids`, required when it is conditional)."""
    if not num_classes_of(generator):
        return latent
    if class_ids is None:
        raise ValueError("This generator is class-conditional: give the class of each image.")
    return [tf.convert_to_tensor(latent), tf.cast(class_ids, tf.int32)]


def balanced_class_ids(count, num_classes):
    """0, 1, ..., num_classes - 1, 0, 1, ...: `count` class ids, every class equally often (+-1)."""
    return tf.range(count, dtype=tf.int32) % num_classes


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
        num_classes: 0 (unconditional) or the number of classes: the model
            then trains on (image, label) batches, its generator takes
            (latent, class id) and its discriminator (image, class id).
        conditioning: how the discriminator takes the class, `projection` or
            `concat` (see `build_discriminator`).
        embedding_dim: size of the generator's class embedding.
        class_names: the names of the `num_classes` classes, in label order
            (kept with the model, so a saved model can be asked for a class
            by name); empty: none.
        class_prior: empty, or one share per class (`num_classes` of them):
            the model is then self-conditioned (see the module docstring);
            it trains on (image, cluster id) batches, and its generator takes
            the latent vector alone.

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

    # Per real image, one train_step runs the generator once forward and back, and the discriminator
    # three times (real, fake, fake again for the generator's loss), each backpropagated (tf_models.tools.flops).
    training_passes = {"generator": (1, 1), "discriminator": (3, 3)}

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
        num_classes=0,
        conditioning="projection",
        embedding_dim=50,
        class_names=(),
        class_prior=(),
        **kwargs,
    ):
        super().__init__(**kwargs)
        if class_names and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes; give one name per class.")
        if class_prior and len(class_prior) != num_classes:
            raise ValueError(f"{len(class_prior)} cluster shares for {num_classes} classes; give one per class.")
        self.image_size = image_size
        self.channels = channels
        self.latent_dim = latent_dim
        self.generator_filters = generator_filters
        self.discriminator_filters = discriminator_filters
        self.real_label = real_label
        self.seed = seed
        self.architecture = architecture
        self.num_classes = num_classes
        self.conditioning = conditioning
        self.embedding_dim = embedding_dim
        self.class_names = tuple(class_names)
        self.class_prior = tuple(float(share) for share in class_prior)
        self.generator, self.discriminator = build_networks(
            architecture, image_size, channels, latent_dim, generator_filters, discriminator_filters,
            num_classes, conditioning, embedding_dim, self.class_prior,
        )
        self.init_average_generator(ema_decay, lambda: build_architecture_generator(
            architecture, image_size, channels, latent_dim, generator_filters, name_prefix="average_",
            num_classes=num_classes, embedding_dim=embedding_dim, class_prior=self.class_prior,
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
            num_classes=self.num_classes,
            conditioning=self.conditioning,
            embedding_dim=self.embedding_dim,
            class_names=list(self.class_names),
            class_prior=list(self.class_prior),
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

    def call(self, inputs, training=False):
        """Images from `latent`, or from `(latent, class_ids)` when conditional."""
        return (self.generator if training else self.sampling_generator)(inputs, training=training)

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

    def sample_replica_class_ids(self, batch_size):
        """Uniform class ids for this replica's generated images, sliced from one global draw."""
        global_batch = batch_size * strategy.num_replicas()
        class_ids = keras.random.randint((global_batch,), 0, self.num_classes, seed=self.seed_generator,
                                         dtype="int32")
        return strategy.replica_rows(class_ids, batch_size)

    def generate(self, count, seed=None, class_ids=None):
        """`count` images in [-1, 1] from fresh noise; conditional: of `class_ids` (default: every class in turn)."""
        latent = keras.random.normal((count, self.latent_dim), seed=seed)
        if self.class_prior:
            return self.sampling_generator(latent, training=False)
        if self.num_classes and class_ids is None:
            class_ids = balanced_class_ids(count, self.num_classes)
        return self.sampling_generator(generator_inputs(self.sampling_generator, latent, class_ids), training=False)

    def _split_batch(self, data):
        """(real images, their labels or None) of a batch."""
        if not self.num_classes:
            return (data[0] if isinstance(data, (tuple, list)) else data), None
        if not isinstance(data, (tuple, list)) or len(data) < 2:
            raise ValueError("A conditional DCGAN trains on (image, label) batches; the data gave images only.")
        return data[0], tf.cast(data[1], tf.int32)

    def _judge(self, images, class_ids):
        inputs = images if class_ids is None else [images, class_ids]
        return self.discriminator(inputs, training=True)

    def train_step(self, data):
        """One alternating update: the discriminator, then the generator against the updated discriminator.

        The generator's forward pass is computed once and serves both updates
        (as in the PyTorch DCGAN example): the generator's weights do not change
        while the discriminator is updated, so its images are those a second
        forward pass with the same noise would give. The generator's gradient
        still goes through the updated discriminator. `make bench` times this
        step against the TF tutorial's (docs/benchmarks.md).
        """
        real_images, real_labels = self._split_batch(data)
        batch_size = tf.shape(real_images)[0]
        latent = self.sample_replica_latent(batch_size)
        if self.class_prior:
            fake_labels = self.generator.get_layer("latent_cluster")(latent)
        else:
            fake_labels = self.sample_replica_class_ids(batch_size) if self.num_classes else None

        with tf.GradientTape() as generator_tape:
            fake_images = self.generator(generator_inputs(self.generator, latent, fake_labels), training=True)
            with generator_tape.stop_recording():
                with tf.GradientTape() as tape:
                    real_logits = self._judge(real_images, real_labels)
                    fake_logits = self._judge(fake_images, fake_labels)
                    discriminator_loss = precision.replica_mean(
                        _binary_cross_entropy(self.real_label, real_logits)
                        + _binary_cross_entropy(0.0, fake_logits)
                    )
                precision.minimize(
                    tape, discriminator_loss, self.discriminator.trainable_variables, self.discriminator_optimizer
                )
            generated_logits = self._judge(fake_images, fake_labels)
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
