"""What each page of the app computes: generate, enhance, segment, classify.

Each `load_*` takes a run's artifact (from `app_backend.list_runs`) and
returns an object the app caches with `st.cache_resource`; each `run_*`
takes that object and plain NumPy arrays and returns arrays and numbers.
"""

import dataclasses
import pathlib

import numpy as np

from tf_models.core import images as image_helpers
from tf_models.app import backend as app_backend
from tf_models.dcgan import inference as dcgan_inference
from tf_models.dcgan import model as dcgan

MAX_IMAGES = 256
HEATMAP_OPACITY = 0.45


# ---------------------------------------------------------------- Generate (DCGAN)


def load_generator(artifact):
    """The DCGAN generator to sample from (its weight average, if any) of a run's model.keras."""
    model = app_backend.load_keras(artifact)
    return getattr(model, "sampling_generator", model)


def latent_vectors(latent_dim, count, seed):
    return np.random.default_rng(seed).normal(size=(count, latent_dim)).astype(np.float32)


def interpolated_latents(latent_dim, first_seed, second_seed, steps):
    """`steps` latents on the great circle from one seed's vector to the other's (slerp)."""
    start, end = latent_vectors(latent_dim, 1, first_seed)[0], latent_vectors(latent_dim, 1, second_seed)[0]
    cosine = np.dot(start, end) / (np.linalg.norm(start) * np.linalg.norm(end))
    angle = np.arccos(np.clip(cosine, -1.0, 1.0))
    fractions = np.linspace(0.0, 1.0, steps)[:, None]
    if angle < 1e-6:
        return ((1 - fractions) * start + fractions * end).astype(np.float32)
    weights_start, weights_end = np.sin((1 - fractions) * angle), np.sin(fractions * angle)
    return ((weights_start * start + weights_end * end) / np.sin(angle)).astype(np.float32)


def run_generate(generator, count, seed, interpolate_to=None, class_id=None):
    """uint8 images [N, H, W, C]: `count` from `seed`, or `count` steps from `seed` to `interpolate_to`.

    A conditional generator draws them all of `class_id`, or every class in turn when it is None.
    """
    if not 1 <= count <= MAX_IMAGES:
        raise ValueError(f"The number of images must be between 1 and {MAX_IMAGES}, got {count}.")
    latent_dim = dcgan.latent_dim_of(generator)
    if interpolate_to is None:
        latent = latent_vectors(latent_dim, count, seed)
    else:
        latent = interpolated_latents(latent_dim, seed, interpolate_to, max(count, 2))
    return dcgan_inference.generate_images(generator, latent, class_id)


def run_every_class(generator, per_class, seed):
    """uint8 images, `per_class` of each class, one grid row per class (`image_grid(..., columns=per_class)`)."""
    if not 1 <= per_class * dcgan.num_classes_of(generator) <= MAX_IMAGES:
        raise ValueError(f"{per_class} images of each of {dcgan.num_classes_of(generator)} classes is more than "
                         f"{MAX_IMAGES}; ask for fewer per class.")
    return dcgan_inference.every_class_images(generator, per_class, seed)


def generator_class_names(artifact):
    """The class names of a DCGAN run's model.keras: () for an unconditional run."""
    return dcgan_inference.keras_file_class_names(artifact)


def image_grid(images, columns=None, scale=2):
    grid = image_helpers.tile_images(images, columns=columns, scale=scale)
    return grid[..., 0] if grid.shape[-1] == 1 else grid


# ---------------------------------------------------------------- Enhance (Pix2Pix)


def load_enhancer(saved_model_dir):
    from tf_models.pix2pix import inference as pix2pix_inference

    return pix2pix_inference.load_enhancer(saved_model_dir)


