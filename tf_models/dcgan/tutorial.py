"""The DCGAN of TensorFlow's tutorial (tensorflow.org/tutorials/generative/dcgan), as published.

It is the yardstick two comparisons measure the project against:

- `scripts/bench.py` times the tutorial's own training step (`make_train_step`:
  one `tf.function`, two `GradientTape`s over one forward pass, no XLA) next to
  the project's `DCGAN.train_step` on the same networks and batch;
- `scripts/compare_recipes.py` trains the tutorial's recipe and the project's
  for the same wall-clock budget and scores both with the same evaluator.

The networks (28x28x1 only): the generator is Dense(7*7*256) -> BN -> LeakyReLU
-> ConvTranspose 128 (5x5, stride 1) -> 64 (stride 2) -> 1 (stride 2, tanh);
the discriminator is Conv 64 -> Conv 128 (5x5, stride 2, LeakyReLU, dropout
0.3) -> Dense(1) logit. The recipe is Adam(1e-4) for both and batch 256.
`TutorialGAN` wraps that step into a model for the shared runner
(`train_dcgan.py --preset tutorial_step`).
"""

import keras
import tensorflow as tf

from tf_models.core import adversarial

IMAGE_SIZE = 28
LEARNING_RATE = 1e-4
BATCH_SIZE = 256


def build_generator(latent_dim=100, name="tutorial_generator"):
    inputs = keras.Input(shape=(latent_dim,), name="latent")
    x = keras.layers.Dense(7 * 7 * 256, use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.LeakyReLU()(x)
    x = keras.layers.Reshape((7, 7, 256))(x)
    for filters, strides in ((128, 1), (64, 2)):
        x = keras.layers.Conv2DTranspose(filters, 5, strides=strides, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.LeakyReLU()(x)
    x = keras.layers.Conv2DTranspose(1, 5, strides=2, padding="same", use_bias=False)(x)
    outputs = keras.layers.Activation("tanh", dtype="float32", name="image")(x)
    return keras.Model(inputs, outputs, name=name)


def build_discriminator(name="tutorial_discriminator"):
    inputs = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 1), name="image")
    x = inputs
    for filters in (64, 128):
        x = keras.layers.Conv2D(filters, 5, strides=2, padding="same")(x)
        x = keras.layers.LeakyReLU()(x)
        x = keras.layers.Dropout(0.3)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(1, dtype="float32", name="logit")(x)
    return keras.Model(inputs, outputs, name=name)


def make_train_step(generator, discriminator, generator_optimizer, discriminator_optimizer, latent_dim=100):
    """The tutorial's `train_step(images)`: both networks updated from one forward pass.

    Returns a `tf.function` that takes a batch of real images in [-1, 1] and
    returns `(generator_loss, discriminator_loss)`.
    """
    cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function
    def train_step(images):
        noise = tf.random.normal([tf.shape(images)[0], latent_dim])
        with tf.GradientTape() as generator_tape, tf.GradientTape() as discriminator_tape:
            generated_images = generator(noise, training=True)
            real_output = discriminator(images, training=True)
            fake_output = discriminator(generated_images, training=True)
            generator_loss = cross_entropy(tf.ones_like(fake_output), fake_output)
            discriminator_loss = cross_entropy(tf.ones_like(real_output), real_output) + cross_entropy(
                tf.zeros_like(fake_output), fake_output
            )
        generator_gradients = generator_tape.gradient(generator_loss, generator.trainable_variables)
        discriminator_gradients = discriminator_tape.gradient(discriminator_loss, discriminator.trainable_variables)
        generator_optimizer.apply_gradients(zip(generator_gradients, generator.trainable_variables))
        discriminator_optimizer.apply_gradients(zip(discriminator_gradients, discriminator.trainable_variables))
        return generator_loss, discriminator_loss

    return train_step


@keras.saving.register_keras_serializable(package="tf_models")
class TutorialGAN(adversarial.AdversarialModel):
    """The tutorial's networks trained by the tutorial's own step, as a model the shared runner drives.

    `train_step` calls `make_train_step` unchanged and only records its two
    losses, so a run of the tutorial's recipe gets the runner's checkpoints,
    logs, sample grids, time budget and export. The tutorial's step draws its
    noise from TensorFlow's global generator and does not scale its losses by
    the replica count or for float16: one device, float32 or bfloat16.

    Example:

    ```python
    gan = TutorialGAN()
    gan.compile(keras.optimizers.Adam(LEARNING_RATE), keras.optimizers.Adam(LEARNING_RATE))
    gan.fit(images_in_minus_one_to_one.batch(BATCH_SIZE), epochs=50)
    ```
    """

    def __init__(self, latent_dim=100, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim
        self.generator = build_generator(latent_dim)
        self.discriminator = build_discriminator()
        self.generator_loss_tracker = keras.metrics.Mean(name="generator_loss")
        self.discriminator_loss_tracker = keras.metrics.Mean(name="discriminator_loss")
        self.built = True

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim}

    @property
    def metrics(self):
        return [self.generator_loss_tracker, self.discriminator_loss_tracker]

    def compile(self, generator_optimizer, discriminator_optimizer, **kwargs):
        super().compile(generator_optimizer, discriminator_optimizer, **kwargs)
        self.tutorial_step = make_train_step(self.generator, self.discriminator, self.generator_optimizer,
                                             self.discriminator_optimizer, self.latent_dim)

    def call(self, latent, training=False):
        return self.generator(latent, training=training)

    def train_step(self, data):
        images = data[0] if isinstance(data, (tuple, list)) else data
        generator_loss, discriminator_loss = self.tutorial_step(images)
        self.generator_loss_tracker.update_state(generator_loss)
        self.discriminator_loss_tracker.update_state(discriminator_loss)
        return {metric.name: metric.result() for metric in self.metrics}
