"""Degradations that turn clean images into low-quality inputs, and paired augmentations.

A degradation recipe is a string of steps joined by `+`, each `name:value`:

    noise:0.05          additive Gaussian noise, sigma in units of the full range
    poisson:200         low-dose (Poisson) noise at this many photons for a full-scale pixel (below)
    blur:1.5            Gaussian blur, sigma in pixels
    down:2              downsample by this factor (area), upsample back (bicubic)
    jpeg:30             JPEG compression at this quality
    contrast:0.6        contrast scaled towards the image mean by this factor

e.g. `down:2+noise:0.02`. A range `low-high` in place of the value
(`noise:0.01-0.08`, also for `poisson` and `contrast`) draws the value
uniformly in [low, high] for each image, from the image's seed: a model
trained on a range of noise levels is a blind denoiser.

`poisson:P` is the low-dose model of a photon-counting detector: a pixel of
value x in [0, 1] receives Poisson(P x) photons and the degraded value is the
count divided by P, so its variance is x / P (signal-dependent: the brighter
the tissue, the noisier in absolute terms, the cleaner relative to its value).

Images are float32 in [0, 1], shape [H, W, C]; every
step is a stateless function of its seed, so a seed gives the same degraded
image every time, and the result stays in [0, 1].
"""

import tensorflow as tf


def _gaussian_noise(image, sigma, seed):
    return image + sigma * tf.random.stateless_normal(tf.shape(image), seed=seed)


def _poisson_noise(image, photons, seed):
    counts = tf.random.stateless_poisson(
        tf.shape(image), seed=seed, lam=tf.maximum(image, 0.0) * photons, dtype=tf.float32
    )
    return counts / photons


def gaussian_kernel(sigma):
    radius = max(1, int(round(3 * sigma)))
    positions = tf.range(-radius, radius + 1, dtype=tf.float32)
    weights = tf.exp(-0.5 * tf.square(positions / sigma))
    return weights / tf.reduce_sum(weights)


def gaussian_blur(image, sigma):
    """Separable Gaussian blur of a [H, W, C] image with reflected borders."""
    kernel = gaussian_kernel(sigma)
    radius = (kernel.shape[0] - 1) // 2
    channels = image.shape[-1]
    batch = tf.pad(image[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    vertical = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, channels, 1])
    horizontal = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, channels, 1])
    batch = tf.nn.depthwise_conv2d(batch, vertical, [1, 1, 1, 1], "VALID")
    batch = tf.nn.depthwise_conv2d(batch, horizontal, [1, 1, 1, 1], "VALID")
    return batch[0]


def _blur(image, sigma, seed):
    return gaussian_blur(image, sigma)


def _down_up(image, factor, seed):
    size = tf.shape(image)[:2]
    small = tf.image.resize(image, tf.cast(tf.cast(size, tf.float32) / factor, tf.int32), method="area")
    return tf.image.resize(small, size, method="bicubic")


def _jpeg(image, quality, seed):
    return tf.image.adjust_jpeg_quality(tf.clip_by_value(image, 0.0, 1.0), int(quality))


def _contrast(image, factor, seed):
    mean = tf.reduce_mean(image)
    return mean + factor * (image - mean)


DEGRADATIONS = {
    "noise": _gaussian_noise,
    "poisson": _poisson_noise,
    "blur": _blur,
    "down": _down_up,
    "jpeg": _jpeg,
    "contrast": _contrast,
}


RANGED = ("noise", "poisson", "contrast")


def _parse_value(name, part, value):
    ranged = name in RANGED and "-" in value.lstrip("-")
    low, separator, high = value.partition("-") if ranged else (value, "", "")
    try:
        values = (float(low), float(high)) if separator else (float(value),)
    except ValueError:
        ranges = f" or a range low-high (for {', '.join(RANGED)}: e.g. noise:0.01-0.08)" if separator else ""
        raise ValueError(f"Degradation {part!r} needs a number after ':' (e.g. noise:0.05){ranges}.") from None
    if min(values) <= 0 or (name == "jpeg" and not 1 <= values[0] <= 100):
        raise ValueError(f"Degradation {part!r}: the value must be positive (jpeg: 1 to 100).")
    if separator and values[0] >= values[1]:
        raise ValueError(f"Degradation {part!r}: a range low-high needs low < high.")
    return values if separator else values[0]


