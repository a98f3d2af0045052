"""U-Net (Ronneberger, Fischer and Brox, 2015) for binary segmentation.

The contracting path repeats two 3x3 convolutions with ReLU and a 2x2 max
pooling, doubling the filters at each level; the expanding path repeats a 2x2
up-convolution that halves the filters, a concatenation with the feature map of
the same level, and two 3x3 convolutions. A 1x1 convolution gives one logit per
pixel (positive: foreground).

Differences from the paper, chosen for whole-image masks such as Carvana's:
the convolutions use "same" padding, so the output has the input's size and no
cropping of the skip connections is needed (the paper's valid convolutions
shrink a 572x572 input to a 388x388 output); batch normalisation after each
convolution is on by default; dropout, when asked for, follows the bottleneck
(the paper puts dropout at the end of the contracting path).

The loss is binary cross-entropy on logits plus soft Dice (`bce_dice_loss`), or
with the Lovasz hinge (`lovasz_hinge_loss`, `bce_lovasz_loss`) in place of Dice.
`DiceCoefficient` and `IoU` threshold the sigmoid at 0.5, score each image,
and average the scores over images. An image whose true and predicted masks
are both empty scores 1 (a perfect prediction of "nothing there").
"""

import keras
import tensorflow as tf

from tf_models.core import blocks


def _check_image_shape(image_shape, depth):
    if len(image_shape) != 3:
        raise ValueError(f"U-Net image_shape must be (height, width, channels), got {image_shape}.")
    if depth < 1:
        raise ValueError(f"U-Net depth must be at least 1, got {depth}.")
    factor = 2**depth
    height, width = image_shape[:2]
    if height % factor or width % factor:
        raise ValueError(
            f"U-Net of depth {depth} needs a height and width divisible by 2**{depth} = {factor}; "
            f"got {height}x{width}. Resize the images, for example to "
            f"{max(factor, round(height / factor) * factor)}x{max(factor, round(width / factor) * factor)}."
        )


def build_unet(image_shape=(160, 240, 3), depth=4, base_filters=64, batch_norm=True, dropout=0.0, name="unet"):
    """Image [N, H, W, C] in [0, 1] -> foreground logits [N, H, W, 1] (float32).

    Args:
        image_shape: (height, width, channels); height and width divisible by 2**depth.
        depth: number of poolings (4 in the paper: 64 -> 128 -> 256 -> 512 -> 1024 filters).
        base_filters: filters of the first level; level i has base_filters * 2**i.
        batch_norm: batch normalisation after each convolution.
        dropout: dropout rate after the bottleneck (0 disables it).
        name: model name.

    Example:

    ```python
    model = build_unet((160, 240, 3))
    model.compile(keras.optimizers.Adam(1e-4), loss=bce_dice_loss, metrics=[DiceCoefficient(), IoU()])
    ```
    """
    image_shape = tuple(image_shape)
    _check_image_shape(image_shape, depth)
    inputs = keras.Input(shape=image_shape, name="image")
    x = blocks.unet_features(inputs, depth, base_filters, batch_norm, dropout)
    outputs = keras.layers.Conv2D(1, 1, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def _per_image_sum(values):
    return tf.reduce_sum(values, axis=tf.range(1, tf.rank(values)))


def _soft_dice_loss(y_true, logits, smooth):
    probabilities = tf.sigmoid(logits)
    intersection = _per_image_sum(y_true * probabilities)
    total = _per_image_sum(y_true) + _per_image_sum(probabilities)
    return 1.0 - (2.0 * intersection + smooth) / (total + smooth)


def _as_float32(y_true, y_pred):
    return tf.cast(y_true, tf.float32), tf.cast(y_pred, tf.float32)


def _per_image_cross_entropy(y_true, logits):
    cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=y_true, logits=logits)
    return tf.reduce_mean(cross_entropy, axis=tf.range(1, tf.rank(cross_entropy)))


@keras.saving.register_keras_serializable(package="tf_models")
class DiceLoss(keras.losses.Loss):
    """Soft Dice loss on logits, one value per image: 1 - (2|A.P| + s) / (|A| + |P| + s).

    `smooth` (s) keeps the loss defined, and 0, when both masks are empty.
    """

    def __init__(self, smooth=1.0, name="dice_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth = smooth

    def call(self, y_true, y_pred):
        y_true, y_pred = _as_float32(y_true, y_pred)
        return _soft_dice_loss(y_true, y_pred, self.smooth)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}


@keras.saving.register_keras_serializable(package="tf_models")
def bce_dice_loss(y_true, y_pred):
    """Per-image mean binary cross-entropy on logits plus soft Dice loss (smooth 1)."""
    y_true, y_pred = _as_float32(y_true, y_pred)
    return _per_image_cross_entropy(y_true, y_pred) + _soft_dice_loss(y_true, y_pred, smooth=1.0)


