"""Scores of generated images, computed from an evaluator classifier's outputs.

Every function takes NumPy-convertible arrays and computes in float64:

- `probabilities`: [N, num_classes] class probabilities (softmax outputs) of
  the evaluator on N images.
- `features`: [N, D] activations of the evaluator's penultimate layer.

The same numbers computed on held-out real images are the ceiling that the
scores of generated images should be read against.
"""

import warnings

import numpy as np
from scipy import linalg


def _as_matrix(values, name):
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty [samples, dimensions] array, got shape {values.shape}.")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return values


def realism(probabilities):
    """Mean top-class probability: (1 / N) * sum_i max_y p(y | x_i).

    1 when the evaluator is certain of every image, 1 / num_classes when it
    cannot tell any class apart.
    """
    probabilities = _as_matrix(probabilities, "probabilities")
    return float(np.mean(np.max(probabilities, axis=1)))


def diversity(probabilities, num_classes):
    """How many classes the predicted labels cover, and how evenly.

    With c_i = argmax_y p(y | x_i) and h_k the fraction of images with c_i = k:

    - `distinct_fraction`: |{k : h_k > 0}| / num_classes;
    - `class_entropy`: -sum_k h_k log h_k (nats, 0 log 0 = 0), between 0 (one
      class) and log(num_classes) (every class equally often).
    """
    probabilities = _as_matrix(probabilities, "probabilities")
    if num_classes < 1 or probabilities.shape[1] > num_classes:
        raise ValueError(
            f"num_classes is {num_classes} but the probabilities have {probabilities.shape[1]} columns."
        )
    histogram = np.bincount(np.argmax(probabilities, axis=1), minlength=num_classes) / len(probabilities)
    present = histogram[histogram > 0]
    return {
        "distinct_fraction": float(len(present) / num_classes),
        "class_entropy": float(-np.sum(present * np.log(present))),
    }


def inception_score(probabilities, eps=1e-12):
    """exp(E_x[KL(p(y | x) || p(y))]), with p(y) = E_x[p(y | x)].

    Salimans et al. (2016), here with the evaluator in place of Inception. It
    is 1 when every image gets the same prediction, and num_classes when each
    image is classified with certainty and the classes are equally frequent.
    `eps` is added inside the logarithms so that zero probabilities contribute
    0 instead of NaN.
    """
    probabilities = _as_matrix(probabilities, "probabilities")
    marginal = np.mean(probabilities, axis=0, keepdims=True)
    divergences = np.sum(probabilities * (np.log(probabilities + eps) - np.log(marginal + eps)), axis=1)
    return float(np.exp(np.mean(divergences)))


def class_accuracy(probabilities, class_ids, num_classes):
    """The share of images classified as the class they were asked for, overall and per class.

    With c_i = argmax_y p(y | x_i) and a_i the class image i was generated
    for: `overall` = mean_i [c_i = a_i] and `per_class[k]` = the same mean
    over the images with a_i = k (NaN for a class never asked for). Its
    ceiling is the evaluator's accuracy on real test images.
    """
    probabilities = _as_matrix(probabilities, "probabilities")
    class_ids = np.asarray(class_ids).reshape(-1)
    if len(class_ids) != len(probabilities):
        raise ValueError(f"{len(class_ids)} class ids for {len(probabilities)} rows of probabilities.")
    if probabilities.shape[1] != num_classes:
        raise ValueError(f"num_classes is {num_classes} but the probabilities have {probabilities.shape[1]} columns.")
    if len(class_ids) and (class_ids.min() < 0 or class_ids.max() >= num_classes):
        raise ValueError(f"class ids must be in [0, {num_classes}), got {class_ids.min()}..{class_ids.max()}.")
    correct = np.argmax(probabilities, axis=1) == class_ids
    per_class = [float(np.mean(correct[class_ids == k])) if np.any(class_ids == k) else float("nan")
                 for k in range(num_classes)]
    return {"overall": float(np.mean(correct)), "per_class": per_class}