def parse_recipe(recipe):
    """`"down:2+noise:0.02-0.08"` -> `[("down", 2.0), ("noise", (0.02, 0.08))]`, with clear errors."""
    steps = []
    for part in filter(None, (piece.strip() for piece in recipe.split("+"))):
        name, _, value = part.partition(":")
        if name not in DEGRADATIONS:
            raise ValueError(f"Unknown degradation {name!r} in {recipe!r}; choose from {', '.join(DEGRADATIONS)}.")
        steps.append((name, _parse_value(name, part, value)))
    if not steps:
        raise ValueError(f"Empty degradation recipe {recipe!r}.")
    return steps


def _draw(value, seed):
    if not isinstance(value, tuple):
        return value
    low, high = value
    return low + (high - low) * tf.random.stateless_uniform([], seed=tf.random.experimental.stateless_fold_in(seed, 1))


def degrade(image, recipe, seed):
    """Applies `recipe` to a float [H, W, C] image in [0, 1]; `seed` is a shape-[2] int tensor."""
    seed = tf.convert_to_tensor(seed, tf.int32)
    for index, (name, value) in enumerate(parse_recipe(recipe) if isinstance(recipe, str) else recipe):
        step_seed = tf.random.experimental.stateless_fold_in(seed, index)
        image = DEGRADATIONS[name](image, _draw(value, step_seed), step_seed)
    return tf.clip_by_value(image, 0.0, 1.0)


def foreground_crop(image, size, seed, candidates=1, threshold=0.0):
    """A seeded random `size` x `size` crop of [H, W, C]; with `candidates` > 1, the one of that many
    random crops whose last channel has the most pixels above `threshold`.

    Mammograms are mostly film background, which a denoiser learns in a few
    steps; choosing the best of a few crops spends more steps on tissue
    while still showing background. `candidates=1` is a plain random crop.
    """
    shape = [size, size, image.shape[-1]]
    if candidates <= 1:
        return tf.image.stateless_random_crop(image, shape, seed=seed)
    seeds = tf.random.experimental.stateless_split(seed, candidates)
    crops = tf.stack([tf.image.stateless_random_crop(image, shape, seed=seeds[index]) for index in range(candidates)])
    foreground = tf.reduce_mean(tf.cast(crops[..., -1] > threshold, tf.float32), axis=[1, 2])
    return crops[tf.argmax(foreground)]


def random_flip_pair(first, second, seed):
    """The same random horizontal and vertical flips of two aligned images."""
    flips = tf.random.stateless_uniform([2], seed=seed)
    first = tf.cond(flips[0] < 0.5, lambda: tf.image.flip_left_right(first), lambda: first)
    second = tf.cond(flips[0] < 0.5, lambda: tf.image.flip_left_right(second), lambda: second)
    first = tf.cond(flips[1] < 0.5, lambda: tf.image.flip_up_down(first), lambda: first)
    second = tf.cond(flips[1] < 0.5, lambda: tf.image.flip_up_down(second), lambda: second)
    return first, second


def flip_and_translate(images, seed, flip=True, translate=0):
    """A batch [N, H, W, C], each image flipped left-right with probability 1/2 and shifted by up to `translate` px.

    The shift is a random crop of the image padded by `translate` pixels on
    each side (reflected), so it moves the content by a whole number of
    pixels in each direction and keeps the size; `seed` is a stateless seed.
    """
    flip_seed, shift_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    if flip:
        images = tf.image.stateless_random_flip_left_right(images, seed=flip_seed)
    if not translate:
        return images
    shape = tf.shape(images)
    padded = tf.pad(images, [[0, 0], [translate, translate], [translate, translate], [0, 0]], mode="REFLECT")
    offsets = tf.random.stateless_uniform([shape[0], 2], seed=shift_seed, maxval=2 * translate + 1, dtype=tf.int32)

    def crop(arguments):
        image, offset = arguments
        return tf.slice(image, [offset[0], offset[1], 0], [shape[1], shape[2], shape[3]])

    return tf.map_fn(crop, (padded, offsets), fn_output_signature=images.dtype)
