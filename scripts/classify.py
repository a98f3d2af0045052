"""Print the calibrated P(PNEUMONIA) and the label for chest X-ray images, with a trained run's decision.

Examples:
  python scripts/classify.py --run xray ../shared/datasets/chest_xray/test/NORMAL/IM-0001-0001.jpeg
  python scripts/classify.py --run xray --threshold 0.5 image1.png image2.jpeg

Images (PNG, JPEG, DICOM, ...) of any size and colour mode are read as grayscale
and resized like in training. P(PNEUMONIA) is sigmoid(logit / T) with the
temperature T stored next to the model (threshold.json, fitted on validation);
the threshold is the one stored there too, unless --threshold is given.
"""

import argparse
import sys

import keras
import tensorflow as tf

from pipelines import classification, images
from tf_models.core import cli, runs
from tf_models.pneumonia import calibration, inference
from tf_models.pneumonia import task as pneumonia_task


def load_images(paths, image_size):
    batch = []
    for path in paths:
        image = images.read_image(path)
        image = images.convert_channels(tf.convert_to_tensor(images.convert_channels_numpy(image, 3)), 1)
        batch.append(tf.clip_by_value(tf.round(images.resize(image, image_size)), 0, 255))
    return tf.stack(batch)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run name under saved_models/pneumonia/")
    parser.add_argument("images", nargs="+", help="image files")
    parser.add_argument("--threshold", type=float, default=None, help="override the stored threshold")
    parser.add_argument("--models-root", default="saved_models")
    args = parser.parse_args(argv)
    paths = runs.RunPaths("pneumonia", args.run, models_root=args.models_root)
    if not paths.keras_file.is_file():
        raise ValueError(f"{paths.keras_file}: no model; train with scripts/train_pneumonia.py --run-name {args.run}.")
    model = keras.saving.load_model(paths.keras_file, compile=False)
    stored = pneumonia_task.load_threshold(paths.model_dir)
    threshold = stored["threshold"] if args.threshold is None else args.threshold
    logits = inference.predict_logits(model, load_images(args.images, model.input_shape[1]))
    probabilities = calibration.calibrated_probabilities(logits, stored["temperature"])
    print(f"threshold {threshold:.4f} ({'--threshold' if args.threshold is not None else stored['policy']}), "
          f"temperature {stored['temperature']:.4f}{'' if stored['calibrated'] else ' (uncalibrated)'}")
    for path, probability in zip(args.images, probabilities):
        label = classification.PNEUMONIA_CLASSES[int(probability >= threshold)]
        print(f"{path}\t{probability:.4f}\t{label}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
