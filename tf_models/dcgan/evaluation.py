"""`evaluate.py --task gan`: realism, diversity, IS proxy, FCD and KID of a DCGAN run.

The run's generator draws `--samples` images; a trained evaluator classifier
(`scripts/train_evaluator.py`) gives their class probabilities and
penultimate features. The held-out real images (the source's test split) are
split into two disjoint halves, A and B:

- generated scores: realism, diversity and IS on the generated images; FCD and
  KID between generated and real half B;
- the real ceiling: the same scores on real half A, and FCD/KID between A and B.

Generated and real-A sets have the same size, so their distances to B are
comparable (both estimators depend on the sample size).

`--truncation T` samples the latent vectors from a normal truncated at +-T
(each entry beyond T drawn again; Brock et al., 2019, "the truncation
trick"): fewer unusual samples, so usually higher realism and IS and lower
diversity. It changes the generator's input distribution, so its scores are
those of another sampler, recorded as such in metrics.json; 0 (the default)
is the generator's own distribution.

A conditional generator is asked for every class in turn (equally many
images of each), and its class accuracy is reported too: the share of images
the evaluator classifies as the class asked for, overall and per class; its
ceiling is the evaluator's own test accuracy.

`--data DIR` scores the run against DIR's test split instead of its own
data's (an external test set) and writes `evaluation-<DIR's name>/`; the
run's own `evaluation/` and every other file of the run stay as they are.

`--real-split train` compares with as many training images as the test
split holds, drawn at random (seeded), in place of the test split, and
writes `evaluation-train/`: choose between runs or settings on these scores
and keep the test split for reporting the chosen one. (The generator learnt
from the training images, so its distances to them are not a held-out
measure; `evaluate.py --task gan-reference --real-split train` gives the
yardstick rows on the same images.)
"""

import json
import pathlib

import keras
import numpy as np

from pipelines import classification, sources
from tf_models.dcgan import evaluator as evaluator_lib
from tf_models.dcgan import model as dcgan
from tf_models.dcgan import task as dcgan_task
from tf_models import metrics
from tf_models.core import runs

REAL_SPLITS = ("test", "train")
SCORE_KEYS = ("realism", "distinct_fraction", "class_entropy", "inception_score", "fcd", "kid")
# Distances are 0 for identical sets and near 0 (KID: even negative) for two real halves: read them as a difference.
DISTANCE_KEYS = ("fcd", "kid")


def add_arguments(parser):
    parser.add_argument("--run", required=True, help="a DCGAN run name under saved_models/dcgan/")
    parser.add_argument("--evaluator", required=True, help="an evaluator run name under saved_models/evaluator/")
    parser.add_argument("--samples", type=int, default=5000, help="generated images (capped at half the real test set)")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truncation", type=float, default=0.0,
                        help="sample latents from a normal truncated at +-T (0: the generator's own normal)")
    parser.add_argument("--data", help="real data whose test split the run is scored against (default: the run's "
                                         "own --data); another folder writes evaluation-<its name>/")
    add_real_split_argument(parser)
    parser.add_argument("--logs-root", default="logs")
    parser.add_argument("--models-root", default="saved_models")


def add_real_split_argument(parser):
    parser.add_argument("--real-split", choices=REAL_SPLITS, default="test",
                        help="real images to compare with: the test split (to report), or as many training images "
                             "drawn at random (to choose settings on, keeping the test split for the report)")


def load_scorer(models_root, evaluator_name, image_size, channels, data):
    """(features, probabilities) model of a trained evaluator, refused if it does not fit the images."""
    classifier, card = evaluator_lib.load_evaluator(pathlib.Path(models_root) / "evaluator" / evaluator_name)
    evaluator_lib.check_compatible(card, image_size, channels, data)
    return evaluator_lib.feature_and_probability_model(classifier), card


def scorer_outputs(scorer, image_batches):
    """(features, probabilities) of every image in an iterable of image batches, concatenated."""
    features, probabilities = zip(*(scorer(images, training=False) for images in image_batches))
    return np.concatenate(features), np.concatenate(probabilities)


