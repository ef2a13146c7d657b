import numpy as np
import pytest

from lexp import colour


@pytest.mark.parametrize("transfer", colour.TRANSFERS)
def test_decode_encode_round_trip_every_code_value(transfer):
    codes = np.arange(256) / 255.0
    back = colour.encode(colour.decode(codes, transfer), transfer)
    assert np.abs(back * 255 - np.arange(256)).max() < 1e-3


def test_srgb_reference_values():
    # IEC 61966-2-1: 0.5 encoded is 0.2140 linear; the linear segment ends at 0.04045.
    assert colour.decode(np.array([0.5]), "srgb")[0] == pytest.approx(0.21404, abs=1e-5)
    assert colour.decode(np.array([0.04045]), "srgb")[0] == pytest.approx(0.04045 / 12.92)
    assert colour.decode(np.array([1.0]), "srgb")[0] == pytest.approx(1.0)


def test_linear_mean_of_black_and_white_is_brighter_than_code_mean():
    lut = colour.decode_lut("srgb")
    mean_linear = (lut[0] + lut[255]) / 2
    encoded = colour.encode(np.array([mean_linear]), "srgb")[0] * 255
    assert encoded == pytest.approx(187.5, abs=0.5)  # not 127.5: light adds linearly


def test_lut_is_float32_and_monotonic():
    for transfer in colour.TRANSFERS:
        lut = colour.decode_lut(transfer)
        assert lut.dtype == np.float32 and lut.shape == (256,)
        assert np.all(np.diff(lut) > 0)


def test_tone_curves_keep_range_and_order():
    x = np.linspace(0, 8, 4001, dtype=np.float32)[:, None, None] * np.ones((1, 1, 3), np.float32)
    for curve in colour.TONE_CURVES:
        y = colour.tone_map(x, curve)[:, 0, 0]
        assert y.min() >= 0 and y.max() <= 1.0
        assert np.all(np.diff(y) >= -1e-7), curve
    soft = colour.tone_map(x, "soft")[:, 0, 0]
    below = x[:, 0, 0] <= colour.SOFT_KNEE
    assert np.allclose(soft[below], x[below, 0, 0])  # identity below the knee
    assert soft[-1] > 0.99  # approaches white


def test_reinhard_keeps_hue():
    px = np.array([[[2.0, 1.0, 0.5]]], np.float32)
    out = colour.tone_map(px, "reinhard")[0, 0]
    assert out[0] / out[1] == pytest.approx(2.0, rel=1e-5)
    assert out[1] / out[2] == pytest.approx(2.0, rel=1e-5)
