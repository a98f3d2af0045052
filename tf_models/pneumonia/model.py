"""A from-scratch CNN for pneumonia on chest X-rays, and a deep ensemble of such CNNs.

The model takes grey levels in [0, 255] (float or uint8 cast to float) and
rescales them itself, so a SavedModel serves raw images. It returns one
float32 logit per image: P(PNEUMONIA) = sigmoid(logit).

Example:

    model = build_pneumonia_cnn(224, filters=16, blocks=4)
    logits = model(images)   # [N, 1]; see inference.py for Grad-CAM and calibration.py for decisions
"""

import keras
import tensorflow as tf

from tf_models.core import strategy

NORMALIZATIONS = ("rescale", "per_image", "equalize")


@keras.saving.register_keras_serializable(package="tf_models")
class PerImageStandardization(keras.layers.Layer):
    """Each image to zero mean and unit variance (`tf.image.per_image_standardization`).

    Exposure, film darkness and background level then carry no signal, so
    the network must use the lung fields, not the scanner's grey-level habits.
    """

    def call(self, images):
        return tf.image.per_image_standardization(tf.cast(images, self.compute_dtype))


@keras.saving.register_keras_serializable(package="tf_models")
class HistogramEqualization(keras.layers.Layer):
    """Histogram equalization of each image's grey levels [0, 255], at training and inference alike.

    Each level is mapped through the image's cumulative histogram (estimated
    on every `stride`-th pixel in both directions), stretched so that the
    darkest level present becomes 0 and the brightest 255. This undoes the
    film's tone curve, not only its exposure. Written with TFLite builtins
    (comparison, mean, gather), because `keras.layers.Equalization` uses
    `DenseBincount`, which TFLite lacks, and equalizes only when called with
    `training=True` (Keras 3.15): at inference it passes images unchanged.
    """

    def __init__(self, stride=2, **kwargs):
        super().__init__(**kwargs)
        if stride < 1:
            raise ValueError(f"stride must be at least 1, got {stride}.")
        self.stride = stride

    def get_config(self):
        return {**super().get_config(), "stride": self.stride}

    def call(self, images):
        levels = tf.clip_by_value(tf.round(tf.cast(images, tf.float32)), 0.0, 255.0)
        batch = tf.shape(levels)[0]
        sample = tf.reshape(levels[:, :: self.stride, :: self.stride, :], [batch, -1, 1])
        cumulative = tf.reduce_mean(tf.cast(sample <= tf.range(256, dtype=tf.float32), tf.float32), axis=1)
        lowest = tf.reduce_min(tf.where(cumulative > 0, cumulative, 2.0), axis=1, keepdims=True)
        lookup = tf.clip_by_value((cumulative - lowest) / tf.maximum(1.0 - lowest, 1e-6), 0.0, 1.0) * 255.0
        mapped = tf.gather(lookup, tf.cast(tf.reshape(levels, [batch, -1]), tf.int32), batch_dims=1)
        return tf.cast(tf.reshape(mapped, tf.shape(levels)), self.compute_dtype)


def build_pneumonia_cnn(
    image_size,
    channels=1,
    filters=16,
    blocks=4,
    dense_units=128,
    dropout=0.3,
    kernel_size=3,
    normalization="rescale",
    name="pneumonia_cnn",
):
    """Conv/BN/ReLU/max-pool blocks, global average pooling, a dense head and one logit.

    Args:
        image_size: side of the square input images.
        channels: 1 (grayscale) or 3.
        filters: filters of the first block; each later block doubles them.
        blocks: number of conv blocks; the image is halved after each.
        dense_units: width of the hidden dense layer (0: none).
        dropout: dropout rate before the logit.
        normalization: `rescale` (grey levels / 255), `per_image` (each
            image standardised to zero mean, unit variance) or `equalize`
            (`HistogramEqualization`, then / 255).
    """
    if image_size < 2**blocks:
        raise ValueError(f"--image-size {image_size} is too small for {blocks} blocks (needs {2**blocks} or more).")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"--dropout must be in [0, 1), got {dropout}.")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"Unknown normalization {normalization!r}; choose one of {', '.join(NORMALIZATIONS)}.")
    inputs = keras.Input((image_size, image_size, channels), name="images")
    features = inputs
    if normalization == "per_image":
        features = PerImageStandardization(name="standardize")(features)
    else:
        if normalization == "equalize":
            features = HistogramEqualization(name="equalize")(features)
        features = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(features)
    for block in range(1, blocks + 1):
        width = filters * 2 ** (block - 1)
        features = keras.layers.Conv2D(
            width, kernel_size, padding="same", use_bias=False, name=f"block{block}_conv"
        )(features)
        features = strategy.batch_normalization(name=f"block{block}_norm")(features)
        features = keras.layers.ReLU(name=f"block{block}_relu")(features)
        features = keras.layers.MaxPooling2D(name=f"block{block}_pool")(features)
    features = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    if dense_units:
        features = keras.layers.Dense(dense_units, activation="relu", name="dense")(features)
    features = strategy.dropout(dropout, name="dropout")(features)
    logits = keras.layers.Dense(1, dtype="float32", name="logit")(features)
    return keras.Model(inputs, logits, name=name)


def build_ensemble(members, name="pneumonia_ensemble"):
    """One model whose logit is the mean of the members' logits (a deep ensemble).

    Each member keeps its own preprocessing, so members trained with other
    normalizations or augmentations combine; they must take the same input
    shape. Averaging independently trained networks makes the ranking less
    dependent on any one network's shortcuts, which matters on a test split
    shifted against training (Lakshminarayanan et al., 2017; Ovadia et al., 2019).
    """
    if len(members) < 2:
        raise ValueError(f"An ensemble needs at least two members, got {len(members)}.")
    shapes = {tuple(member.input_shape[1:]) for member in members}
    if len(shapes) > 1:
        raise ValueError(f"Ensemble members take different input shapes {sorted(shapes)}; train them at one size.")
    inputs = keras.Input(members[0].input_shape[1:], name="images")
    logits = []
    for index, member in enumerate(members):
        member.name = f"member_{index}"
        logits.append(member(inputs))
    outputs = keras.layers.Average(dtype="float32", name="logit")(logits)
    return keras.Model(inputs, outputs, name=name)


def ensemble_members(model):
    """The member networks of a `build_ensemble` model; [] for a single network."""
    return [layer for layer in model.layers if isinstance(layer, keras.Model)]
