import shutil
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf

from tf_models.dcgan import model as dcgan
from tf_models.core import export, runs
from tf_models.core import formats as formats_lib
from tf_models.dcgan import task as dcgan_task
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    generator = dcgan.build_generator(28, 1, latent_dim=16, filters=8)
    paths = runs.RunPaths("dcgan", "tiny", root / "logs", root / "models").make_dirs()
    latent = np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32)
    written, report = formats_lib.export_formats(generator, dcgan_task.serving_endpoints(generator), paths.model_dir,
                                            ("savedmodel", "tflite"), {"latent": latent})
    return generator, paths, written, report


def test_saved_model_matches_keras_and_takes_latent_vectors(exported):
    generator, paths, _, _ = exported
    version_dir = paths.serving_dir / "1"
    loaded = tf.saved_model.load(str(version_dir))
    signature = loaded.signatures["serving_default"]
    assert list(signature.structured_input_signature[1]) == ["latent"]
    latent = np.random.default_rng(1).normal(size=(5, 16)).astype(np.float32)
    images = signature(latent=tf.constant(latent))["images"].numpy()
    expected = np.round((generator(latent).numpy() + 1) * 127.5).astype(np.uint8)
    assert images.dtype == np.uint8 and images.shape == (5, 28, 28, 1)
    np.testing.assert_array_equal(images, expected)
    seeded = loaded.signatures["generate"](count=tf.constant(3), seed=tf.constant(4))["images"]
    assert seeded.shape == (3, 28, 28, 1)


def test_saved_model_cli_lists_the_signature(exported):
    _, paths, _, _ = exported
    cli = shutil.which("saved_model_cli", path=str(REPO_ROOT / ".venv" / "bin")) or shutil.which("saved_model_cli")
    if cli is None:
        pytest.fail("saved_model_cli is not installed; it comes with tensorflow")
    output = subprocess.run(
        [cli, "show", "--dir", str(paths.serving_dir / "1"), "--tag_set", "serve", "--signature_def", "serving_default"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "inputs['latent']" in output and "outputs['images']" in output and "DT_UINT8" in output


def test_tflite_parity_within_one_grey_level(exported):
    _, paths, written, report = exported
    assert paths.tflite_file in written
    latent = np.random.default_rng(2).normal(size=(4, 16)).astype(np.float32)
    reference = export.run_saved_model(paths.serving_dir / "1", {"latent": latent})
    lite = export.run_tflite(paths.tflite_file, {"latent": latent})
    assert formats_lib.max_abs_difference(reference, lite)["images"] <= 1.0
    assert report["formats"]["tflite"]["max_abs_vs_keras"]["images"] <= 1.0


def test_export_versions_increment(exported):
    generator, paths, _, _ = exported
    assert export.next_version(paths.serving_dir) == 2


def test_generate_script_from_saved_model(exported, tmp_path):
    _, paths, _, _ = exported
    output = tmp_path / "grid.png"
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "generate.py"), "--model", str(paths.serving_dir / "1"),
         "--count", "9", "--output", str(output)],
        check=True, capture_output=True,
    )
    grid = iio.imread(output)
    assert grid.shape == ((3 * 30 + 2) * 2, (3 * 30 + 2) * 2)
