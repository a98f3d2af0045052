"""The classical enhancers a user would otherwise run, applied to the model's own degraded inputs.

Each baseline takes a float [H, W, 1] image in [0, 1] (the degraded input, as
the model receives it) and returns its estimate of the clean image. Which
baselines apply depends on the degradation recipe:

| name | recipes | method |
|---|---|---|
| `bm3d` | `noise:S`, `poisson:P` | BM3D (`bm3d` package, default profile), sigma S given |
| `nlmeans` | `noise:S`, `poisson:P` | non-local means (scikit-image): h = 0.8 S, sigma = S, 5x5 patches, search distance 6, fast mode |
| `bm3d-blind` | `noise:S` (or a range) | BM3D with sigma estimated from the image (`skimage.restoration.estimate_sigma`) |
| `nlmeans-blind` | `noise:S` (or a range) | NL-means as above with the estimated sigma |
| `bicubic` | `down:N` | the degraded image reduced to its 1/N grid (area) and enlarged back by OpenCV bicubic |
| `lanczos` | `down:N` | the same with OpenCV Lanczos (8x8 kernel) |

For `poisson:P`, the image times P is a photon count z; the Anscombe
transform 2 sqrt(z + 3/8) makes its noise nearly Gaussian with unit
variance, the Gaussian denoiser runs there (rescaled to [0, 1]), and the
exact unbiased inverse (Makitalo and Foi, 2011: the count whose expected
Anscombe value is the denoised one, computed from the Poisson law) brings it
back. The algebraic inverse would be biased low at small counts.
"""

import functools
import importlib

import numpy as np
from scipy import stats

from pipelines import augment

ANSCOMBE_OFFSET = 3.0 / 8.0
NLMEANS_H_PER_SIGMA = 0.8
NLMEANS_PATCH_SIZE = 5
NLMEANS_PATCH_DISTANCE = 6

PACKAGES = {"bm3d": "bm3d==4.0.3", "skimage": "scikit-image==0.26.0", "cv2": "opencv-python-headless==5.0.0.93"}


def _require(module):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ValueError(f"This baseline needs the {module!r} module: pip install {PACKAGES[module.split('.')[0]]} "
                         "(it is pinned in requirements.txt).") from None


def anscombe(counts):
    """2 sqrt(z + 3/8): Poisson counts z -> values whose noise has variance close to 1."""
    return 2.0 * np.sqrt(np.maximum(counts, 0.0) + ANSCOMBE_OFFSET)


def expected_anscombe(rates):
    """E[2 sqrt(z + 3/8)] for z ~ Poisson(rate), summed over the Poisson law."""
    rates = np.atleast_1d(np.asarray(rates, np.float64))
    counts = np.arange(int(rates.max() + 12.0 * np.sqrt(rates.max()) + 40.0))
    expectations = np.empty_like(rates)
    for start in range(0, len(rates), 256):
        chunk = rates[start:start + 256, None]
        expectations[start:start + 256] = stats.poisson.pmf(counts[None], chunk) @ anscombe(counts)
    return expectations


@functools.lru_cache(maxsize=8)
def _inverse_table(max_rate):
    rates = np.unique(np.concatenate([np.linspace(0.0, 10.0, 2001), np.geomspace(10.0, max_rate, 2000)]))
    return expected_anscombe(rates), rates


def _closed_form_inverse(values):
    """Makitalo and Foi's closed-form approximation of the exact unbiased inverse (accurate for large values)."""
    values = np.maximum(values, 1e-3)
    root = np.sqrt(1.5)
    return 0.25 * values**2 + 0.25 * root / values - 11.0 / 8.0 / values**2 + 0.625 * root / values**3 - 0.125


def inverse_anscombe(values, max_rate=None):
    """The exact unbiased inverse: the rate whose expected Anscombe value is `values`.

    Tabulated from the Poisson law up to `max_rate` (default: what `values`
    reach) and interpolated; 0 below the expectation at rate 0, the
    closed-form approximation above the table.
    """
    values = np.asarray(values, np.float64)
    top = max(float(_closed_form_inverse(np.max(values))), 10.0) if max_rate is None else max_rate
    expectations, rates = _inverse_table(float(np.ceil(top * 1.1 + 10.0)))
    inverse = np.interp(values, expectations, rates, left=0.0)
    return np.where(values > expectations[-1], _closed_form_inverse(values), inverse)


