"""The bad-input catalogue entries that no other test module covers (docs/reliability.md, "Bad input").

Each case either refuses with a `ValueError` naming the file or value, or
converts / skips with a count; none may fail in the middle of an epoch.
"""

import logging

import imageio.v3 as iio
import numpy as np
import pytest
import tensorflow as tf

from pipelines import classification, images, paired, segmentation, sources
from tests.conftest import write_class_folders
from tests.pipelines.test_paired_pipeline import write_gray
from tests.pneumonia.test_pneumonia import write_kermany
from tests.pipelines.test_segmentation_pipeline import car_mask
from tests.pipelines.test_segmentation_pipeline import write_carvana


def truncated_jpeg(path, size=(20, 24)):
    """A JPEG cut off in its pixel data: the header (and so the size) still reads."""
    data = iio.imwrite("<bytes>", np.random.default_rng(0).integers(0, 256, size + (3,), dtype=np.uint8),
                       extension=".jpg", quality=95)
    path.write_bytes(data[: int(len(data) * 0.8)])
    return path


# ---------------------------------------------------------------- class folders (DCGAN, evaluator)


def test_truncated_jpeg_in_a_class_folder_is_named_before_training(tmp_path):
    root = write_class_folders(tmp_path / "classes", extension=".jpg")
    bad = truncated_jpeg(root / "dog" / "003.jpg")
    split = sources.load(str(root))
    with pytest.raises(ValueError, match=r"003\.jpg: cannot be decoded .*1 unreadable file"):
        sources.resized_cache(split, 16, split.channels)
    assert bad.exists()


def test_png_with_alpha_gives_colour_images_without_the_alpha(tmp_path):
    root = write_class_folders(tmp_path / "classes", per_class=2)
    rgba = np.dstack([np.full((20, 24, 3), 90, np.uint8), np.full((20, 24), 7, np.uint8)])
    iio.imwrite(root / "cat" / "000.png", rgba)
    split = sources.load(str(root))
    first, _ = next(iter(split.dataset))
    assert split.channels == 3 and first.shape == (20, 24, 3)
    assert set(np.unique(first.numpy())) == {90}


def test_sixteen_bit_png_in_an_eight_bit_folder_is_scaled_to_eight_bits(tmp_path):
    root = write_class_folders(tmp_path / "classes", per_class=2, channels=1)
    iio.imwrite(root / "cat" / "000.png", np.array([[0, 32896, 65535]], np.uint16).repeat(4, axis=0))
    split = sources.load(str(root))
    first, _ = next(iter(split.dataset))
    assert first.dtype == tf.uint8 and first.numpy()[0, :, 0].tolist() == [0, 128, 255]


def test_gray_and_colour_images_mixed_in_one_folder_get_the_first_images_channels(tmp_path):
    root = write_class_folders(tmp_path / "classes", per_class=2, channels=1)
    iio.imwrite(root / "dog" / "001.png", np.zeros((20, 24, 3), np.uint8))
    split = sources.load(str(root))
    shapes = {tuple(image.shape) for image, _ in split.dataset}
    assert split.channels == 1 and shapes == {(20, 24, 1)}


# ---------------------------------------------------------------- segmentation (U-Net)


@pytest.mark.parametrize("damage, message", [
    (lambda path: path.write_bytes(b""), r"the file is empty \(0 bytes\)"),
    (lambda path: truncated_jpeg(path, (16, 24)), "cannot be decoded"),
])
def test_broken_segmentation_image_is_named_before_training(tmp_path, damage, message):
    root = write_carvana(tmp_path / "cars")
    damage(root / "train" / "car2_02.jpg")
    with pytest.raises(ValueError, match=rf"car2_02\.jpg: {message}"):
        segmentation.build_segmentation_data(root, image_size=(16, 24), batch_size=2, augmentation=None)


def test_mask_with_class_indices_is_refused(tmp_path):
    root = write_carvana(tmp_path / "cars", encoding="zero_255_png")
    iio.imwrite(root / "train_masks" / "car1_02_mask.png", car_mask(3) * 2)
    with pytest.raises(ValueError, match=r"car1_02_mask\.png: mask values \{0, 2\} .*all background"):
        segmentation.build_segmentation_data(root, image_size=(16, 24), batch_size=2, augmentation=None)


def test_mask_with_soft_edges_is_binarised_at_128_with_a_count(tmp_path, caplog):
    root = write_carvana(tmp_path / "cars", encoding="zero_255_png")
    soft = car_mask(3) * 255
    soft[0, :4] = [40, 127, 128, 200]
    iio.imwrite(root / "train_masks" / "car1_02_mask.png", soft.astype(np.uint8))
    with caplog.at_level(logging.WARNING):
        assert segmentation.check_mask_values(sorted((root / "train_masks").iterdir())) == ["car1_02_mask.png"]
    assert "1 mask(s) hold values other than 0, 1 and 255" in caplog.text
    binary = segmentation.binarize_mask(tf.constant(soft[..., None])).numpy()[0, :4, 0]
    assert binary.tolist() == [0, 0, 1, 1]