def _lovasz_gradient(labels_sorted):
    """Gradient of the Lovasz extension of the Jaccard loss at errors sorted in decreasing order."""
    foreground = tf.reduce_sum(labels_sorted, axis=-1, keepdims=True)
    intersection = foreground - tf.cumsum(labels_sorted, axis=-1)
    union = foreground + tf.cumsum(1.0 - labels_sorted, axis=-1)
    jaccard = 1.0 - intersection / union
    return tf.concat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], axis=-1)


@keras.saving.register_keras_serializable(package="tf_models")
def lovasz_hinge_loss(y_true, y_pred):
    """Lovasz hinge on logits (Berman, Rannen Triki and Blaschko, 2018), one value per image.

    A convex surrogate of 1 - IoU of the thresholded mask: the hinge errors 1 - logit * sign, sorted
    in decreasing order, weighted by the gradient of the Lovasz extension of the Jaccard loss.
    """
    y_true, y_pred = _as_float32(y_true, y_pred)
    batch = tf.shape(y_pred)[0]
    labels = tf.reshape(y_true, [batch, -1])
    logits = tf.reshape(y_pred, [batch, -1])
    errors = 1.0 - logits * (2.0 * labels - 1.0)
    errors_sorted, order = tf.math.top_k(errors, k=tf.shape(errors)[-1])
    labels_sorted = tf.gather(labels, order, batch_dims=1)
    weights = tf.stop_gradient(_lovasz_gradient(labels_sorted))
    return tf.reduce_sum(tf.nn.relu(errors_sorted) * weights, axis=-1)


@keras.saving.register_keras_serializable(package="tf_models")
def bce_lovasz_loss(y_true, y_pred):
    """Per-image mean binary cross-entropy on logits plus the Lovasz hinge."""
    y_true, y_pred = _as_float32(y_true, y_pred)
    return _per_image_cross_entropy(y_true, y_pred) + lovasz_hinge_loss(y_true, y_pred)


LOSSES = {"bce-dice": bce_dice_loss, "lovasz": lovasz_hinge_loss, "bce-lovasz": bce_lovasz_loss}


class _OverlapMetric(keras.metrics.Metric):
    """Mean over images of an overlap score of thresholded masks; empty vs empty scores 1."""

    def __init__(self, threshold=0.5, from_logits=True, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.threshold = threshold
        self.from_logits = from_logits
        self.score_sum = self.add_variable(shape=(), initializer="zeros", name="score_sum")
        self.weight_sum = self.add_variable(shape=(), initializer="zeros", name="weight_sum")

    def overlap(self, intersection, true_area, predicted_area):
        raise NotImplementedError

    def per_image_scores(self, y_true, y_pred):
        y_true, y_pred = _as_float32(y_true, y_pred)
        probabilities = tf.sigmoid(y_pred) if self.from_logits else y_pred
        predicted = tf.cast(probabilities >= self.threshold, tf.float32)
        true = tf.cast(y_true >= 0.5, tf.float32)
        intersection = _per_image_sum(true * predicted)
        true_area, predicted_area = _per_image_sum(true), _per_image_sum(predicted)
        both_empty = tf.equal(true_area + predicted_area, 0.0)
        return tf.where(both_empty, 1.0, self.overlap(intersection, true_area, predicted_area))

    def update_state(self, y_true, y_pred, sample_weight=None):
        scores = self.per_image_scores(y_true, y_pred)
        weights = tf.ones_like(scores) if sample_weight is None else tf.reshape(
            tf.cast(sample_weight, tf.float32), tf.shape(scores)
        )
        self.score_sum.assign_add(tf.reduce_sum(scores * weights))
        self.weight_sum.assign_add(tf.reduce_sum(weights))

    def result(self):
        return tf.math.divide_no_nan(self.score_sum, self.weight_sum)

    def reset_state(self):
        self.score_sum.assign(0.0)
        self.weight_sum.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold, "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="tf_models")
class DiceCoefficient(_OverlapMetric):
    """Dice 2|A.B| / (|A| + |B|) of thresholded masks, per image, averaged over images."""

    def __init__(self, threshold=0.5, from_logits=True, name="dice", dtype=None):
        super().__init__(threshold=threshold, from_logits=from_logits, name=name, dtype=dtype)

    def overlap(self, intersection, true_area, predicted_area):
        return tf.math.divide_no_nan(2.0 * intersection, true_area + predicted_area)


@keras.saving.register_keras_serializable(package="tf_models")
class IoU(_OverlapMetric):
    """Intersection over union |A.B| / |A + B| of thresholded masks, per image, averaged over images."""

    def __init__(self, threshold=0.5, from_logits=True, name="iou", dtype=None):
        super().__init__(threshold=threshold, from_logits=from_logits, name=name, dtype=dtype)

    def overlap(self, intersection, true_area, predicted_area):
        return tf.math.divide_no_nan(intersection, true_area + predicted_area - intersection)
