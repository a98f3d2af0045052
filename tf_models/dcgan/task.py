"""The DCGAN task: data, model, callbacks and export for the shared runner."""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from pipelines import gan as gan_pipeline
from tf_models import metrics
from tf_models.dcgan import model as dcgan
from tf_models.dcgan import tutorial as tutorial_dcgan
from tf_models.core import callbacks as callbacks_lib
from tf_models.core import config as config_lib
from tf_models.core import export as export_lib
from tf_models.core import runner

option = config_lib.option


@dataclasses.dataclass
class DCGANConfig(config_lib.TrainConfig):
    image_size: int = option(0, "28, 32 or 64; 0 uses the data's own size (digits: 28)")
    channels: int = option(0, "1 or 3; 0 uses the data's own channels")
    latent_dim: int = option(100, "size of the latent vector (nz)")
    generator_filters: int = option(64, "filters of the generator's last hidden layer (ngf)")
    discriminator_filters: int = option(64, "filters of the discriminator's first layer (ndf)")
    discriminator_learning_rate: float = option(0.0, "discriminator learning rate; 0 uses --learning-rate")
    beta_1: float = option(0.5, "Adam beta_1 of both optimizers")
    real_label: float = option(1.0, "discriminator target for real images (0.9: one-sided label smoothing)")
    ema_decay: float = option(0.0, "decay of an exponential moving average of the generator's weights (e.g. 0.999; "
                                   "0: off); samples, scores and exports then come from the average")
    architecture: str = option("dcgan", "dcgan (Radford et al.) or tutorial (the TF tutorial's 28x28 networks)")
    train_step: str = option("dcgan", "dcgan (the project's step) or tutorial (the TF tutorial's own step; "
                                      "tutorial networks, one device, no float16)")
    sample_count: int = option(64, "images in each per-epoch sample grid")
    evaluator: str = option("", "an evaluator run (saved_models/evaluator/NAME) to score samples during training")
    evaluate_every: int = option(1, "with --evaluator: score every N epochs (IS, FCD, KID... to TensorBoard)")
    evaluation_samples: int = option(1000, "with --evaluator: generated images per scoring")
    conditional: bool = option(False, "class-conditional: the generator takes a class, the discriminator judges "
                                      "(image, class); needs labelled data")
    conditioning: str = option("projection", "with --conditional: how the discriminator takes the class, "
                                             "projection (Miyato & Koyama, 2018) or concat (one-hot class maps)")
    class_names: str = option("", "with --conditional: the classes, comma-separated, in label order; "
                                  "empty reads them from the data")
    pseudo_classes: int = option(0, "self-conditioned (Liu et al., 2020): group the training images into N "
                                    "clusters by k-means, the discriminator judges (image, cluster), the generator "
                                    "draws its cluster from the latent; reads no labels (0: off)")


_FASHION_64 = dict(image_size=64, channels=1, latent_dim=100, generator_filters=32, discriminator_filters=32,
                  batch_size=128, learning_rate=2e-4, beta_1=0.5, steps_per_epoch=200, ema_decay=0.999)

PRESETS = {
    # Seconds on a CPU: tests, the app demo, `bench --quick` and the fault suite.
    "tiny": dict(batch_size=16, generator_filters=8, discriminator_filters=8, latent_dim=16, sample_count=4,
                 epochs=1, steps_per_epoch=8),
    "demo": dict(data="digits", epochs=40, batch_size=64, generator_filters=32, discriminator_filters=32,
                 save_every_steps=100),
    # The equal-budget MNIST recipe (docs/dcgan.md): a half-width discriminator, batch 32, Adam(4e-4, 0.5).
    "mnist": dict(image_size=28, channels=1, batch_size=32, discriminator_filters=32, learning_rate=4e-4,
                  ema_decay=0.999),
    "cifar10": dict(image_size=32, channels=3),
    # The Fashion-MNIST experiments at 64x64 (nz 100, ngf = ndf = 32, Adam(2e-4, 0.5)).
    "baseline": dict(_FASHION_64, epochs=10),
    "more_epochs": dict(_FASHION_64, epochs=20),
    "low_lr_d": dict(_FASHION_64, epochs=20, discriminator_learning_rate=1e-4),
    # The TF tutorial's networks and optimizer settings (Adam(1e-4), default beta_1 0.9, batch 256), trained by
    # the project's step; `tf_models.tutorial_dcgan.make_train_step` is the tutorial's own step.
    "tutorial": dict(image_size=28, channels=1, architecture="tutorial", batch_size=256, learning_rate=1e-4,
                     beta_1=0.9),
}
# Class-conditional variants of the MNIST, Fashion-MNIST 64x64 and CIFAR-10 recipes.
PRESETS["mnist_conditional"] = dict(PRESETS["mnist"], conditional=True)
PRESETS["fashion64_conditional"] = dict(_FASHION_64, epochs=20, conditional=True)
PRESETS["cifar10_conditional"] = dict(PRESETS["cifar10"], conditional=True, ema_decay=0.999)
# The tutorial's recipe as published: its networks, optimizers and batch, trained by its own step.
PRESETS["tutorial_step"] = dict(PRESETS["tutorial"], train_step="tutorial")
TRAIN_STEPS = ("dcgan", "tutorial")

