"""A from-scratch CNN for pneumonia on chest X-rays, and Grad-CAM.

The model takes grey levels in [0, 255] (float or uint8 cast to float) and
rescales them itself, so a SavedModel serves raw images. It returns one
float32 logit per image: P(PNEUMONIA) = sigmoid(logit).

Example:

    model = build_pneumonia_cnn(224, filters=16, blocks=4)
    heatmaps = grad_cam(model, images)   # [N, 224, 224] in [0, 1]
"""

import keras
import numpy as np
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


def last_conv_layer_name(model):
    names = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    if not names:
        raise ValueError(f"Model {model.name!r} has no Conv2D layer for Grad-CAM; pass layer_name.")
    return names[-1]


def grad_cam(model, images, layer_name=None):
    """Grad-CAM heatmaps (Selvaraju et al., 2017) of the logit, [N, H, W] in [0, 1].

    The gradients of the logit with respect to the feature maps of
    `layer_name` (default: the last Conv2D) are averaged over space into one
    weight per channel; the weighted, rectified sum of the maps is resized
    to the input's spatial size and scaled to [0, 1] per image. For an
    ensemble, the members' heatmaps are averaged and scaled again.
    """
    members = ensemble_members(model)
    if members:
        mean = np.mean([grad_cam(member, images, layer_name) for member in members], axis=0)
        return mean / np.maximum(mean.max(axis=(1, 2), keepdims=True), 1e-12)
    layer = model.get_layer(layer_name or last_conv_layer_name(model))
    probe = keras.Model(model.inputs, [layer.output, model.output])
    images = tf.cast(tf.convert_to_tensor(images), tf.float32)
    with tf.GradientTape() as tape:
        feature_maps, logits = probe(images, training=False)
        score = tf.reduce_sum(logits)
    gradients = tape.gradient(score, feature_maps)
    channel_weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    heatmaps = tf.nn.relu(tf.reduce_sum(channel_weights * feature_maps, axis=-1, keepdims=True))
    heatmaps = tf.image.resize(heatmaps, tf.shape(images)[1:3])[..., 0]
    peak = tf.reduce_max(heatmaps, axis=(1, 2), keepdims=True)
    return np.asarray(tf.math.divide_no_nan(heatmaps, peak))


THRESHOLD_POLICIES = ("youden", "accuracy")


def choose_threshold(labels, probabilities, policy="youden"):
    """The decision threshold on P(PNEUMONIA) that maximises the policy on these (validation) arrays.

    `youden`: Youden's J = sensitivity + specificity - 1; `accuracy`: the
    accuracy. Every threshold between two neighbouring validation
    probabilities gives the same decisions, so the best score holds on an
    interval; the threshold returned is the middle of the best interval in
    logit space, the one farthest from the validation examples on either side.
    A threshold at the interval's edge would sit on a validation example and
    turn any shift of the data into errors of one class only.
    """
    labels, probabilities = np.asarray(labels).ravel(), np.asarray(probabilities, np.float64).ravel()
    if policy not in THRESHOLD_POLICIES:
        raise ValueError(f"Unknown threshold policy {policy!r}; choose one of {', '.join(THRESHOLD_POLICIES)}.")
    if len(np.unique(labels)) < 2:
        raise ValueError("Choosing a threshold needs both classes in the validation labels.")
    edges = np.concatenate([[0.0], np.unique(probabilities), [1.0]])
    candidates = (edges[:-1] + edges[1:]) / 2
    scores = np.asarray([_threshold_score(labels, probabilities >= candidate, policy) for candidate in candidates])
    best = np.flatnonzero(np.isclose(scores, scores.max()))
    run_end = best[0]
    while run_end + 1 in best:
        run_end += 1
    low, high = edges[best[0]], edges[run_end + 1]
    epsilon = 1e-7
    low_logit, high_logit = (np.log(np.clip(p, epsilon, 1 - epsilon) / (1 - np.clip(p, epsilon, 1 - epsilon)))
                             for p in (low, high))
    return float(1.0 / (1.0 + np.exp(-(low_logit + high_logit) / 2)))


def _threshold_score(labels, predictions, policy):
    positives, negatives = labels == 1, labels == 0
    if policy == "youden":
        return predictions[positives].mean() - predictions[negatives].mean()
    return np.mean(predictions == positives)


def binary_metrics(labels, probabilities, threshold=0.5):
    """Accuracy, sensitivity, specificity, precision, F1, ROC AUC and the confusion matrix.

    A prediction is positive (PNEUMONIA) when its probability is at least
    `threshold`. The confusion matrix is [[TN, FP], [FN, TP]].
    """
    from sklearn import metrics as sklearn_metrics

    labels = np.asarray(labels).ravel().astype(int)
    probabilities = np.asarray(probabilities, np.float64).ravel()
    predictions = (probabilities >= threshold).astype(int)
    matrix = sklearn_metrics.confusion_matrix(labels, predictions, labels=[0, 1])
    (true_negative, false_positive), (false_negative, true_positive) = matrix
    return {
        "threshold": float(threshold),
        "accuracy": float(sklearn_metrics.accuracy_score(labels, predictions)),
        "sensitivity": float(true_positive / max(true_positive + false_negative, 1)),
        "specificity": float(true_negative / max(true_negative + false_positive, 1)),
        "precision": float(sklearn_metrics.precision_score(labels, predictions, zero_division=0)),
        "f1": float(sklearn_metrics.f1_score(labels, predictions, zero_division=0)),
        "roc_auc": float(sklearn_metrics.roc_auc_score(labels, probabilities)) if len(set(labels)) > 1 else float("nan"),
        "confusion_matrix": matrix.tolist(),
        "count": int(len(labels)),
    }