def _through_anscombe(denoise, image, photons):
    """A Gaussian denoiser `denoise(image, sigma)` applied to Poisson data in the Anscombe domain."""
    scale = anscombe(photons)
    stabilized = anscombe(image * photons) / scale
    denoised = denoise(stabilized, 1.0 / scale) * scale
    return inverse_anscombe(denoised, max_rate=photons * 1.5 + 20.0) / photons


def bm3d_denoise(image, sigma):
    return np.asarray(_require("bm3d").bm3d(image, sigma_psd=sigma), np.float64)


def nlmeans_denoise(image, sigma):
    restoration = _require("skimage.restoration")
    return restoration.denoise_nl_means(image, h=NLMEANS_H_PER_SIGMA * sigma, sigma=sigma,
                                        patch_size=NLMEANS_PATCH_SIZE, patch_distance=NLMEANS_PATCH_DISTANCE,
                                        fast_mode=True)


def estimated_sigma(image):
    """The noise sigma estimated from the image itself (wavelet median absolute deviation)."""
    restoration = _require("skimage.restoration")
    return float(restoration.estimate_sigma(image))


def resample_back(image, factor, interpolation):
    """The image reduced to its 1/`factor` grid (area, the sizes `augment` uses) and enlarged back."""
    cv2 = _require("cv2")
    height, width = image.shape
    small_size = (max(1, int(width / factor)), max(1, int(height / factor)))
    small = cv2.resize(image, small_size, interpolation=cv2.INTER_AREA)
    method = {"bicubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}[interpolation]
    return cv2.resize(small, (width, height), interpolation=method)


DENOISERS = {"bm3d": bm3d_denoise, "nlmeans": nlmeans_denoise}
BASELINES = ("bm3d", "nlmeans", "bm3d-blind", "nlmeans-blind", "bicubic", "lanczos")
APPLIES_TO = {"bm3d": ("noise", "poisson"), "nlmeans": ("noise", "poisson"), "bm3d-blind": ("noise",),
              "nlmeans-blind": ("noise",), "bicubic": ("down",), "lanczos": ("down",)}


def _single_step(name, recipe):
    steps = augment.parse_recipe(recipe) if isinstance(recipe, str) else list(recipe)
    kinds = APPLIES_TO[name]
    if len(steps) != 1 or steps[0][0] not in kinds:
        suitable = [other for other in BASELINES if any(step[0] in APPLIES_TO[other] for step in steps)]
        hint = f"for this recipe use {', '.join(suitable)}" if len(steps) == 1 and suitable else \
            "the baselines undo one step alone"
        raise ValueError(f"--baselines {name}: it undoes a single {' or '.join(k + ':' for k in kinds)} step, "
                         f"not the recipe {recipe!r}; {hint}.")
    return steps[0]


def make_baseline(name, recipe):
    """The baseline `name` for `recipe`: a function of a float [H, W, 1] image in [0, 1]."""
    if name not in BASELINES:
        raise ValueError(f"Unknown baseline {name!r} in --baselines; choose from {', '.join(BASELINES)}.")
    kind, value = _single_step(name, recipe)
    method, _, blind = name.partition("-")
    if isinstance(value, tuple) and not blind:
        raise ValueError(f"--baselines {name}: the recipe {recipe!r} draws sigma from a range, so no sigma is "
                         f"given; score at fixed levels with --noise-levels, or use {method}-blind.")
    if kind == "down":
        _require("cv2")

        def enhance(image):
            return resample_back(image, value, method)
    else:
        denoise = DENOISERS[method]
        _require("bm3d" if method == "bm3d" else "skimage.restoration")
        if kind == "poisson":
            def enhance(image):
                return _through_anscombe(denoise, image, value)
        elif blind:
            def enhance(image):
                return denoise(image, estimated_sigma(image))
        else:
            def enhance(image):
                return denoise(image, value)

    def run(image):
        image = np.asarray(image, np.float32)
        return np.clip(np.asarray(enhance(image[..., 0]), np.float32), 0.0, 1.0)[..., None]

    return run


def parse_baselines(text, recipe):
    """`"bm3d,nlmeans"` -> {name: baseline} for `recipe`, every name checked before any runs."""
    names = [name.strip() for name in (text or "").split(",") if name.strip()]
    if len(set(names)) != len(names):
        raise ValueError(f"--baselines {text!r} names a baseline twice.")
    return {name: make_baseline(name, recipe) for name in names}