def real_images(data, channels, real_split="test", tfds_data_dir=None, seed=0):
    """The real images scores compare with: the test split, or as many training images drawn at random."""
    if real_split not in REAL_SPLITS:
        raise ValueError(f"--real-split must be one of {', '.join(REAL_SPLITS)}, got {real_split!r}.")
    test = sources.load(data, "test", channels=channels, tfds_data_dir=tfds_data_dir)
    if real_split == "test":
        return test
    train = sources.load(data, "train", channels=channels, tfds_data_dir=tfds_data_dir)
    return sources.sample(train, test.num_examples, seed)


def real_outputs(scorer, data, image_size, channels, batch_size, tfds_data_dir=None, real_split="test"):
    """Features and probabilities of the real images of `real_images` (by default the test split)."""
    split = real_images(data, channels, real_split, tfds_data_dir)
    batches = classification.batch_split(split, image_size, channels, batch_size)
    return scorer_outputs(scorer, (images for images, _ in batches))


def check_truncation(truncation):
    if truncation < 0:
        raise ValueError(f"--truncation must be 0 (off) or positive, got {truncation}.")


def sample_latent(rng, count, latent_dim, truncation=0.0):
    """Standard normal [count, latent_dim]; with `truncation` > 0, entries beyond +-truncation drawn again."""
    check_truncation(truncation)
    latent = rng.normal(size=(count, latent_dim))
    if truncation:
        outside = np.abs(latent) > truncation
        while outside.any():
            latent[outside] = rng.normal(size=int(outside.sum()))
            outside = np.abs(latent) > truncation
    return latent.astype(np.float32)


def requested_class_ids(generator, count):
    """The classes a conditional generator is asked for: 0, 1, ..., 0, 1, ... (None when unconditional)."""
    num_classes = dcgan.num_classes_of(generator)
    return np.arange(count) % num_classes if num_classes else None


def generated_outputs(scorer, generator, count, batch_size, seed, truncation=0.0):
    """Features and probabilities of `count` generated images (conditional: of `requested_class_ids`)."""
    rng = np.random.default_rng(seed)
    latent_dim = dcgan.latent_dim_of(generator)
    class_ids = requested_class_ids(generator, count)

    def batch(start):
        latent = sample_latent(rng, min(batch_size, count - start), latent_dim, truncation)
        batch_ids = None if class_ids is None else class_ids[start:start + len(latent)]
        return generator(dcgan.generator_inputs(generator, latent, batch_ids), training=False)

    return scorer_outputs(scorer, (batch(start) for start in range(0, count, batch_size)))


def held_out_halves(length, samples, seed=0):
    """Indices of a held-out set of `length` images: (the first `samples` of half A, all of half B).

    The halves are disjoint and of equal size, drawn by one seeded permutation.
    """
    order = np.random.default_rng(seed).permutation(length)
    half = length // 2
    return order[:min(samples, half)], order[half:2 * half]


def scores(probabilities, features, reference_features, num_classes, seed=0):
    diversity = metrics.diversity(probabilities, num_classes)
    return {
        "realism": metrics.realism(probabilities),
        "distinct_fraction": diversity["distinct_fraction"],
        "class_entropy": diversity["class_entropy"],
        "inception_score": metrics.inception_score(probabilities),
        "fcd": metrics.frechet_distance(features, reference_features),
        "kid": metrics.kernel_inception_distance(features, reference_features, seed=seed)["mean"],
    }


def compare(generator, scorer, real, num_classes, samples, batch_size, seed=0, truncation=0.0):
    """Scores of generated images and of real half A, both against real half B."""
    real_features, real_probabilities = real
    first, second = held_out_halves(len(real_features), samples, seed)
    generated_features, generated_probabilities = generated_outputs(scorer, generator, len(first), batch_size, seed,
                                                                         truncation)
    result = {
        "samples": len(first),
        "truncation": truncation,
        "generated": scores(generated_probabilities, generated_features, real_features[second], num_classes, seed),
        "real": scores(real_probabilities[first], real_features[first], real_features[second], num_classes, seed),
    }
    class_ids = requested_class_ids(generator, len(first))
    if class_ids is not None:
        if dcgan.num_classes_of(generator) != num_classes:
            raise ValueError(f"The generator makes {dcgan.num_classes_of(generator)} classes but the evaluator "
                             f"tells {num_classes} apart; score it with an evaluator of the same dataset.")
        result["class_accuracy"] = metrics.class_accuracy(generated_probabilities, class_ids, num_classes)
    return result


