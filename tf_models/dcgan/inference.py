"""Using a trained DCGAN: its class names, a class asked for by name, images of a class."""

import json
import zipfile

import numpy as np

from tf_models.core import images as image_helpers
from tf_models.dcgan import model as dcgan


def keras_file_class_names(path):
    """The class names stored in a DCGAN `.keras` file (read from its config, the model not built); () if none."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable .keras file ({error}).") from error
    return tuple(config.get("config", {}).get("class_names") or ())


def class_index(name, class_names, num_classes):
    """The class id of `name`: a class name (any letter case) or, without names, a number below `num_classes`.

    An unknown name raises `ValueError` listing the names to choose from.
    """
    if not num_classes:
        raise ValueError(f"--class {name}: this generator is unconditional; train one with --conditional.")
    folded = [known.casefold() for known in class_names]
    if name.casefold() in folded:
        return folded.index(name.casefold())
    if not class_names and name.isdigit() and int(name) < num_classes:
        return int(name)
    choices = ", ".join(class_names) if class_names else f"a class id 0-{num_classes - 1}"
    raise ValueError(f"Unknown class {name!r}; choose one of: {choices}.")


def latent_vectors(latent_dim, count, seed):
    return np.random.default_rng(seed).normal(size=(count, latent_dim)).astype(np.float32)


def generate_images(generator, latent, class_id=None):
    """uint8 images of `latent`; conditional: all of `class_id`, or every class in turn when it is None."""
    num_classes = dcgan.num_classes_of(generator)
    class_ids = None
    if num_classes:
        class_ids = (np.arange(len(latent)) % num_classes if class_id is None
                     else np.full(len(latent), class_id)).astype(np.int32)
    return image_helpers.to_uint8(generator(dcgan.generator_inputs(generator, latent, class_ids), training=False))


def every_class_images(generator, per_class, seed):
    """uint8 images, `per_class` of each class, class by class (one grid row per class with `per_class` columns).

    Every row uses the same latent vectors, so a column shows one latent vector drawn as each class.
    """
    num_classes = dcgan.num_classes_of(generator)
    if not num_classes:
        raise ValueError("An every-class grid needs a class-conditional generator (train with --conditional).")
    latent = latent_vectors(dcgan.latent_dim_of(generator), per_class, seed)
    return np.concatenate([generate_images(generator, latent, class_id) for class_id in range(num_classes)])
