"""DICOM reading (pydicom's bundled test files and generated files), wiring into the loaders, and the enhance round trip."""

import pathlib

import imageio.v3 as iio
import numpy as np
import pydicom
import pydicom.data
import pytest
import tensorflow as tf
from pydicom import uid

from pipelines import classification, dicom, images, paired
from scripts import enhance as enhance_script
from tf_models.app import backend
from tf_models.pix2pix import inference as pix2pix_inference


def bundled_file(name):
    return pathlib.Path(pydicom.data.get_testdata_file(name))


def write_dicom(path, pixels, bits_stored=16, photometric="MONOCHROME2", **attributes):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dicom.dataset_from_array(pixels, bits_stored, photometric, **attributes).save_as(path, enforce_file_format=True)
    return path


def ramp(shape=(40, 48), high=4095):
    return np.round(np.linspace(0, high, shape[0] * shape[1])).reshape(shape).astype(np.uint16)


# ---------------------------------------------------------------- value mapping


def test_rescale_slope_and_intercept_are_applied_and_normalised_by_the_stored_range():
    dataset = pydicom.dcmread(bundled_file("CT_small.dcm"))
    image = dicom.read_dicom(bundled_file("CT_small.dcm"))
    slope, intercept = float(dataset.RescaleSlope), float(dataset.RescaleIntercept)
    low, high = -(2**15) * slope + intercept, (2**15 - 1) * slope + intercept
    expected = (dataset.pixel_array * slope + intercept - low) / (high - low)
    assert (image.low, image.high) == (low, high)
    np.testing.assert_allclose(image.unit[..., 0], expected, atol=1e-6)


@pytest.mark.parametrize("compressed", ["MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm",
                                        "MR_small_jp2klossless.dcm"])
def test_lossless_compressed_syntaxes_decode_to_the_uncompressed_pixels(compressed):
    reference = dicom.read_dicom(bundled_file("MR_small.dcm"), voi=False).unit
    np.testing.assert_array_equal(dicom.read_dicom(bundled_file(compressed), voi=False).unit, reference)


@pytest.mark.parametrize("name", ["JPEG2000.dcm", "JPGExtended.dcm", "image_dfl.dcm"])
def test_lossy_jpeg_and_deflated_files_decode(name):
    image = dicom.read_dicom(bundled_file(name))
    assert image.unit.ndim == 3 and image.unit.shape[-1] == 1 and image.unit.dtype == np.float32
    assert 0.0 <= image.unit.min() < image.unit.max() <= 1.0


def test_twelve_bit_values_are_normalised_by_4095_not_by_the_container(tmp_path):
    pixels = ramp(high=4095)
    image = dicom.read_dicom(write_dicom(tmp_path / "twelve.dcm", pixels, bits_stored=12))
    np.testing.assert_allclose(image.unit[..., 0], pixels / 4095.0, atol=1e-6)
    assert image.as_integers().dtype == np.uint16 and image.as_integers().max() == 65535


def test_sixteen_bit_values_use_the_full_range(tmp_path):
    pixels = ramp(high=65535)
    image = dicom.read_dicom(write_dicom(tmp_path / "sixteen.dcm", pixels, bits_stored=16))
    np.testing.assert_allclose(image.unit[..., 0], pixels / 65535.0, atol=1e-6)


def test_monochrome1_is_inverted_so_that_one_is_white(tmp_path):
    pixels = ramp(high=4095)
    image = dicom.read_dicom(write_dicom(tmp_path / "m1.dcm", pixels, bits_stored=12, photometric="MONOCHROME1"))
    assert image.inverted
    np.testing.assert_allclose(image.unit[..., 0], 1.0 - pixels / 4095.0, atol=1e-6)


def test_window_is_applied_by_default_and_left_out_with_voi_false(tmp_path):
    pixels = ramp(high=4095)
    path = write_dicom(tmp_path / "window.dcm", pixels, bits_stored=12, WindowCenter=1000, WindowWidth=501)
    windowed = dicom.read_dicom(path).unit[..., 0]
    assert windowed[pixels <= 750].max() == 0.0 and windowed[pixels >= 1250].min() == 1.0
    middle = np.abs(pixels.astype(np.int64) - 1000) < 5
    np.testing.assert_allclose(windowed[middle], 0.5, atol=0.02)
    np.testing.assert_allclose(dicom.read_dicom(path, voi=False).unit[..., 0], pixels / 4095.0, atol=1e-6)


