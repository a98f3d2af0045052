"""Build the JSON body of a TF Serving REST request for an exported model.

Examples:
  python scripts/serving_request.py --model saved_models/unet/carvana96/serving/1 car.jpg > request.json
  curl -d @request.json localhost:8501/v1/models/unet:predict
  python scripts/serving_request.py --model saved_models/dcgan/demo/serving/1 --count 4 --seed 1

Image files are read, converted to the signature's channels and size and to
its integer type (uint8 or uint16); a latent-vector signature (DCGAN) gets
`--count` normal vectors drawn with `--seed`. The body uses TF Serving's
columnar format: {"signature_name": ..., "inputs": {name: nested lists}}.
"""

import argparse
import json
import sys

import numpy as np

from pipelines import images
from tf_models.core import cli, export, runs


def build_inputs(specs, image_paths, count=1, seed=0):
    """{input name: array} for a one-input signature, from image files or (latent input) random vectors."""
    if len(specs) != 1:
        raise ValueError(f"The signature has inputs {', '.join(specs)}; this script builds one-input requests.")
    name, spec = next(iter(specs.items()))
    shape = spec.shape.as_list()
    if len(shape) == 2:
        latent = np.random.default_rng(seed).normal(size=(count, shape[1])).astype(spec.dtype.as_numpy_dtype)
        return {name: latent}
    if not image_paths:
        raise ValueError(f"The signature takes images ({name}: {shape}, {spec.dtype.name}); give image files.")
    arrays = [images.to_signature_input(images.read_image(path), shape, spec.dtype.as_numpy_dtype)
              for path in image_paths]
    if len({array.shape for array in arrays}) > 1:
        raise ValueError("The images have different sizes and the signature does not fix one; send them one by one.")
    return {name: np.stack(arrays)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="*", help="image files (one request holding all of them)")
    parser.add_argument("--model", required=True, help="a SavedModel folder, e.g. saved_models/unet/RUN/serving/1")
    parser.add_argument("--signature", default="serving_default")
    parser.add_argument("--count", type=int, default=1, help="latent vectors, for a latent-vector signature")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="", help="write the body here instead of standard output")
    args = parser.parse_args(argv)
    specs = export.signature_inputs(args.model, args.signature)
    body = json.dumps(export.rest_request(build_inputs(specs, args.images, args.count, args.seed), args.signature))
    if args.output:
        print(f"Wrote {runs.atomic_write_text(args.output, body)}")
    else:
        print(body)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