def test_desktop_junk_beside_segmentation_pairs_is_ignored(tmp_path):
    root = write_carvana(tmp_path / "cars")
    for folder in ("train", "train_masks"):
        (root / folder / ".DS_Store").write_bytes(b"\x00\x01")
        (root / folder / "Thumbs.db").write_bytes(b"\x00\x01")
    assert len(segmentation.find_pairs(root)) == 15


# ---------------------------------------------------------------- paired (Pix2Pix)


def test_truncated_png_in_a_paired_folder_is_named_before_training(tmp_path):
    for index in range(6):
        write_gray(tmp_path / "clean" / f"mdb{index:03d}.png", size=(40, 40), seed=index)
    data = (tmp_path / "clean" / "mdb004.png").read_bytes()
    (tmp_path / "clean" / "mdb004.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"mdb004\.png: cannot be decoded"):
        paired.build_paired_data(tmp_path / "clean", image_size=32, batch_size=2, recipe="noise:0.1")


def test_desktop_junk_in_a_paired_folder_is_ignored(tmp_path):
    for index in range(3):
        write_gray(tmp_path / "clean" / f"{index}.png", seed=index)
    (tmp_path / "clean" / ".DS_Store").write_bytes(b"junk")
    (tmp_path / "clean" / "Thumbs.db").write_bytes(b"junk")
    assert len(paired.list_paired_files(tmp_path / "clean", recipe="noise:0.1").targets) == 3


# ---------------------------------------------------------------- pneumonia


def test_zero_byte_xray_is_skipped_and_counted(tmp_path):
    root = write_kermany(tmp_path / "xray")
    (root / "train" / "NORMAL" / "IM-0099-0001.jpeg").write_bytes(b"")
    data = classification.build_pneumonia_data(root, 32, 4, validation_fraction=0.25, seed=0)
    assert [path.rsplit("/", 1)[-1] for path, _ in data.skipped] == ["IM-0099-0001.jpeg"]
    assert sum(sum(counts.values()) for counts in data.counts.values()) == 16


# ---------------------------------------------------------------- flags, exports, untrusted models


@pytest.mark.parametrize("argv, message", [
    (["--save-every-steps", "-1"], "--save-every-steps must be 0 or more"),
    (["--steps-per-epoch", "-2"], "--steps-per-epoch must be 0 or more"),
    (["--batch-size", "0"], "--batch-size must be positive"),
    (["--learning-rate", "0"], "--learning-rate must be positive"),
    (["--run-name", ".."], "Invalid run name"),
    (["--run-name", "a\\b"], "Invalid run name"),
])
def test_more_invalid_flags_are_refused(argv, message):
    from tf_models.core import config as config_lib
    from tf_models.dcgan import task as dcgan_task

    with pytest.raises(ValueError, match=message):
        config_lib.parse_config(dcgan_task.DCGANConfig, argv, presets=dcgan_task.PRESETS)


def test_pix2pix_size_not_divisible_by_the_depth_is_refused():
    from tf_models.core import config as config_lib
    from tf_models.pix2pix import task as pix2pix_task

    config = config_lib.make_config(pix2pix_task.Pix2PixConfig, data="x", image_size=48, generator_depth=5)
    with pytest.raises(ValueError, match=r"--image-size 48 must be divisible by 2\*\*--generator-depth \(32\)"):
        pix2pix_task.Pix2PixTask().resolve(config)


@pytest.fixture(scope="module")
def unet_signature(tmp_path_factory):
    from tf_models.unet import model as unet
    from tf_models.core import export as export_lib
    from tf_models.unet import task as unet_task

    model = unet.build_unet((16, 16, 1), depth=2, base_filters=2)
    serving = export_lib.export_saved_model(model, unet_task.serving_endpoints(model),
                                            tmp_path_factory.mktemp("serving"))
    return tf.saved_model.load(str(serving)).signatures["serving_default"]


@pytest.mark.parametrize("images_in", [
    np.zeros((1, 16, 16, 1), np.float32),
    np.zeros((1, 16, 16, 3), np.uint8),
    np.zeros((16, 16, 1), np.uint8),
])
def test_saved_model_signature_refuses_a_wrong_dtype_or_shape(unet_signature, images_in):
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        unet_signature(images=tf.constant(images_in))
    assert unet_signature(images=tf.zeros((1, 16, 16, 1), tf.uint8))["mask"].shape == (1, 16, 16, 1)


def test_keras_file_with_python_code_is_refused_in_safe_mode(tmp_path):
    import keras

    from tf_models.app import backend as app_backend

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda values: values * 2.0)(inputs))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match="safe_mode"):
        app_backend.load_keras(tmp_path / "lambda.keras")


def test_file_checks_name_the_file():
    with pytest.raises(ValueError, match="nowhere.png: file not found"):
        images.check_image_file("nowhere.png")
