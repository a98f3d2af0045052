import imageio.v3 as iio
import numpy as np
import pytest

from pipelines import paired
from tests.conftest import shared_dataset


def write_gray(path, size=(80, 72), dtype=np.uint8, seed=0, channels=None):
    rng = np.random.default_rng(seed)
    high = 65535 if dtype == np.uint16 else 255
    image = rng.integers(0, high, size=size, dtype=np.int64).astype(dtype)
    if channels == 3:
        image = np.repeat(image[..., None], 3, axis=-1)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, image)
    return image


def test_sixteen_bit_png_keeps_sixteen_bits(tmp_path):
    image = write_gray(tmp_path / "a.png", dtype=np.uint16)
    decoded = next(iter(paired.load_grayscale_dataset([tmp_path / "a.png"]))).numpy()[..., 0]
    np.testing.assert_array_equal(np.round(decoded * 65535).astype(np.uint16), image)


def test_pgm_and_eight_bit_files_are_read(tmp_path):
    image = write_gray(tmp_path / "b.pgm", size=(20, 30))
    decoded = next(iter(paired.load_grayscale_dataset([tmp_path / "b.pgm"]))).numpy()[..., 0]
    np.testing.assert_array_equal(np.round(decoded * 255).astype(np.uint8), image)


def test_clean_folder_with_recipe_gives_deterministic_pairs(tmp_path):
    for index in range(6):
        write_gray(tmp_path / "clean" / f"img{index}.png", seed=index)
    data = paired.build_paired_data(str(tmp_path / "clean"), image_size=32, batch_size=2, recipe="noise:0.1",
                                    test_fraction=0.34)
    assert data.num_examples == 4 and len(data.test_files) == 2
    first = next(iter(data.make_dataset(0)))
    again = next(iter(data.make_dataset(0)))
    np.testing.assert_array_equal(first[0].numpy(), again[0].numpy())
    assert first[0].shape == (2, 32, 32, 1) and first[0].numpy().min() >= -1 and first[1].numpy().max() <= 1
    assert not np.array_equal(first[0].numpy(), first[1].numpy())
    validation = [batch for batch in data.validation_dataset]
    assert sum(len(b[0]) for b in validation) == 2


def test_paired_layout_and_its_errors(tmp_path):
    root = tmp_path / "pairs"
    for index in range(3):
        write_gray(root / "input" / f"{index}.png", seed=index)
        write_gray(root / "target" / f"{index}.png", seed=index + 10)
    files = paired.list_paired_files(root)
    assert [p.name for p in files.inputs] == ["0.png", "1.png", "2.png"]
    write_gray(root / "input" / "3.png")
    with pytest.raises(ValueError, match="no partner file"):
        paired.list_paired_files(root)
    write_gray(root / "target" / "3.png", size=(40, 40))
    with pytest.raises(ValueError, match="sizes differ"):
        paired.list_paired_files(root)


def test_clean_folder_needs_a_recipe_and_rgb_is_converted_with_a_warning(tmp_path, caplog):
    write_gray(tmp_path / "rgb.png", channels=3)
    with pytest.raises(ValueError, match="--degrade"):
        paired.list_paired_files(tmp_path)
    paired.list_paired_files(tmp_path, recipe="noise:0.1")
    assert "converted to grayscale" in caplog.text


def test_unreadable_file_is_named(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 20)
    with pytest.raises(ValueError, match="broken.png"):
        paired.list_paired_files(tmp_path, recipe="noise:0.1")


def test_mias_pairs_stay_on_one_side_of_the_split():
    root = shared_dataset("mammography")
    files = paired.list_paired_files(root, recipe="noise:0.05")
    assert len(files.targets) == 292
    train, test = paired.split_indices(files.targets, 0.15, seed=0)
    train_groups = {paired.group_of(files.targets[i]) for i in train}
    test_groups = {paired.group_of(files.targets[i]) for i in test}
    assert not train_groups & test_groups and len(train) + len(test) == 292
    np.testing.assert_array_equal(test, paired.split_indices(files.targets, 0.15, seed=0)[1])


def test_breast_mask_of_a_real_mammogram():
    path = sorted(shared_dataset("mammography").glob("mdb*.png"))[0]
    image = next(iter(paired.load_grayscale_dataset([path])))
    mask = paired.breast_mask(image).numpy()
    assert 0.1 < mask.mean() < 0.9