def _warn_if_rank_deficient(features, name):
    samples, dimensions = features.shape
    if samples < dimensions:
        warnings.warn(
            f"{name} has {samples} samples but {dimensions} features: its covariance is singular and "
            f"the Frechet distance is unreliable; use at least {dimensions} samples (many more is better).",
            stacklevel=3,
        )


def _matching_features(features_a, features_b):
    features_a = _as_matrix(features_a, "features_a")
    features_b = _as_matrix(features_b, "features_b")
    if features_a.shape[1] != features_b.shape[1]:
        raise ValueError(
            f"features_a has {features_a.shape[1]} features per sample but features_b has {features_b.shape[1]}."
        )
    return features_a, features_b


def frechet_distance(features_a, features_b, eps=1e-6):
    """Frechet distance between Gaussians fitted to two feature sets.

    d^2 = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), with the means
    mu and the sample covariances S (ddof 1) of each set (Heusel et al., 2017;
    with the evaluator's features this is the Frechet classifier distance).

    Numerical handling: (S_a S_b)^(1/2) comes from `scipy.linalg.sqrtm`. When
    the product is singular and its square root is not finite, `eps` times the
    identity is added to both covariances and the root recomputed (as in
    pytorch-fid). The root of a product of two positive semi-definite
    matrices has real eigenvalues, so the small imaginary parts that rounding
    leaves are dropped (real part taken), and the result is clipped at 0,
    which removes rounding below zero for identical sets.

    Fewer samples than features in either set gives a singular covariance and
    a `UserWarning` stating both counts.
    """
    features_a, features_b = _matching_features(features_a, features_b)
    for features, name in ((features_a, "features_a"), (features_b, "features_b")):
        if len(features) < 2:
            raise ValueError(f"{name} has {len(features)} sample; a covariance needs at least 2.")
        _warn_if_rank_deficient(features, name)
    mean_a, mean_b = features_a.mean(axis=0), features_b.mean(axis=0)
    covariance_a = np.atleast_2d(np.cov(features_a, rowvar=False))
    covariance_b = np.atleast_2d(np.cov(features_b, rowvar=False))
    root = linalg.sqrtm(covariance_a @ covariance_b)
    if not np.all(np.isfinite(root)):
        offset = eps * np.eye(len(covariance_a))
        root = linalg.sqrtm((covariance_a + offset) @ (covariance_b + offset))
    distance = np.sum((mean_a - mean_b) ** 2) + np.trace(covariance_a + covariance_b - 2.0 * np.real(root))
    return float(max(distance, 0.0))


def polynomial_kernel(features_a, features_b):
    """k(x, y) = (x . y / d + 1)^3 for every pair of rows, d the feature count."""
    return (features_a @ features_b.T / features_a.shape[1] + 1.0) ** 3


def _unbiased_mmd_squared(features_a, features_b):
    m = len(features_a)
    kernel_aa = polynomial_kernel(features_a, features_a)
    kernel_bb = polynomial_kernel(features_b, features_b)
    kernel_ab = polynomial_kernel(features_a, features_b)
    within = (kernel_aa.sum() - np.trace(kernel_aa) + kernel_bb.sum() - np.trace(kernel_bb)) / (m * (m - 1))
    return within - 2.0 * kernel_ab.mean()


def kernel_inception_distance(features_a, features_b, subset_size=1000, subsets=10, seed=0):
    """Kernel distance (KID) of Binkowski et al. (2018), "Demystifying MMD GANs".

    The unbiased estimate of the squared maximum mean discrepancy with the
    polynomial kernel k(x, y) = (x . y / d + 1)^3,

        MMD^2 = sum_{i != j} [k(a_i, a_j) + k(b_i, b_j)] / (m (m - 1))
                - 2 sum_{i, j} k(a_i, b_j) / m^2,

    on `subsets` pairs of random subsets of m = min(subset_size, N_a, N_b)
    rows (drawn without replacement, independently from each set, with
    `numpy.random.default_rng(seed)`).

    The estimate is unbiased, so it can be slightly negative; for two
    identical sets it is 2 (mean off-diagonal k - mean diagonal k) / m, close
    to 0 but not exactly 0.

    Returns:
        A dict with `mean` and `std` (population) of the subset estimates and
        the `subset_size` m used.
    """
    features_a, features_b = _matching_features(features_a, features_b)
    size = min(subset_size, len(features_a), len(features_b))
    if size < 2:
        raise ValueError(f"The kernel distance needs subsets of at least 2 samples, got {size}.")
    if subsets < 1:
        raise ValueError(f"subsets must be at least 1, got {subsets}.")
    generator = np.random.default_rng(seed)
    estimates = [
        _unbiased_mmd_squared(
            features_a[generator.choice(len(features_a), size, replace=False)],
            features_b[generator.choice(len(features_b), size, replace=False)],
        )
        for _ in range(subsets)
    ]
    return {"mean": float(np.mean(estimates)), "std": float(np.std(estimates)), "subset_size": int(size)}


