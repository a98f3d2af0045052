"""explore_data.py: class counts, sample grid and the film statistics that show a split's shift."""

import json

import cv2
import imageio.v3 as iio
import numpy as np

from scripts import explore_data
from tests.pneumonia.test_pneumonia import write_kermany


def test_film_statistics_see_blur_and_a_lifted_background(tmp_path):
    film = np.random.default_rng(0).uniform(60, 200, size=(96, 96)).astype(np.float32)
    film[:, :12] = 0.0
    variants = {
        "film": film,
        "blurred": cv2.GaussianBlur(film, (0, 0), 1.0),
        "lifted": np.where(film == 0.0, 30.0, film),
    }
    statistics = {}
    for name, image in variants.items():
        path = tmp_path / f"{name}.png"
        iio.imwrite(path, np.round(image).astype(np.uint8))
        statistics[name] = explore_data.film_statistics(path, image_size=64)
    mean, background, sharpness = statistics["film"]
    assert statistics["blurred"][2] < 0.7 * sharpness
    assert abs(statistics["blurred"][0] - mean) < 2.0
    assert background == 0.0 and statistics["lifted"][1] == 30.0
    assert statistics["lifted"][2] == sharpness


def test_explore_writes_counts_samples_and_film_statistics(tmp_path, capsys):
    root = write_kermany(tmp_path / "xray")
    output = tmp_path / "explore"
    assert explore_data.main(["--task", "pneumonia", "--data", str(root), "--validation-fraction", "0.25",
                              "--statistics-size", "32", "--output-dir", str(output)]) == 0
    for name in ("class_counts.png", "samples.png", "film_statistics.png", "class_counts.json"):
        assert (output / name).stat().st_size > 0
    statistics = json.loads((output / "film_statistics.json").read_text())["statistics"]
    assert set(statistics) == {"train", "validation", "test"}
    test_normal = statistics["test"]["NORMAL"]
    assert test_normal["films"] == 8
    assert set(test_normal) == {"films", *explore_data.STATISTICS}
    assert "relative sharpness" in capsys.readouterr().out
