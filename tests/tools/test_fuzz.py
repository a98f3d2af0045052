"""The fuzzer's mutations and outcome rules, and a seeded 200-file run over every loader (slow)."""

import io
import struct

import imageio.v3 as iio
import numpy as np
import pydicom.data
import pytest

from tests.conftest import shared_dataset
from tf_models.tools import fuzz, mutations


def png_seed(size=(24, 32)):
    pixels = np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8)
    return "generated/a.png", iio.imwrite("<bytes>", pixels, extension=".png"), ".png"


def test_cases_are_seeded_and_a_smaller_run_is_the_start_of_a_larger_one():
    seeds = [png_seed()]
    small, large = mutations.cases(seeds, 20, seed=4), mutations.cases(seeds, 60, seed=4)
    assert small == large[:20]
    assert mutations.cases(seeds, 20, seed=5) != small
    assert {name.rsplit(":", 1)[1] for name, _, _ in large} <= set(mutations.MUTATIONS)


def test_huge_dimensions_rewrite_the_png_header_with_a_valid_crc():
    _, data, _ = png_seed()
    mutated = mutations.huge_dimensions(data, np.random.default_rng(0), ".png")
    width, height = struct.unpack(">II", mutated[16:24])
    assert width == height and width >= 65_535
    from PIL import Image

    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(mutated))


def test_a_dicom_made_from_a_png_is_sixteen_bit_monochrome1():
    data = mutations.dicom_from_png(png_seed()[1])
    dataset = pydicom.dcmread(io.BytesIO(data))
    assert (dataset.BitsStored, dataset.PhotometricInterpretation) == (16, "MONOCHROME1")


@pytest.mark.parametrize("loader", ["read_image", "decode_grayscale", "app_upload", "paired_degrade"])
@pytest.mark.parametrize("mutation", ["zero_bytes", "truncation", "wrong_extension"])
def test_damaged_pngs_give_named_errors_not_crashes(tmp_path, loader, mutation):
    name, data, extension = mutations.mutate(png_seed(), mutation, np.random.default_rng(1))
    case_file = tmp_path / f"case00001{extension}"
    case_file.write_bytes(data)
    outcome, message = fuzz.run_job(loader, case_file, tmp_path / "layout")
    sniffs_content = mutation == "wrong_extension" and loader in ("decode_grayscale", "app_upload")
    assert outcome == ("decoded" if sniffs_content else "named_error"), message
    assert "function_node" not in message


def test_broken_dicom_files_give_named_errors(tmp_path):
    for name in ("rtplan.dcm", "MR_truncated.dcm", "SC_rgb_small_odd.dcm", "no_meta.dcm"):
        case_file = tmp_path / f"case_{name}"
        case_file.write_bytes(open(pydicom.data.get_testdata_file(name), "rb").read())
        for loader in ("dicom", "read_image", "app_upload"):
            outcome, message = fuzz.run_job(loader, case_file, tmp_path / "layout" / loader)
            assert outcome == "named_error", (name, loader, message)


def test_an_exception_other_than_value_error_is_a_crash(tmp_path, monkeypatch):
    monkeypatch.setitem(fuzz.LOADERS, "read_image", lambda case_file, work: 1 / 0)
    assert fuzz.run_job("read_image", tmp_path / "x.png", tmp_path)[0] == "crash"


@pytest.mark.slow
def test_two_hundred_mutated_files_cause_no_crash_and_no_hang():
    report = fuzz.fuzz(shared_dataset("mammography").parent, count=200, seed=0, timeout=60.0)
    assert report["files"] == 200
    assert report["totals"]["crash"] == 0, report["findings"].get("crash")
    assert report["totals"]["hang"] == 0, report["findings"].get("hang")
    assert report["totals"]["named_error"] > 0 and report["totals"]["decoded"] > 0


def test_a_cmyk_jpeg_in_a_paired_folder_is_named(tmp_path):
    from PIL import Image

    from pipelines import paired

    Image.new("RGB", (32, 32), (200, 40, 40)).convert("CMYK").save(tmp_path / "cmyk.jpg", "JPEG")
    iio.imwrite(tmp_path / "good.png", np.zeros((32, 32), np.uint8))
    files = paired.list_paired_files(tmp_path, "noise:0.05")
    with pytest.raises(ValueError, match=r"cmyk\.jpg: cannot be decoded .*Remove or replace"):
        paired.load_grayscale_dataset(files.targets)


def test_a_worker_that_died_after_its_answer_is_restarted_and_the_next_file_is_still_tried(tmp_path):
    worker = fuzz.Worker(str(tmp_path))
    worker.start()
    worker.process.kill()
    worker.process.join()
    worker.process.is_alive = lambda: True  # died, not yet noticed: the next send meets a closed pipe
    name, data, extension = png_seed()
    try:
        outcome, message = worker.run(("read_image", name, data, extension, 1), timeout=120.0)
    finally:
        worker.stop()
    assert outcome == "decoded", message
    assert worker.deaths_between_jobs == [-9]