SERVING_OUTPUT = "images"


def _native_shape(data, tfds_data_dir):
    from pipelines import sources

    split = sources.load(data, tfds_data_dir=tfds_data_dir or None)
    image, _ = next(iter(split.dataset.take(1)))
    return image.shape[0], split.channels, split.class_names


def class_names(config):
    """The class names of a conditional run's config (a DCGANConfig or its config.json dict); () if unconditional."""
    fields = config if isinstance(config, dict) else dataclasses.asdict(config)
    if not fields.get("conditional"):
        return ()
    return tuple(name.strip() for name in fields.get("class_names", "").split(",") if name.strip())


def _joined_class_names(names):
    commas = [name for name in names if "," in name]
    if commas:
        raise ValueError(f"Class names {commas} contain a comma; give --class-names without commas in a name.")
    return ",".join(names)


def _check_conditional(config):
    if config.conditioning not in dcgan.CONDITIONINGS:
        raise ValueError(f"Unknown --conditioning {config.conditioning!r}; choose one of "
                         f"{', '.join(dcgan.CONDITIONINGS)}.")
    if config.conditional and (config.architecture != "dcgan" or config.train_step != "dcgan"):
        raise ValueError("--conditional trains the project's networks and step: use --architecture dcgan "
                         "--train-step dcgan (the tutorial's are unconditional).")
    if config.pseudo_classes < 0 or config.pseudo_classes == 1:
        raise ValueError(f"--pseudo-classes {config.pseudo_classes}: give 0 (off) or 2 or more clusters.")
    if config.pseudo_classes and (config.conditional or config.architecture != "dcgan"
                                  or config.train_step != "dcgan"):
        raise ValueError("--pseudo-classes trains the project's unconditional networks and step on clusters of "
                         "the images: leave out --conditional, use --architecture dcgan --train-step dcgan.")


def _check_train_step(config):
    if config.train_step not in TRAIN_STEPS:
        raise ValueError(f"Unknown --train-step {config.train_step!r}; choose one of {', '.join(TRAIN_STEPS)}.")
    if config.train_step != "tutorial":
        return
    if config.architecture != "tutorial":
        raise ValueError("--train-step tutorial trains the tutorial's networks: add --architecture tutorial "
                         "(or use --preset tutorial_step).")
    if config.strategy != "default" or config.precision == "mixed_float16":
        raise ValueError("--train-step tutorial runs the tutorial's step as published: one device "
                         f"(--strategy default, not {config.strategy!r}) and no loss scaling "
                         f"(--precision float32 or mixed_bfloat16, not {config.precision!r}).")
    if config.ema_decay:
        raise ValueError("--train-step tutorial runs the tutorial's step as published, which keeps no weight "
                         f"average: leave out --ema-decay (given {config.ema_decay}).")


