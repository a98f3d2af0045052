"""Generate images from a trained DCGAN: a PNG grid or one PNG per image.

Examples:
  python scripts/generate.py --run demo --count 64 --output grid.png
  python scripts/generate.py --model saved_models/dcgan/demo/serving/1 --count 10 --output-dir samples/
  python scripts/generate.py --model saved_models/dcgan/demo/model.keras --seed 3 --output grid.png

--run NAME uses saved_models/dcgan/NAME/model.keras, or the run's latest checkpoint while it
is still training.
"""

import argparse
import pathlib
import sys

import numpy as np

from tf_models.core import images as image_helpers
from tf_models.core import cli, runs


def keras_generate(generator):
    latent_dim = generator.input_shape[-1]

    def generate(count, seed):
        latent = np.random.default_rng(seed).normal(size=(count, latent_dim)).astype(np.float32)
        return image_helpers.to_uint8(generator(latent, training=False))

    return generate


def load_generator(model_path):
    """Returns `generate(count, seed) -> uint8 images` for a .keras file or a SavedModel folder."""
    model_path = pathlib.Path(model_path)
    if model_path.suffix == ".keras":
        import keras

        from tf_models.dcgan import model as dcgan  # noqa: F401 - registers the DCGAN class

        model = keras.saving.load_model(model_path, safe_mode=True)
        return keras_generate(getattr(model, "sampling_generator", model))
    if (model_path / "saved_model.pb").is_file():
        import tensorflow as tf

        signature = tf.saved_model.load(str(model_path)).signatures["generate"]

        def generate(count, seed):
            return signature(count=tf.constant(count), seed=tf.constant(seed))["images"].numpy()

        return generate
    raise ValueError(f"{model_path}: expected a .keras file or a SavedModel folder (with saved_model.pb).")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="a DCGAN run name under saved_models/dcgan/")
    source.add_argument("--model", help="a .keras file or a SavedModel version folder")
    parser.add_argument("--models-root", default="saved_models")
    parser.add_argument("--logs-root", default="logs")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="generated.png", help="grid PNG path")
    parser.add_argument("--output-dir", help="write one PNG per image here instead of a grid")
    args = parser.parse_args(argv)
    if args.count <= 0:
        parser.error("--count must be positive")
    if args.model:
        generate = load_generator(args.model)
    else:
        paths = runs.RunPaths("dcgan", args.run, pathlib.Path(args.logs_root), pathlib.Path(args.models_root))
        if paths.keras_file.is_file():
            generate = load_generator(paths.keras_file)
        else:
            from tf_models.dcgan import task as dcgan_task

            generate = keras_generate(dcgan_task.restore_from_checkpoint(paths).sampling_generator)
    images = generate(args.count, args.seed)
    if args.output_dir:
        output_dir = pathlib.Path(args.output_dir)
        paths = [runs.atomic_write_bytes(output_dir / f"image_{i:05d}.png", image_helpers.encode_png(image))
                 for i, image in enumerate(images)]
        print(f"Wrote {len(paths)} images to {output_dir}")
    else:
        grid = image_helpers.tile_images(images, scale=2)
        print(f"Wrote {runs.atomic_write_bytes(args.output, image_helpers.encode_png(grid))}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