def versus_real(key, generated, real):
    """"0.87x" (generated / real) for scores, "+0.0123" (generated - real) for the distances."""
    if key in DISTANCE_KEYS:
        return f"{generated - real:+.4f}"
    return f"{generated / real:.2f}x" if real > 0 else "-"


def table(result, class_names=()):
    """Markdown: every score, generated and real, and how they compare; class accuracy for a conditional run."""
    lines = ["| score | generated | real (ceiling) | generated vs real (x ratio; distances: difference) |",
             "|---|---|---|---|"]
    for key in SCORE_KEYS:
        generated, real = result["generated"][key], result["real"][key]
        lines.append(f"| {key} | {generated:.4f} | {real:.4f} | {versus_real(key, generated, real)} |")
    accuracy = result.get("class_accuracy")
    if accuracy:
        ceiling = result.get("evaluator_test_accuracy", float("nan"))
        lines.append(f"| class_accuracy | {accuracy['overall']:.4f} | {ceiling:.4f} (evaluator test accuracy) | "
                     f"{versus_real('class_accuracy', accuracy['overall'], ceiling)} |")
        names = list(class_names) or [str(k) for k in range(len(accuracy["per_class"]))]
        for name, value in zip(names, accuracy["per_class"]):
            lines.append(f"| class_accuracy: {name} | {value:.4f} | | |")
    return "\n".join(lines)


def load_run_generator(paths):
    if paths.keras_file.is_file():
        return keras.saving.load_model(paths.keras_file, safe_mode=True).sampling_generator
    return dcgan_task.restore_from_checkpoint(paths).sampling_generator


def output_folder_name(run_data, data, truncation=0.0, real_split="test"):
    """`evaluation`, or `evaluation-<name>` for data other than the run's own, with `-train` when compared with
    training images and `-truncation-T` if truncated."""
    name = "evaluation"
    if data != run_data:
        name += "-" + "".join(c if c.isalnum() or c in "._" else "-" for c in evaluator_lib.dataset_id(data))
    if real_split != "test":
        name += f"-{real_split}"
    return name + (f"-truncation-{truncation:g}" if truncation else "")


def evaluate(args):
    paths = runs.RunPaths("dcgan", args.run, pathlib.Path(args.logs_root), pathlib.Path(args.models_root))
    if not paths.config_file.is_file():
        raise ValueError(f"{paths.config_file}: no such DCGAN run.")
    check_truncation(args.truncation)
    config = json.loads(paths.config_file.read_text())
    data = args.data or config["data"]
    scorer, card = load_scorer(args.models_root, args.evaluator, config["image_size"], config["channels"],
                               config["data"])
    real = real_outputs(scorer, data, config["image_size"], config["channels"], args.batch_size,
                        config.get("tfds_data_dir") or None, args.real_split)
    result = compare(load_run_generator(paths), scorer, real, len(card["class_names"]), args.samples,
                     args.batch_size, args.seed, args.truncation)
    result.update(run=args.run, evaluator=args.evaluator, evaluator_test_accuracy=card["test_accuracy"], data=data,
                  real_split=args.real_split)
    names = dcgan_task.class_names(config)
    if names:
        result["class_names"] = list(names)
    output_dir = paths.log_dir / output_folder_name(config["data"], data, args.truncation, args.real_split)
    written = [runs.write_json(output_dir / "metrics.json", result),
               runs.atomic_write_text(output_dir / "metrics.md", table(result, names) + "\n")]
    print(f"{result['samples']} generated vs {result['samples']} real {args.real_split} images of {data} "
          f"(evaluator test accuracy {card['test_accuracy']:.4f}):\n{table(result, names)}")
    return written