# ---------------------------------------------------------------- image quality

PSNR_CAP_DB = 100.0
SSIM_FILTER_SIZE = 11
SSIM_FILTER_SIGMA = 1.5


def _ssim_map(prediction, target, max_val):
    """The SSIM map of `tf.image.ssim` (11x11 Gaussian window, sigma 1.5, valid region).

    `tf.image.ssim` returns only the mean of this map; the map itself is
    needed to average SSIM inside a mask. Its mean equals `tf.image.ssim`.
    """
    import tensorflow as tf

    coordinates = np.arange(SSIM_FILTER_SIZE, dtype=np.float64) - (SSIM_FILTER_SIZE - 1) / 2.0
    gaussian = np.exp(-0.5 * (coordinates / SSIM_FILTER_SIGMA) ** 2)
    gaussian /= gaussian.sum()
    channels = prediction.shape[-1]
    window = np.tile(np.outer(gaussian, gaussian)[:, :, None, None], (1, 1, channels, 1)).astype(np.float32)

    def blur(image):
        return tf.nn.depthwise_conv2d(image[None], window, [1, 1, 1, 1], "VALID")[0]

    prediction = tf.constant(prediction, tf.float32)
    target = tf.constant(target, tf.float32)
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    mean_p, mean_t = blur(prediction), blur(target)
    variance_p = blur(prediction * prediction) - mean_p**2
    variance_t = blur(target * target) - mean_t**2
    covariance = blur(prediction * target) - mean_p * mean_t
    luminance = (2 * mean_p * mean_t + c1) / (mean_p**2 + mean_t**2 + c1)
    structure = (2 * covariance + c2) / (variance_p + variance_t + c2)
    return (luminance * structure).numpy().astype(np.float64)


def image_quality(prediction, target, max_val=1.0, mask=None):
    """MSE, PSNR (dB) and SSIM of one [H, W, C] image against its target, on the range [0, max_val].

    PSNR of identical images is infinite; it is reported capped at 100 dB.
    With a `mask` ([H, W] or [H, W, 1], nonzero inside), MSE and PSNR use the
    pixels inside it and SSIM averages its map over the mask (the map covers
    the valid region, 5 pixels in from each edge, like `tf.image.ssim`).
    """
    prediction = np.asarray(prediction, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if prediction.shape != target.shape or prediction.ndim != 3:
        raise ValueError(f"Expected two [H, W, C] images of one shape, got {prediction.shape} and {target.shape}.")
    inside = np.ones(prediction.shape[:2], dtype=bool) if mask is None else np.asarray(mask).reshape(prediction.shape[:2]) > 0
    if not inside.any():
        raise ValueError("The mask is empty: no pixel to score.")
    squared_error = np.mean((prediction - target) ** 2, axis=-1)
    mse = float(np.mean(squared_error[inside]))
    psnr = PSNR_CAP_DB if mse == 0 else min(PSNR_CAP_DB, 10.0 * np.log10(max_val**2 / mse))
    ssim_map = np.mean(_ssim_map(prediction, target, max_val), axis=-1)
    margin = (SSIM_FILTER_SIZE - 1) // 2
    inside_valid = inside[margin:-margin, margin:-margin]
    ssim = float(np.mean(ssim_map[inside_valid])) if inside_valid.any() else float("nan")
    return {"mse": mse, "psnr": float(psnr), "ssim": ssim}
