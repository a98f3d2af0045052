"""The Streamlit app: its library (uploads, runs, inference) and every page through AppTest."""

import io

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests import app_support
from tests.conftest import REPO_ROOT, shared_dataset
from tf_models.app import backend as app_backend
from tf_models.app import models as app_models

APP = str(REPO_ROOT / "scripts" / "app.py")


def png(array):
    return iio.imwrite("<bytes>", array, extension=".png")


# ---------------------------------------------------------------- uploads


def test_upload_of_rgba_is_converted_to_grayscale_with_notes():
    rgba = np.random.default_rng(0).integers(0, 256, size=(20, 30, 4), dtype=np.uint8)
    image = app_backend.read_upload(png(rgba), "scan.png", channels=1)
    assert image.pixels.shape == (20, 30, 1) and image.pixels.dtype == np.uint8
    assert any("alpha" in note for note in image.notes) and any("grayscale" in note for note in image.notes)


def test_sixteen_bit_grayscale_stays_sixteen_bit_and_gray_becomes_colour():
    deep = np.linspace(0, 65535, 24 * 24).astype(np.uint16).reshape(24, 24)
    image = app_backend.read_upload(png(deep), "deep.png", channels=1)
    assert image.pixels.dtype == np.uint16 and image.maximum == 65535.0 and not image.notes
    assert image.as_uint8().dtype == np.uint8 and image.unit().max() == pytest.approx(1.0)
    colour = app_backend.read_upload(png(deep), "deep.png", channels=3)
    assert colour.pixels.shape == (24, 24, 3) and "colour" in colour.notes[0]


@pytest.mark.parametrize("data, limits, message", [
    (b"", {}, "empty"),
    (b"hello, not an image" * 10, {}, "not an image"),
    (png(np.zeros((64, 64), np.uint8)), {"max_bytes": 10}, "upload limit"),
    (png(np.zeros((64, 64), np.uint8)), {"max_pixels": 1000}, "megapixel limit"),
    (png(np.zeros((4, 64), np.uint8)), {}, "too small"),
])
def test_bad_uploads_are_refused_with_a_readable_message(data, limits, message):
    with pytest.raises(ValueError, match=message):
        app_backend.read_upload(data, "upload.png", channels=1, **limits)


def test_pixel_limit_is_checked_before_decoding():
    buffer = io.BytesIO()
    Image.new("L", (6000, 6000)).save(buffer, format="PNG")
    with pytest.raises(ValueError, match="36.0 megapixels"):
        app_backend.read_upload(buffer.getvalue(), "bomb.png", channels=1, max_pixels=10_000_000)


