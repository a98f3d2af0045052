"""Generate images from a trained DCGAN: a PNG grid or one PNG per image.

Examples:
  python scripts/generate.py --run demo --count 64 --output grid.png
  python scripts/generate.py --model saved_models/dcgan/demo/serving/1 --count 10 --output-dir samples/
  python scripts/generate.py --model saved_models/dcgan/demo/model.keras --seed 3 --output grid.png
  python scripts/generate.py --run fashion-conditional --class dress --count 16 --output dresses.png

--class NAME asks a conditional run for one class, by the dataset's own class names (Fashion-MNIST's
"Dress", CIFAR-10's "cat", digits "0"-"9"; any letter case); without it a conditional run draws every
class in turn. A SavedModel has no class names: give the class id (0, 1, ...).

--run NAME uses saved_models/dcgan/NAME/model.keras, or the run's latest checkpoint while it
is still training.
"""

import argparse
import pathlib
import sys

from tf_models.core import images as image_helpers
from tf_models.core import cli, runs


def keras_generate(generator, class_names=()):
    """(`generate(count, seed, class_name) -> uint8 images`, class names) of a Keras generator."""
    from tf_models.dcgan import inference as dcgan_inference
    from tf_models.dcgan import model as dcgan

    def generate(count, seed, class_name=None):
        class_id = None
        if class_name is not None:
            class_id = dcgan_inference.class_index(class_name, class_names, dcgan.num_classes_of(generator))
        latent = dcgan_inference.latent_vectors(dcgan.latent_dim_of(generator), count, seed)
        return dcgan_inference.generate_images(generator, latent, class_id)

    return generate


def saved_model_generate(model_path):
    import tensorflow as tf

    signature = tf.saved_model.load(str(model_path)).signatures["generate"]
    conditional = "class_id" in signature.structured_input_signature[1]

    def generate(count, seed, class_name=None):
        inputs = dict(count=tf.constant(count), seed=tf.constant(seed))
        if conditional != (class_name is not None):
            raise ValueError(f"{model_path}: " + ("a conditional SavedModel; give --class with a class id (0, 1, ...)."
                                                  if conditional else "an unconditional model; leave out --class."))
        if conditional:
            if not class_name.isdigit():
                raise ValueError(f"--class {class_name}: a SavedModel has no class names; give a class id (0, 1, ...).")
            inputs["class_id"] = tf.constant(int(class_name))
        return signature(**inputs)["images"].numpy()

    return generate


def load_generator(model_path):
    """Returns `generate(count, seed, class_name=None) -> uint8 images` for a .keras file or a SavedModel folder."""
    model_path = pathlib.Path(model_path)
    if model_path.suffix == ".keras":
        import keras

        from tf_models.dcgan import model as dcgan  # noqa: F401 - registers the DCGAN class

        model = keras.saving.load_model(model_path, safe_mode=True)
        return keras_generate(getattr(model, "sampling_generator", model), getattr(model, "class_names", ()))
    if (model_path / "saved_model.pb").is_file():
        return saved_model_generate(model_path)
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
    parser.add_argument("--class", dest="class_name", help="a conditional run's class (its name, or id for a "
                                                          "SavedModel); default: every class in turn")
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

            model = dcgan_task.restore_from_checkpoint(paths)
            generate = keras_generate(model.sampling_generator, getattr(model, "class_names", ()))
    images = generate(args.count, args.seed, args.class_name)
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
