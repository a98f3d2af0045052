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
