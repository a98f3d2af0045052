"""The part every two-network adversarial model shares: two optimizers, no compile config."""

import keras

from tf_models.core import precision


class AdversarialModel(keras.Model):
    """A `keras.Model` with `generator` and `discriminator` networks, each with its own optimizer.

    Subclasses build `self.generator` and `self.discriminator` in `__init__`
    and write `train_step`; `compile` takes the two optimizers, wraps them for
    loss scaling under mixed_float16 and builds their slots at once, so that a
    checkpoint can be restored into them before the first step.
    """

    def compile(self, generator_optimizer, discriminator_optimizer, **kwargs):
        super().compile(**kwargs)
        self.generator_optimizer = precision.wrap_optimizer(generator_optimizer)
        self.discriminator_optimizer = precision.wrap_optimizer(discriminator_optimizer)
        self.generator_optimizer.build(self.generator.trainable_variables)
        self.discriminator_optimizer.build(self.discriminator.trainable_variables)

    def get_compile_config(self):
        """The optimizers are not saved in `.keras` files; checkpoints hold them."""
        return None