def test_truncated_image_is_refused():
    data = png(np.random.default_rng(0).integers(0, 256, size=(64, 64), dtype=np.uint8))
    with pytest.raises(ValueError, match="damaged or truncated|not an image"):
        app_backend.read_upload(data[: len(data) // 2], "cut.png", channels=1)


# ---------------------------------------------------------------- runs and helpers


def test_no_runs_gives_the_training_command(tmp_path):
    assert app_backend.list_runs("unet", tmp_path) == {}
    (tmp_path / "unet" / "half-trained" / "checkpoints").mkdir(parents=True)
    assert app_backend.list_runs("unet", tmp_path) == {}
    assert "scripts/train_unet.py" in app_backend.missing_run_message("unet", tmp_path)


def test_interpolation_runs_from_one_seed_to_the_other():
    latents = app_models.interpolated_latents(16, 3, 9, 5)
    assert latents.shape == (5, 16)
    np.testing.assert_allclose(latents[0], app_models.latent_vectors(16, 1, 3)[0], atol=1e-5)
    np.testing.assert_allclose(latents[-1], app_models.latent_vectors(16, 1, 9)[0], atol=1e-5)


def test_heatmap_overlay_and_bit_depths():
    overlay = app_models.heatmap_overlay(np.full((8, 8, 1), 128, np.uint8), np.linspace(0, 1, 64).reshape(8, 8))
    assert overlay.shape == (8, 8, 3) and overlay.dtype == np.uint8
    assert app_models.to_bit_depth(np.ones((2, 2, 1)), 65535.0).max() == 65535
    assert app_models.to_bit_depth(np.ones((2, 2, 1)), 255.0).dtype == np.uint8


# ---------------------------------------------------------------- pages (AppTest, tiny trained runs)


@pytest.fixture(scope="module")
def models_root(tmp_path_factory):
    return app_support.tiny_models_root(tmp_path_factory)


@pytest.fixture
def app(models_root, monkeypatch):
    monkeypatch.setenv(app_backend.MODELS_ROOT_VARIABLE, str(models_root))

    def open_page(page):
        test = AppTest.from_file(APP, default_timeout=90).run()
        return test.radio(key="page").set_value(page).run()

    return open_page


def upload(test, path):
    return test.file_uploader[0].set_value((path.name, path.read_bytes(), "image/png")).run()


def assert_clean(test):
    assert not test.exception, test.exception
    assert not test.error, [error.value for error in test.error]


def test_generate_page_shows_a_grid_and_interpolates(app):
    test = app("Generate")
    assert_clean(test)
    assert test.download_button and test.download_button[0].label.startswith("Download the grid")
    test.checkbox(key="interpolate").check().run()
    test.number_input(key="count").set_value(5).run()
    assert_clean(test)


def test_enhance_page_scores_a_degraded_mammogram(app):
    test = upload(app("Enhance"), shared_dataset("mammography") / "mdb003.png")
    test.selectbox(key="degradation").set_value("Gaussian noise (noise:0.05)").run()
    assert_clean(test)
    assert {metric.label for metric in test.metric} == {"PSNR (dB)", "SSIM"}
    assert float(test.metric[0].value) > 5.0
    assert test.download_button[0].label.startswith("Download the enhanced image")


def test_segment_page_shows_a_mask_of_a_car(app):
    car = sorted((shared_dataset("carvana_hr") / "train").glob("*.jpg"))[0]
    test = upload(app("Segment"), car)
    assert_clean(test)
    assert any(markdown.value.startswith("Foreground:") for markdown in test.markdown)
    assert test.download_button[0].label.startswith("Download the mask")


def test_classify_page_gives_label_threshold_and_disclaimer(app):
    xray = sorted((shared_dataset("chest_xray") / "test" / "PNEUMONIA").glob("*.jpeg"))[0]
    test = upload(app("Classify"), xray)
    assert_clean(test)
    metrics = {metric.label: metric.value for metric in test.metric}
    assert 0.0 <= float(metrics["P(pneumonia)"]) <= 1.0 and metrics["Label"] in {"NORMAL", "PNEUMONIA"}
    assert any("not a diagnosis" in warning.value for warning in test.warning)
    assert any("threshold" in caption.value for caption in test.caption)


def test_classify_page_picks_a_sample(app):
    test = app("Classify")
    test.radio(key="pneumonia_source").set_value("Sample").run()
    assert_clean(test)
    assert {metric.label for metric in test.metric} == {"P(pneumonia)", "Label"}


def test_a_file_that_is_not_an_image_gets_a_message_not_a_traceback(app):
    test = app("Segment")
    test.file_uploader[0].set_value(("car.png", b"this is text, not a car", "image/png")).run()
    assert not test.exception
    assert "not an image" in test.error[0].value
    assert not test.download_button


def test_pages_without_runs_say_which_command_trains_one(tmp_path, monkeypatch):
    monkeypatch.setenv(app_backend.MODELS_ROOT_VARIABLE, str(tmp_path))
    test = AppTest.from_file(APP, default_timeout=30).run()
    for page, script in [("Generate", "train_dcgan.py"), ("Enhance", "train_pix2pix.py"),
                         ("Segment", "train_unet.py"), ("Classify", "train_pneumonia.py")]:
        test.radio(key="page").set_value(page).run()
        assert not test.exception
        assert script in test.warning[0].value


def image_captions(test):
    return [caption for element in test.get("image") for caption in element.captions]


def test_generate_page_class_picker_gives_a_grid_of_that_class_and_every_class_rows(app, models_root):
    test = app("Generate")
    test.selectbox(key="dcgan_run").set_value("tiny-conditional").run()
    test.selectbox(key="class").set_value("3").run()
    test.number_input(key="count").set_value(4).run()
    assert_clean(test)
    assert any(caption.startswith("4 images of class 3") for caption in image_captions(test))
    generator = app_models.load_generator(models_root / "dcgan" / "tiny-conditional" / "model.keras")
    threes = app_models.run_generate(generator, 4, 0, class_id=3)
    np.testing.assert_array_equal(threes, app_models.run_generate(generator, 4, 0, class_id=3))
    assert not np.array_equal(threes, app_models.run_generate(generator, 4, 0, class_id=5))
    test.selectbox(key="class").set_value("every class (one row each)").run()
    test.number_input(key="per_class").set_value(2).run()
    assert_clean(test)
    assert any("one row per class" in caption for caption in image_captions(test))
    rows = app_models.run_every_class(generator, 2, 0)
    assert rows.shape[0] == 20
    np.testing.assert_array_equal(rows[6:8], threes[:2])
