"""`evaluate.py --task gan-reference`: what an FCD or KID means for one evaluator.

A distance in an evaluator's feature space has no unit a person can picture.
This scores *real* held-out images, changed in small known ways, exactly as
`evaluate.py --task gan` scores a generator's samples: the held-out split is
cut into the same halves A and B (same seed), each variant of half A is
scored against half B. The rows say, for example, how far from the real
images a generator that drew real digits blurred by half a pixel would be.

Variants (`--variants`):

- `real`: half A as it is (the real-vs-real ceiling of `--task gan`);
- `train`: as many images of the training split, in place of half A;
- `blur:S`: half A blurred by a Gaussian of standard deviation S pixels;
- `noise:S`: half A plus Gaussian noise of standard deviation S ([-1, 1] units);
- `shift:P`: half A moved by P pixels right and down, black (-1) shifted in,
  which is the background only for images whose borders are black.

`--real-split train` cuts the halves from as many training images as the test
split holds, drawn at random, exactly as `evaluate.py --task gan
--real-split train` does, and writes `logs/gan_reference/NAME-train/`: the
yardstick for choosing settings without the test split (the `train` variant
is then left out).
"""

import math
import pathlib

import keras
import numpy as np

from pipelines import classification, sources
from tf_models.core import runs
from tf_models.dcgan import evaluation as gan_evaluation

DEFAULT_VARIANTS = ("real", "train", "blur:0.5", "blur:1.0", "noise:0.05", "noise:0.1", "shift:1")


def add_arguments(parser):
    parser.add_argument("--evaluator", required=True, help="an evaluator run name under saved_models/evaluator/")
    parser.add_argument("--data", required=True, help="the real data the evaluator was trained for")
    parser.add_argument("--image-size", type=int, required=True)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--variants", nargs="+",
                        help="real, train, blur:SIGMA, noise:STD, shift:PIXELS (default: "
                             f"{' '.join(DEFAULT_VARIANTS)}; without train under --real-split train)")
    parser.add_argument("--samples", type=int, default=5000, help="images per variant (capped at half the test set)")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="", help="output folder logs/gan_reference/NAME (default: the evaluator)")
    gan_evaluation.add_real_split_argument(parser)
    parser.add_argument("--logs-root", default="logs")
    parser.add_argument("--models-root", default="saved_models")


def parse_variant(text):
    """'blur:0.5' -> ('blur', 0.5); 'real' and 'train' take no amount."""
    kind, _, amount = text.partition(":")
    if kind in ("real", "train"):
        if amount:
            raise ValueError(f"Variant {text!r}: {kind} takes no amount.")
        return kind, 0.0
    if kind not in ("blur", "noise", "shift"):
        raise ValueError(f"Unknown variant {text!r}; use real, train, blur:SIGMA, noise:STD or shift:PIXELS.")
    try:
        value = float(amount)
    except ValueError:
        raise ValueError(f"Variant {text!r}: {kind} needs a number after the colon, e.g. {kind}:1.") from None
    if value <= 0 or (kind == "shift" and value != int(value)):
        raise ValueError(f"Variant {text!r}: the amount must be positive{' and whole' if kind == 'shift' else ''}.")
    return kind, value


def degrade(images, kind, amount, seed=0):
    """`images` in [-1, 1], [N, H, W, C], changed by one variant and clipped back to [-1, 1]."""
    images = np.asarray(images, np.float32)
    if kind == "blur":
        size = 2 * math.ceil(3 * amount) + 1
        changed = keras.ops.image.gaussian_blur(images, kernel_size=(size, size), sigma=(amount, amount))
        return np.clip(np.asarray(changed), -1.0, 1.0)
    if kind == "noise":
        noise = np.random.default_rng(seed).normal(scale=amount, size=images.shape).astype(np.float32)
        return np.clip(images + noise, -1.0, 1.0)
    if kind == "shift":
        pixels = int(amount)
        shifted = np.full_like(images, -1.0)
        shifted[:, pixels:, pixels:] = images[:, :-pixels, :-pixels]
        return shifted
    return images


