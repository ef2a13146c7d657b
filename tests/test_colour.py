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


def test_hlg_reference_values():
    # BT.2100 HLG: 50 % signal is 1/12 of the scene light at the top of the range; the
    # reference white of BT.2408 (75 %) is lexp's white.
    hlg = colour.decode(np.array([0.5, 0.75, 1.0]), "hlg")
    assert hlg[1] == pytest.approx(1.0)
    assert hlg[0] == pytest.approx(1 / 12 / 0.26496, rel=1e-4)
    assert hlg[2] == pytest.approx(1 / 0.26496, rel=1e-4)  # highlights reach 3.77× white
    near = colour.decode(np.array([0.5 - 1e-9, 0.5 + 1e-9]), "hlg")
    assert near[0] == pytest.approx(near[1], rel=1e-6)  # the two segments meet


def test_pq_reference_values():
    # ST 2084: signal 0.5081 is 100 cd/m², 0.5806 is 203 (reference white), 1.0 is 10000.
    pq = colour.decode(np.array([0.50807, 0.58069, 1.0]), "pq")
    assert pq == pytest.approx([100 / 203, 1.0, 10000 / 203], rel=2e-4)


def test_bt2020_to_bt709_matrix():
    # BT.2087's published matrix; white stays white.
    assert colour.BT2020_TO_BT709 == pytest.approx(np.array(
        [[1.6605, -0.5876, -0.0728], [-0.1246, 1.1329, -0.0083], [-0.0182, -0.1006, 1.1187]]),
        abs=1e-4)
    assert colour.BT2020_TO_BT709.sum(axis=1) == pytest.approx([1, 1, 1], abs=1e-6)
    grey = np.full((2, 2, 3), 0.4, np.float32)
    assert colour.to_output_primaries(grey, "hlg") == pytest.approx(grey, abs=1e-6)
    assert colour.to_output_primaries(grey, "srgb") is grey


@pytest.mark.parametrize(("requested", "tag", "transfer", "tone", "written"), [
    ("auto", "arib-std-b67", "hlg", "soft", "srgb"),
    ("auto", "smpte2084", "pq", "soft", "srgb"),
    ("auto", "bt709", "srgb", "clip", "srgb"),
    ("auto", None, "srgb", "clip", "srgb"),
    ("rec709", "arib-std-b67", "rec709", "clip", "rec709"),
    ("hlg", None, "hlg", "soft", "srgb"),
])
def test_auto_transfer_and_tone(requested, tag, transfer, tone, written):
    assert colour.transfer_for(requested, tag) == transfer
    assert colour.tone_for("auto", transfer) == tone
    assert colour.tone_for("reinhard", transfer) == "reinhard"
    assert colour.output_transfer(transfer) == written
