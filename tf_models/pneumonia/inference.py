"""Using a trained pneumonia run: logits (optionally with flip test-time augmentation) and Grad-CAM.

Example:

    labels, logits = dataset_logits(model, validation_dataset)
    heatmaps = grad_cam(model, images)   # [N, H, W] in [0, 1]
"""

import keras
import numpy as np
import tensorflow as tf

from tf_models.pneumonia import model as pneumonia


def predict_logits(model, images, tta=False):
    """Logits [N] of grey-level images [N, H, W, C]; with `tta`, the mean with the left-right mirrored images.

    A chest is not left-right symmetric (the heart sits left), so the flip
    is an option to measure, not a default.
    """
    images = tf.cast(tf.convert_to_tensor(images), tf.float32)
    logits = model(images, training=False)[:, 0]
    if tta:
        logits = (logits + model(tf.reverse(images, axis=[2]), training=False)[:, 0]) / 2.0
    return np.asarray(logits, np.float64)


def dataset_logits(model, dataset, tta=False):
    """(labels [N] int, logits [N]) of a batched (image, label) dataset."""
    labels, logits = [], []
    for images, batch_labels in dataset:
        logits.append(predict_logits(model, images, tta))
        labels.append(np.asarray(batch_labels).ravel())
    return np.concatenate(labels).astype(int), np.concatenate(logits)


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
    ensemble, the members' heatmaps are averaged and scaled again. A
    temperature divides every gradient by the same positive number, so the
    heatmaps of a calibrated run are those of its logit.
    """
    members = pneumonia.ensemble_members(model)
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
