"""The Kaggle Carvana run-length codec of submission files."""

import numpy as np
import pytest

from tf_models.unet import inference as unet_inference


@pytest.mark.parametrize(
    "mask, expected",
    [
        ([[0, 1, 1], [1, 0, 0]], "2 3"),
        ([[1, 0], [0, 1]], "1 1 4 1"),
        ([[0, 0], [0, 0]], ""),
        ([[1, 1], [1, 1]], "1 4"),
    ],
)
def test_rle_is_row_major_and_one_indexed(mask, expected):
    mask = np.array(mask, dtype=np.uint8)
    assert unet_inference.rle_encode(mask) == expected
    np.testing.assert_array_equal(unet_inference.rle_decode(expected, mask.shape), mask)


@pytest.mark.parametrize("shape, density", [((31, 47), 0.5), ((64, 96), 0.05), ((7, 1), 0.9), ((320, 480), 0.3)])
def test_rle_round_trip_on_random_masks(shape, density):
    mask = (np.random.default_rng(shape[0]).random(shape) < density).astype(np.uint8)
    decoded = unet_inference.rle_decode(unet_inference.rle_encode(mask[..., None] * 255), shape)
    np.testing.assert_array_equal(decoded, mask)


@pytest.mark.parametrize("rle, message", [("1 2 3", "pairs"), ("0 2", "fit"), ("5 3", "fit"), ("1 0", "fit")])
def test_rle_decode_rejects_bad_strings(rle, message):
    with pytest.raises(ValueError, match=message):
        unet_inference.rle_decode(rle, (2, 3))