def test_voi_lut_sequence_is_applied(tmp_path):
    dataset = dicom.dataset_from_array(ramp(high=255), bits_stored=8)
    item = pydicom.Dataset()
    item.LUTDescriptor = [256, 0, 8]
    item.add_new("LUTData", "US", list(range(255, -1, -1)))
    dataset.VOILUTSequence = [item]
    path = tmp_path / "lut.dcm"
    dataset.save_as(path, enforce_file_format=True)
    image = dicom.read_dicom(path)
    assert image.windowed
    np.testing.assert_allclose(image.unit[..., 0], 1.0 - ramp(high=255) / 255.0, atol=1e-6)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("name, message", [
    ("rtplan.dcm", r"rtplan\.dcm: the DICOM file has no pixel data \(it is a RT Plan Storage\)"),
    ("SC_rgb_small_odd.dcm", r"SC_rgb_small_odd\.dcm: the DICOM image is RGB .* where a grayscale"),
    ("examples_palette.dcm", r"examples_palette\.dcm: the DICOM image is PALETTE COLOR"),
    ("MR_truncated.dcm", r"MR_truncated\.dcm: the DICOM pixel data cannot be decoded"),
    ("no_meta.dcm", r"no_meta\.dcm: not a DICOM file"),
])
def test_bundled_bad_files_raise_a_value_error_naming_the_file(name, message):
    with pytest.raises(ValueError, match=message):
        dicom.read_dicom(bundled_file(name))


def test_a_syntax_without_a_decoder_is_named(tmp_path):
    dataset = dicom.dataset_from_array(ramp())
    dataset.file_meta.TransferSyntaxUID = uid.MPEG2MPML
    dataset["PixelData"].value = pydicom.encaps.encapsulate([b"\x00" * 64])
    path = tmp_path / "video.dcm"
    dataset.save_as(path, enforce_file_format=True)
    with pytest.raises(ValueError, match=r"video\.dcm: transfer syntax MPEG2 Main Profile / Main Level "
                                         r"\(1\.2\.840\.10008\.1\.2\.4\.100\) has no pixel decoder in pydicom; convert"):
        dicom.read_dicom(path)


def test_a_missing_decoder_package_is_named(monkeypatch):
    decoder = pydicom.pixels.get_decoder(uid.JPEG2000)
    monkeypatch.setattr(decoder, "_available", {})
    with pytest.raises(ValueError, match=r"JPEG2000\.dcm: transfer syntax JPEG 2000 Image Compression .* needs "
                                         r"pylibjpeg-openjpeg"):
        dicom.read_dicom(bundled_file("JPEG2000.dcm"))


def test_huge_declared_dimensions_are_refused_before_decoding(tmp_path):
    dataset = dicom.dataset_from_array(ramp())
    dataset.Rows = dataset.Columns = 60_000
    path = tmp_path / "huge.dcm"
    dataset.save_as(path, enforce_file_format=True)
    with pytest.raises(ValueError, match=r"huge\.dcm: 60000x60000 is over the 100 megapixel limit"):
        dicom.read_dicom(path)


def test_a_png_named_dcm_is_refused_by_the_header_check(tmp_path):
    path = tmp_path / "scan.dcm"
    path.write_bytes(iio.imwrite("<bytes>", np.zeros((8, 8), np.uint8), extension=".png"))
    with pytest.raises(ValueError, match=r"scan\.dcm: not a DICOM file"):
        images.read_image(path)


def test_corrupt_png_gives_a_value_error_without_tensorflow_internals(tmp_path):
    path = tmp_path / "broken.png"
    data = iio.imwrite("<bytes>", np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8), extension=".png")
    path.write_bytes(data[:60])
    with pytest.raises(ValueError, match=r"broken\.png: cannot be decoded as an image") as error:
        paired.decode_grayscale(tf.constant(str(path)))
    assert "function_node" not in str(error.value) and "Op:" not in str(error.value)