class DCGANTask(runner.Task):
    name = "dcgan"

    def __init__(self):
        self.fixed_noise = None

    def resolve(self, config):
        """Checks the train step's needs; fills image_size, channels and class names from the data when unset."""
        _check_train_step(config)
        _check_conditional(config)
        if config.image_size and config.channels and (class_names(config) or not config.conditional):
            return config
        native_size, native_channels, native_names = _native_shape(config.data, config.tfds_data_dir)
        size = config.image_size or (native_size if native_size in dcgan.SUPPORTED_IMAGE_SIZES else 28)
        names = config.class_names or (_joined_class_names(native_names) if config.conditional else "")
        return dataclasses.replace(config, image_size=size, channels=config.channels or native_channels,
                                   class_names=names)

    def build_data(self, config):
        return gan_pipeline.build_gan_data(
            config.data,
            config.image_size,
            config.channels,
            config.batch_size,
            seed=config.seed,
            tfds_data_dir=config.tfds_data_dir or None,
            labels=config.conditional,
            pseudo_classes=config.pseudo_classes,
        )

    def build_model(self, config, data):
        if config.train_step == "tutorial":
            if (config.image_size, config.channels) != (tutorial_dcgan.IMAGE_SIZE, 1):
                raise ValueError(f"--train-step tutorial makes 28x28x1 images, not "
                                 f"{config.image_size}x{config.image_size}x{config.channels}.")
            model = tutorial_dcgan.TutorialGAN(latent_dim=config.latent_dim)
            model.compile(keras.optimizers.Adam(beta_1=config.beta_1), keras.optimizers.Adam(beta_1=config.beta_1))
            return self._finish_model(model, config)
        class_prior = (data or self.build_data(config)).class_prior if config.pseudo_classes else ()
        model = dcgan.DCGAN(
            image_size=config.image_size,
            channels=config.channels,
            latent_dim=config.latent_dim,
            generator_filters=config.generator_filters,
            discriminator_filters=config.discriminator_filters,
            real_label=config.real_label,
            seed=config.seed,
            architecture=config.architecture,
            ema_decay=config.ema_decay,
            num_classes=len(class_prior) or len(class_names(config)),
            class_names=class_names(config),
            conditioning=config.conditioning,
            class_prior=class_prior,
        )
        model.compile(
            generator_optimizer=keras.optimizers.Adam(beta_1=config.beta_1),
            discriminator_optimizer=keras.optimizers.Adam(beta_1=config.beta_1),
        )
        return self._finish_model(model, config)

    def _finish_model(self, model, config):
        for optimizer, rate in self.learning_rates(model, config):
            optimizer.learning_rate = rate
        noise = tf.random.stateless_normal((config.sample_count, config.latent_dim), seed=(config.seed, 7))
        self.fixed_noise = tf.Variable(noise, trainable=False, name="fixed_noise")
        num_classes = len(class_names(config))
        self.fixed_class_ids = dcgan.balanced_class_ids(config.sample_count, num_classes) if num_classes else None
        return model

    def checkpoint_items(self, model):
        return {"fixed_noise": self.fixed_noise}

    def learning_rates(self, model, config):
        return [
            (model.generator_optimizer, config.learning_rate),
            (model.discriminator_optimizer, config.discriminator_learning_rate or config.learning_rate),
        ]

    def callbacks(self, model, paths, config):
        grid = callbacks_lib.SampleGrid(
            render=lambda: model.sampling_generator(
                dcgan.generator_inputs(model.sampling_generator, self.fixed_noise, self.fixed_class_ids),
                training=False),
            samples_dir=paths.samples_dir,
            gif_path=paths.log_dir / "evolution.gif",
            log_dir=paths.log_dir,
        )
        result = [grid]
        if config.evaluator:
            result.append(GanQuality(model, config, paths))
        return result

    def inference_model(self, model):
        return model.sampling_generator

    def serving_endpoints(self, model, paths):
        return serving_endpoints(model.sampling_generator)

    def deployment_examples(self, model, config, split, count):
        """Latent vectors (the generator's real input distribution) and, conditional, class ids.

        The targets are the Keras generator's own uint8 images of those inputs: a generator has
        no ground truth, so a converted file is scored by how faithfully it reproduces them.
        """
        rng = np.random.default_rng([config.seed, 0 if split == "train" else 1])
        inputs = example_inputs(model.sampling_generator, rng, count)
        function, signature = serving_endpoints(model.sampling_generator)["serving_default"]
        compiled = tf.function(function)
        images = export_lib.run_batched(lambda part: export_lib.call_endpoint(compiled, signature, part), inputs)
        return inputs, images[SERVING_OUTPUT]

    def deployment_score(self, outputs, targets):
        """Fidelity: mean SSIM of the served images to the Keras generator's (1.0 for an exact copy)."""
        scores = [metrics.image_quality(output, target, max_val=255.0)["ssim"]
                  for output, target in zip(outputs[SERVING_OUTPUT], targets)]
        return {"ssim_to_keras": float(np.mean(scores))}


