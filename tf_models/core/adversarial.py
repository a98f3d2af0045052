"""The part every two-network adversarial model shares: two optimizers, no compile config, a weight average."""

import keras

from tf_models.core import precision


def average_decay(ema_decay, updates):
    """The decay of the weight average after `updates` generator updates: min(ema_decay, (1 + n) / (10 + n))."""
    updates = keras.ops.cast(updates, "float32")
    return keras.ops.minimum(ema_decay, (1.0 + updates) / (10.0 + updates))


class AdversarialModel(keras.Model):
    """A `keras.Model` with `generator` and `discriminator` networks, each with its own optimizer.

    Subclasses build `self.generator` and `self.discriminator` in `__init__`
    and write `train_step`; `compile` takes the two optimizers, wraps them for
    loss scaling under mixed_float16 and builds their slots at once, so that a
    checkpoint can be restored into them before the first step.

    A subclass may keep an exponential moving average of the generator's
    weights (`init_average_generator`, then `update_average_generator` after
    each generator update): `average_generator` starts as a copy of
    `generator` and after each update moves every weight, normalisation
    statistics included, to `decay * average + (1 - decay) * current`, where
    `decay = average_decay(ema_decay, n)` after the generator's n-th update.
    The warm-up of `average_decay` (as in `tf.train.ExponentialMovingAverage`
    with `num_updates`) keeps the random initial weights out of the average:
    with a constant 0.999 they would still weigh 0.999**2000 = 13.5 % after
    the 2,000 steps of the Fashion-MNIST `baseline` preset.
    Averaging the generator's iterates (Yazici et al., 2019, "The Unusual
    Effectiveness of Averaging in GAN Training") damps the oscillation of
    adversarial training; the average is never trained, only sampled.
    `sampling_generator` is the network to sample from (the average when it
    exists).
    """

    ema_decay = 0.0
    average_generator = None

    def compile(self, generator_optimizer, discriminator_optimizer, **kwargs):
        super().compile(**kwargs)
        self.generator_optimizer = precision.wrap_optimizer(generator_optimizer)
        self.discriminator_optimizer = precision.wrap_optimizer(discriminator_optimizer)
        self.generator_optimizer.build(self.generator.trainable_variables)
        self.discriminator_optimizer.build(self.discriminator.trainable_variables)

    def get_compile_config(self):
        """The optimizers are not saved in `.keras` files; checkpoints hold them."""
        return None

    def init_average_generator(self, ema_decay, build_generator):
        """Sets up the average of `self.generator` (`ema_decay` 0: none); `build_generator()` makes a twin."""
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) (0 turns the average off), not {ema_decay}.")
        self.ema_decay = ema_decay
        self.average_generator = None
        if ema_decay:
            self.average_generator = build_generator()
            self.average_generator.trainable = False
            self.average_generator.set_weights(self.generator.get_weights())

    @property
    def sampling_generator(self):
        """The generator to sample from: the weight average with `ema_decay` > 0, else `generator`."""
        return self.average_generator if self.ema_decay else self.generator

    def update_average_generator(self):
        """Moves every weight of `average_generator` towards `generator`'s (a no-op without an average).

        In a replica context each replica updates its own copy of the average
        (the variables' aggregation is NONE) from its own copy of the
        generator; the generator is the same on every replica after the
        optimizer's step, so the copies of the average stay equal with no
        communication.
        """
        if not self.ema_decay:
            return
        decay = average_decay(self.ema_decay, self.generator_optimizer.iterations)
        for average, current in zip(self.average_generator.weights, self.generator.weights):
            weight = keras.ops.cast(decay, average.dtype)
            average.assign(weight * average + (1.0 - weight) * current)