# ---------------------------------------------------------------- wiring into the loaders


def test_read_image_gives_sixteen_bits_for_a_twelve_bit_dicom(tmp_path):
    pixels = ramp(high=4095)
    image = images.read_image(write_dicom(tmp_path / "a.dcm", pixels, bits_stored=12), channels=3)
    assert image.dtype == np.uint16 and image.shape == (40, 48, 3)
    expected = np.round(pixels / 4095.0 * 65535)
    assert np.abs(image[..., 0] - expected).max() <= 1


def test_paired_folder_of_dicom_pairs_loads_in_the_full_range(tmp_path):
    pixels = ramp(high=4095)
    for side in ("input", "target"):
        for index in range(3):
            write_dicom(tmp_path / "pairs" / side / f"{index}.dcm", pixels, bits_stored=12,
                        WindowCenter=1000, WindowWidth=100)
    files = paired.list_paired_files(tmp_path / "pairs")
    dataset = paired.load_grayscale_dataset(files.targets)
    decoded = [image.numpy()[..., 0] for image in dataset]
    assert len(decoded) == 3
    np.testing.assert_allclose(decoded[0], pixels / 4095.0, atol=1e-6)
    np.testing.assert_allclose(paired.decode_grayscale(str(files.inputs[0])).numpy()[..., 0], pixels / 4095.0,
                               atol=1e-6)


def test_pneumonia_grayscale_dataset_reads_dicom_next_to_jpeg(tmp_path):
    pixels = ramp((32, 32), high=255).astype(np.uint8)
    dcm = write_dicom(tmp_path / "a.dcm", pixels, bits_stored=8, photometric="MONOCHROME1")
    jpeg = tmp_path / "b.png"
    iio.imwrite(jpeg, pixels)
    dataset = classification.grayscale_dataset([str(dcm), str(jpeg)], [0, 1], 32)
    (first, _), (second, _) = list(dataset)
    np.testing.assert_array_equal(first.numpy()[..., 0], 255 - pixels)
    np.testing.assert_array_equal(second.numpy()[..., 0], pixels)


def test_kermany_split_skips_a_colour_dicom_and_keeps_a_grayscale_one(tmp_path):
    for name in ("NORMAL", "PNEUMONIA"):
        folder = tmp_path / "xray" / "train" / name
        for index in range(2):
            write_dicom(folder / f"person{index}_{name}.dcm", ramp((16, 16), 255).astype(np.uint8), bits_stored=8)
    colour = tmp_path / "xray" / "train" / "NORMAL" / "colour.dcm"
    colour.write_bytes(bundled_file("SC_rgb_small_odd.dcm").read_bytes())
    paths, labels, skipped = classification.list_pneumonia_split(tmp_path / "xray", "train")
    assert len(paths) == 4 and labels.tolist() == [0, 0, 1, 1]
    assert [pathlib.Path(path).name for path, _ in skipped] == ["colour.dcm"]
    assert "where a grayscale" in skipped[0][1]