class GanQuality(keras.callbacks.Callback):
    """Scores generated images with an evaluator every few epochs and logs them to TensorBoard.

    Writes `quality/<score>` (generated) and `quality_real/<score>` (the real
    ceiling, once) under `logs/dcgan/<run>/quality/`, so a user watches image
    quality, not only the losses.
    """

    def __init__(self, model, config, paths):
        super().__init__()
        from tf_models.dcgan import evaluation as gan_evaluation

        self.evaluation = gan_evaluation
        self.gan = model
        self.config = config
        self.scorer, card = gan_evaluation.load_scorer(
            config.models_root, config.evaluator, config.image_size, config.channels, config.data
        )
        self.num_classes = len(card["class_names"])
        self.writer = tf.summary.create_file_writer(str(paths.log_dir / "quality"))
        self.real = None

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.config.evaluate_every:
            return
        if self.real is None:
            self.real = self.evaluation.real_outputs(
                self.scorer, self.config.data, self.config.image_size, self.config.channels, 500,
                self.config.tfds_data_dir or None,
            )
        result = self.evaluation.compare(self.gan.sampling_generator, self.scorer, self.real, self.num_classes,
                                         self.config.evaluation_samples, 500, seed=self.config.seed)
        with self.writer.as_default():
            for key, value in result["generated"].items():
                tf.summary.scalar(f"quality/{key}", value, step=epoch + 1)
                tf.summary.scalar(f"quality_real/{key}", result["real"][key], step=epoch + 1)
            if "class_accuracy" in result:
                tf.summary.scalar("quality/class_accuracy", result["class_accuracy"]["overall"], step=epoch + 1)
        self.writer.flush()
        if logs is not None:
            logs.update({f"quality_{key}": value for key, value in result["generated"].items()})
            if "class_accuracy" in result:
                logs["quality_class_accuracy"] = result["class_accuracy"]["overall"]


def restore_from_checkpoint(paths):
    """Rebuilds a run's DCGAN from its config.json and restores its latest checkpoint (no data needed)."""
    task = DCGANTask()
    model = task.build_model(runner.stored_config(paths, DCGANConfig), None)
    return runner.restore_latest_checkpoint(task, model, paths)


def serving_endpoints(generator):
    """`serving_default`: latent float32 [N, latent_dim] (and class_id int32 [N]) -> {"images": uint8 [N, H, W, C]}.

    `generate` takes (count, seed) and, for a conditional generator, one
    class_id for all `count` images.
    """
    latent_dim = dcgan.latent_dim_of(generator)
    latent_spec = tf.TensorSpec([None, latent_dim], tf.float32, name=dcgan.LATENT_INPUT)
    count_spec, seed_spec = tf.TensorSpec([], tf.int32, name="count"), tf.TensorSpec([], tf.int32, name="seed")

    def to_uint8(images):
        return {SERVING_OUTPUT: tf.cast(tf.round((images + 1.0) * 127.5), tf.uint8)}

    def seeded_latent(count, seed):
        return tf.random.stateless_normal(tf.stack([count, latent_dim]), seed=tf.stack([seed, 0]))

    if not dcgan.num_classes_of(generator):
        return {
            "serving_default": (lambda latent: to_uint8(generator(latent, training=False)), [latent_spec]),
            "generate": (lambda count, seed: to_uint8(generator(seeded_latent(count, seed), training=False)),
                         [count_spec, seed_spec]),
        }

    def from_latent(latent, class_id):
        return to_uint8(generator([latent, class_id], training=False))

    def from_seed(count, seed, class_id):
        return from_latent(seeded_latent(count, seed), tf.fill(tf.reshape(count, [1]), class_id))

    return {
        "serving_default": (from_latent, [latent_spec, tf.TensorSpec([None], tf.int32, name=dcgan.CLASS_INPUT)]),
        "generate": (from_seed, [count_spec, seed_spec, tf.TensorSpec([], tf.int32, name=dcgan.CLASS_INPUT)]),
    }


def example_inputs(generator, rng, count):
    """Serving inputs of `count` images: normal latents and, conditional, every class in turn."""
    inputs = {dcgan.LATENT_INPUT: rng.normal(size=(count, dcgan.latent_dim_of(generator))).astype(np.float32)}
    num_classes = dcgan.num_classes_of(generator)
    if num_classes:
        inputs[dcgan.CLASS_INPUT] = (np.arange(count) % num_classes).astype(np.int32)
    return inputs