def _images(source, image_size, channels, batch_size):
    return np.concatenate([np.asarray(images) for images, _ in classification.batch_split(
        source, image_size, channels, batch_size)])


def _outputs(scorer, images, batch_size):
    return gan_evaluation.scorer_outputs(scorer, (images[start:start + batch_size]
                                                  for start in range(0, len(images), batch_size)))


def check_variants(variants, real_split):
    """The parsed variants; `train` is refused when the halves are training images already."""
    parsed = {variant: parse_variant(variant) for variant in variants}
    if real_split == "train" and any(kind == "train" for kind, _ in parsed.values()):
        raise ValueError("With --real-split train both halves are training images already; leave out the train "
                         "variant.")
    return parsed


def default_variants(real_split):
    return [variant for variant in DEFAULT_VARIANTS if real_split != "train" or variant != "train"]


def reference_scores(scorer, data, image_size, channels, num_classes, variants, samples, batch_size, seed=0,
                     real_split="test"):
    """{variant: scores of `--task gan`} for each variant of real half A against real half B."""
    parsed = check_variants(variants, real_split)
    held_out = _images(gan_evaluation.real_images(data, channels, real_split), image_size, channels, batch_size)
    first_indices, second_indices = gan_evaluation.held_out_halves(len(held_out), samples, seed)
    first, second = held_out[first_indices], held_out[second_indices]
    count = len(first)
    reference_features, _ = _outputs(scorer, second, batch_size)
    results = {}
    for variant, (kind, amount) in parsed.items():
        if kind == "train":
            images = _images(sources.sample(sources.load(data, "train", channels=channels), count, seed), image_size,
                             channels, batch_size)
        else:
            images = degrade(first, kind, amount, seed)
        features, probabilities = _outputs(scorer, images, batch_size)
        results[variant] = gan_evaluation.scores(probabilities, features, reference_features, num_classes, seed)
    return {"samples": count, "reference_samples": len(second), "variants": results}


def table(result):
    """One row per variant; FCD and KID also as their difference from the real row (both near 0 there)."""
    lines = ["| variant of real half A | realism | IS proxy | IS / real | FCD | FCD - real | KID | KID - real |",
             "|---|---|---|---|---|---|---|---|"]
    real = result["variants"].get("real", {})
    for variant, scores in result["variants"].items():
        is_share = scores["inception_score"] / real["inception_score"] if real.get("inception_score") else float("nan")
        lines.append(f"| {variant} | {scores['realism']:.3f} | {scores['inception_score']:.3f} | {100 * is_share:.0f} % | "
                     f"{scores['fcd']:.3f} | {scores['fcd'] - real.get('fcd', float('nan')):+.3f} | "
                     f"{scores['kid']:.4f} | {scores['kid'] - real.get('kid', float('nan')):+.4f} |")
    return "\n".join(lines)


def evaluate(args):
    name = runs.validate_run_name(args.name or args.evaluator)
    if args.real_split != "test":
        name += f"-{args.real_split}"
    variants = args.variants or default_variants(args.real_split)
    check_variants(variants, args.real_split)
    scorer, card = gan_evaluation.load_scorer(args.models_root, args.evaluator, args.image_size, args.channels,
                                              args.data)
    result = reference_scores(scorer, args.data, args.image_size, args.channels, len(card["class_names"]),
                              variants, args.samples, args.batch_size, args.seed, args.real_split)
    result.update(evaluator=args.evaluator, evaluator_test_accuracy=card["test_accuracy"], data=args.data,
                  real_split=args.real_split)
    output_dir = pathlib.Path(args.logs_root) / "gan_reference" / name
    written = [runs.write_json(output_dir / "metrics.json", result),
               runs.atomic_write_text(output_dir / "metrics.md", table(result) + "\n")]
    print(f"{result['samples']} images per variant against {result['reference_samples']} real {args.real_split} images "
          f"(evaluator test accuracy {card['test_accuracy']:.4f}):\n{table(result)}")
    return written