def test_app_reads_a_dicom_upload_and_refuses_a_colour_one(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", ramp(high=4095), bits_stored=12, photometric="MONOCHROME1")
    upload = backend.read_upload(path.read_bytes(), "a.dcm", 1)
    assert upload.pixels.dtype == np.uint16 and upload.pixels.shape == (40, 48, 1)
    assert upload.pixels[0, 0, 0] == 65535 and "DICOM 12-bit MONOCHROME1" in upload.notes[0]
    assert "dcm" in backend.UPLOAD_TYPES
    with pytest.raises(ValueError, match=r"rgb\.dcm: the DICOM image is RGB"):
        backend.read_upload(bundled_file("SC_rgb_small_odd.dcm").read_bytes(), "rgb.dcm", 1)


# ---------------------------------------------------------------- enhance round trip


def stub_enhancer(function):
    """An `Enhancer` whose exported signature is replaced by `function` on [0, 1] images."""
    return pix2pix_inference.Enhancer(lambda image: {"enhanced": function(image)}, size_multiple=8, tile_size=16)


def test_enhancing_a_sixteen_bit_monochrome1_dicom_writes_a_derived_dicom(tmp_path):
    pixels = np.round(np.linspace(1000, 60000, 40 * 48)).reshape(40, 48).astype(np.uint16)
    source_path = write_dicom(tmp_path / "mammogram.dcm", pixels, bits_stored=16, photometric="MONOCHROME1",
                              WindowCenter=30000, WindowWidth=20000, Modality="MG")
    target = tmp_path / "out" / "mammogram_enhanced.dcm"
    enhance_script.enhance_dicom(source_path, target, stub_enhancer(tf.identity), 16, 2, "tiny")
    source, written = pydicom.dcmread(source_path), pydicom.dcmread(target)
    for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "SeriesInstanceUID", "Modality",
                    "PhotometricInterpretation", "BitsAllocated", "BitsStored", "PixelRepresentation",
                    "WindowCenter", "WindowWidth"):
        assert written.get(keyword) == source.get(keyword), keyword
    assert written.SOPInstanceUID != source.SOPInstanceUID
    assert written.file_meta.MediaStorageSOPInstanceUID == written.SOPInstanceUID
    assert written.DerivationDescription == "Enhanced by a Pix2Pix generator (run tiny)"
    assert written.ImageType[0] == "DERIVED"
    stored = written.pixel_array
    assert stored.dtype == np.uint16 and stored.min() == 1000 and stored.max() == 60000
    assert np.abs(stored.astype(np.int64) - pixels).max() <= 1


def test_the_enhanced_values_are_written_through_the_inverse_mapping(tmp_path):
    pixels = ramp(high=4095)
    source_path = write_dicom(tmp_path / "twelve.dcm", pixels, bits_stored=12, photometric="MONOCHROME1",
                              RescaleSlope=2, RescaleIntercept=-1000)
    target = tmp_path / "twelve_enhanced.dcm"
    enhance_script.enhance_dicom(source_path, target, stub_enhancer(lambda image: image**2), 0, 0, "tiny")
    unit = 1.0 - pixels / 4095.0
    expected = np.round((1.0 - unit**2) * 4095.0)
    stored = pydicom.dcmread(target).pixel_array.astype(np.float64)
    assert np.abs(stored - expected).max() <= 1
    assert stored.max() <= 4095


def test_a_modality_lut_source_is_not_written_back(tmp_path):
    dataset = dicom.dataset_from_array(ramp(high=255), bits_stored=8)
    item = pydicom.Dataset()
    item.LUTDescriptor = [256, 0, 8]
    item.add_new("LUTData", "US", list(range(256)))
    item.ModalityLUTType = "US"
    dataset.ModalityLUTSequence = [item]
    path = tmp_path / "modality_lut.dcm"
    dataset.save_as(path, enforce_file_format=True)
    image = dicom.read_dicom(path)
    with pytest.raises(ValueError, match="Modality LUT Sequence cannot be written back"):
        dicom.write_derived(image, image.unit, tmp_path / "out.dcm", "x")


def test_enhance_script_writes_a_dicom_for_a_dicom_and_a_png_for_a_png(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pix2pix_inference, "latest_serving_dir", lambda paths: tmp_path)
    monkeypatch.setattr(pix2pix_inference, "load_enhancer", lambda folder: stub_enhancer(tf.identity))
    source = write_dicom(tmp_path / "in" / "scan.dcm", ramp(high=4095), bits_stored=12, photometric="MONOCHROME1")
    png = tmp_path / "in" / "film.png"
    iio.imwrite(png, ramp(high=255).astype(np.uint8))
    assert enhance_script.main([str(source), str(png), "--run", "tiny", "--output-dir", str(tmp_path / "out"),
                                "--tile", "0"]) == 0
    written = pydicom.dcmread(tmp_path / "out" / "scan_enhanced.dcm")
    assert written.BitsStored == 12 and written.PhotometricInterpretation == "MONOCHROME1"
    assert (tmp_path / "out" / "film_enhanced.png").is_file()
    assert "scan_enhanced.dcm (DICOM, 12-bit, 48x40)" in capsys.readouterr().out