def run_enhance(enhancer, image, recipe="", seed=0):
    """Enhances a float [H, W, 1] image in [0, 1], first degraded by `recipe` when one is given.

    Returns {"input", "enhanced", "target" (None without a recipe)} as float
    arrays in [0, 1] and, with a recipe, {"scores": {"input": ..., "enhanced": ...}}
    (MSE, PSNR, SSIM against the clean image).
    """
    import tensorflow as tf

    from pipelines import augment
    from tf_models import metrics

    clean = np.asarray(image, np.float32)
    source = augment.degrade(tf.constant(clean), recipe, [seed, 0]).numpy() if recipe else clean
    enhanced = enhancer.enhance(source)
    result = {"input": source, "enhanced": enhanced, "target": clean if recipe else None, "scores": None}
    if recipe:
        result["scores"] = {"input": metrics.image_quality(source, clean),
                            "enhanced": metrics.image_quality(enhanced, clean)}
    return result


def to_bit_depth(image, maximum):
    """Float [0, 1] -> uint8 (maximum 255) or uint16 (65535)."""
    dtype = np.uint16 if maximum > 255 else np.uint8
    return np.round(np.clip(image, 0.0, 1.0) * maximum).astype(dtype)


# ---------------------------------------------------------------- Segment (U-Net)


def load_segmenter(artifact):
    return app_backend.load_keras(artifact)


def run_segment(model, image):
    """uint8 [H, W, C] -> (probability [H, W], mask uint8 {0, 255} [H, W], overlay uint8 RGB [H, W, 3])."""
    from tf_models.unet import task as unet_task
    from tf_models.unet import inference as unet_inference

    (_, probability), = unet_inference.predict_images(model, [np.asarray(image, np.uint8)])
    mask = probability >= 0.5
    overlay = unet_task.overlay(np.asarray(image, np.float32) / 255.0, mask)
    return probability, mask.astype(np.uint8) * 255, image_helpers.to_uint8(overlay, (0.0, 1.0))


# ---------------------------------------------------------------- Classify (pneumonia)


@dataclasses.dataclass
class Classifier:
    model: object
    threshold: dict

    @property
    def image_size(self):
        return int(self.model.input_shape[1])


def load_classifier(artifact):
    from tf_models.pneumonia import task as pneumonia_task

    artifact = pathlib.Path(artifact)
    return Classifier(app_backend.load_keras(artifact), pneumonia_task.load_threshold(artifact.parent))


def heatmap_overlay(image, heatmap, opacity=HEATMAP_OPACITY):
    """Grayscale uint8 [H, W, 1] with a [H, W] heatmap in [0, 1] blended in as colour (jet); uint8 RGB."""
    from matplotlib import colormaps

    colours = colormaps["jet"](np.clip(heatmap, 0.0, 1.0))[..., :3]
    gray = np.repeat(np.asarray(image, np.float32) / 255.0, 3, axis=-1)
    return image_helpers.to_uint8((1 - opacity) * gray + opacity * colours, (0.0, 1.0))


def run_classify(classifier, image):
    """uint8 grayscale [H, W, 1] -> {"probability", "label", "threshold", "explanation", "resized", "overlay"}.

    The image is resized like the training pipeline (antialiased bilinear,
    rounded to uint8). The probability is the run's calibrated one,
    sigmoid(logit / stored temperature); the label is PNEUMONIA when it
    reaches the run's stored threshold.
    """
    import tensorflow as tf

    from pipelines import images
    from tf_models.pneumonia import calibration, inference

    resized = tf.clip_by_value(tf.round(images.resize(image, classifier.image_size)), 0, 255).numpy()
    decision = classifier.threshold
    logit = inference.predict_logits(classifier.model, resized[None])
    probability = float(calibration.calibrated_probabilities(logit, decision["temperature"])[0])
    threshold = float(decision["threshold"])
    heatmap = inference.grad_cam(classifier.model, resized[None])[0]
    return {
        "probability": probability,
        "threshold": threshold,
        "label": "PNEUMONIA" if probability >= threshold else "NORMAL",
        "explanation": calibration.explain_probability(
            probability, decision["calibrated"], decision.get("validation_prevalence")),
        "resized": resized.astype(np.uint8),
        "overlay": heatmap_overlay(resized, heatmap),
    }
