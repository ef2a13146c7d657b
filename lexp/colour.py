"""Transfer functions, primaries and tone curves: the one place where light is encoded or decoded.

A sensor integrates light linearly, so every blend in lexp happens in *linear light*:
decode the clip's 8-bit code values to linear float, blend, then encode back.

Conventions
-----------
- Code values: uint8 H×W×3 RGB (0..255) coming in; float32 in [0, 1] going out to the
  writer, which quantises to 8 or 16 bits.
- Linear light: float32 H×W×3 in [0, ∞). 1.0 is the clip's white: the brightest value an
  SDR clip can encode, the reference white of an HDR one (whose highlights go above it).
  Values above 1 otherwise appear only after exposure compensation.

Transfer functions (``--transfer``):

- ``srgb``   the IEC 61966-2-1 piecewise curve (the default for SDR clips; also a very good
             model of how Rec.709 video is displayed on computer screens).
- ``rec709`` the inverse of the ITU-R BT.709 camera OETF (linear segment below 0.081).
- ``hlg``    hybrid log-gamma (ITU-R BT.2100), the HDR video of most phones: undone to
             *scene* light, which is what a shutter integrates, scaled so that HLG's
             reference white (75 % signal, BT.2408) is 1.0; highlights reach 3.78.
- ``pq``     perceptual quantiser (SMPTE ST 2084, BT.2100; HDR10, Dolby Vision): undone
             to display light in cd/m², divided by the 203 cd/m² of reference white.
- ``linear`` frames that are linear light already (RAW files, developed by
             :mod:`lexp.media.camera_files`): not decoded; the picture is written with
             the sRGB curve.
- ``none``   no decoding: blend the code values themselves. This is what naive tools do
             (the "8-bit mean" baseline); it darkens highlights and kills light trails.
- ``auto``   (resolved per clip by :func:`transfer_for`): hlg or pq when the video says
             so in its colour tags, linear for RAW frames, else srgb.

HDR clips carry BT.2020 primaries. They are blended in them (a blend is linear, so the
primaries it is done in do not matter) and the result is converted to BT.709/sRGB's
(:func:`to_output_primaries`) and written with the sRGB curve: a long exposure is an
SDR picture, whose highlights above white the tone curve brings in.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Transfer = Literal["srgb", "rec709", "hlg", "pq", "linear", "none"]
ToneCurve = Literal["clip", "soft", "reinhard"]
# The curves themselves; ``auto`` (either option) is resolved per clip, see below.
TRANSFERS: tuple[str, ...] = ("srgb", "rec709", "hlg", "pq", "linear", "none")
HDR_TRANSFERS: tuple[str, ...] = ("hlg", "pq")
TONES: tuple[str, ...] = ("clip", "soft", "reinhard")  # see tone_map
TONE_CURVES: tuple[str, ...] = ("clip", "soft", "reinhard")

# ffmpeg's names of a stream's transfer characteristic (its colour tags) for HDR video.
_TAGGED_HDR = {"arib-std-b67": "hlg", "smpte2084": "pq"}

# HLG (BT.2100): the OETF's log-segment constants, and its reference white in scene light.
_HLG_A = 0.17883277
_HLG_B = 1 - 4 * _HLG_A
_HLG_C = 0.5 - _HLG_A * float(np.log(4 * _HLG_A))
# PQ (ST 2084) constants, its peak and the reference white (BT.2408), in cd/m².
_PQ_M1, _PQ_M2 = 2610 / 16384, 2523 / 4096 * 128
_PQ_C1, _PQ_C2, _PQ_C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
_PQ_PEAK, REFERENCE_WHITE_NITS = 10000.0, 203.0

# The soft curve is the identity up to this linear value, then rolls off smoothly to 1.
SOFT_KNEE = 0.8


def decode(code: np.ndarray, transfer: Transfer) -> np.ndarray:
    """Encoded values in [0, 1] (any float array) -> linear light, same shape, float64."""
    v = np.asarray(code, dtype=np.float64)
    if transfer == "srgb":
        return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    if transfer == "rec709":
        return np.where(v < 0.081, v / 4.5, ((v + 0.099) / 1.099) ** (1 / 0.45))
    if transfer == "hlg":
        return _hlg_scene(v) / _HLG_WHITE
    if transfer == "pq":
        p = np.clip(v, 0.0, 1.0) ** (1 / _PQ_M2)
        y = (np.maximum(p - _PQ_C1, 0.0) / (_PQ_C2 - _PQ_C3 * p)) ** (1 / _PQ_M1)
        return y * (_PQ_PEAK / REFERENCE_WHITE_NITS)
    if transfer in ("linear", "none"):
        return v
    raise ValueError(f"unknown transfer function {transfer!r}")


def _hlg_scene(v: np.ndarray) -> np.ndarray:
    """The inverse HLG OETF: signal in [0, 1] -> normalised scene light in [0, 1]."""
    v = np.clip(v, 0.0, 1.0)
    log_part = (np.exp((np.maximum(v, 0.5) - _HLG_C) / _HLG_A) + _HLG_B) / 12
    return np.where(v <= 0.5, v * v / 3, log_part)


_HLG_WHITE = float(_hlg_scene(np.float64(0.75)))  # 0.2647: reference white, scene light


def encode(linear: np.ndarray, transfer: Transfer) -> np.ndarray:
    """Linear light in [0, 1] -> encoded values in [0, 1], same shape, float32.

    Values outside [0, 1] are clipped first (for hlg and pq: outside [0, the curve's
    peak]); tone-map before calling this if the image has highlights above 1.
    """
    if transfer in HDR_TRANSFERS:
        return _encode_hdr(np.asarray(linear, dtype=np.float64), transfer)
    x = np.clip(np.asarray(linear, dtype=np.float32), 0.0, 1.0)
    if transfer == "srgb":
        out = np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    elif transfer == "rec709":
        out = np.where(x < 0.018, x * 4.5, 1.099 * np.power(x, 0.45) - 0.099)
    elif transfer in ("linear", "none"):
        out = x
    else:
        raise ValueError(f"unknown transfer function {transfer!r}")
    return out.astype(np.float32, copy=False)


def _encode_hdr(linear: np.ndarray, transfer: str) -> np.ndarray:
    """The inverse of :func:`decode` for hlg and pq, float32 signal in [0, 1]."""
    x = np.maximum(linear, 0.0)
    if transfer == "hlg":
        e = np.minimum(x * _HLG_WHITE, 1.0)
        log_part = _HLG_A * np.log(np.maximum(12 * e - _HLG_B, 1e-12)) + _HLG_C
        out = np.where(e <= 1 / 12, np.sqrt(3 * e), log_part)
    else:
        y = np.minimum(x * (REFERENCE_WHITE_NITS / _PQ_PEAK), 1.0) ** _PQ_M1
        out = ((_PQ_C1 + _PQ_C2 * y) / (1 + _PQ_C3 * y)) ** _PQ_M2
    return out.astype(np.float32)


def decode_lut(transfer: Transfer, bits: int = 8) -> np.ndarray:
    """The table code value -> linear light, float32 (computed in float64): 256 entries
    for 8-bit frames, 65536 for 16-bit ones."""
    top = (1 << bits) - 1
    return decode(np.arange(top + 1) / top, transfer).astype(np.float32)


def linearise(codes: np.ndarray, lut: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Code values (uint8 or uint16, any shape) through ``lut`` (:func:`decode_lut` of
    their depth): float32 linear light, into ``out`` when given. cv2.LUT for 8 bits (the
    same floats as ``lut[codes]``, 8× faster at 1080p); a gather for 16."""
    if codes.dtype == np.uint8:
        import cv2

        return cv2.LUT(codes, lut, dst=out)
    return np.take(lut, codes, out=out)


def tone_map(linear: np.ndarray, curve: ToneCurve) -> np.ndarray:
    """Bring highlights above 1 into [0, 1]. H×W×3 float32 linear in, same out.

    - ``clip``: hard clip at 1 (exact for images that never exceed 1).
    - ``soft``: identity below ``SOFT_KNEE``, an exponential shoulder above it that
      approaches 1 asymptotically (C1-continuous; per channel, so hot colours desaturate
      towards white the way film does).
    - ``reinhard``: extended Reinhard (Reinhard et al. 2002, eq. 4) applied to each
      pixel's brightest channel, with the white point at the image's brightest value,
      and RGB scaled by the same factor. Unlike the luminance form, a saturated colour
      cannot leave [0, 1] and be clipped, so hue is kept exactly.
    """
    x = np.maximum(np.asarray(linear, dtype=np.float32), 0.0)
    if curve == "clip":
        return np.minimum(x, 1.0)
    if curve == "soft":
        k = SOFT_KNEE
        shoulder = k + (1 - k) * (1 - np.exp(-(x - k) / (1 - k)))
        return np.where(x <= k, x, shoulder).astype(np.float32)
    if curve == "reinhard":
        value = x.max(axis=-1)
        white = max(float(value.max()), 1.0)
        mapped = value * (1 + value / (white * white)) / (1 + value)
        scale = np.divide(mapped, value, out=np.zeros_like(value), where=value > 0)
        return np.minimum(x * scale[..., None], 1.0)
    raise ValueError(f"unknown tone curve {curve!r}")


def transfer_for(requested: str, tagged: str | None) -> str:
    """The transfer function to undo for a clip: ``requested`` (``--transfer``), with
    ``auto`` resolved from ``tagged``, the video's own transfer tag (ffmpeg's name, e.g.
    ``arib-std-b67``; None when it has none, as image folders)."""
    if requested != "auto":
        return requested
    if tagged == "linear":  # RAW frames (lexp.media.camera_files): linear light already
        return "linear"
    return _TAGGED_HDR.get(tagged or "", "srgb")


def tone_for(requested: str, transfer: str) -> str:
    """The tone curve: ``requested`` (``--tone``), with ``auto`` resolved: a soft shoulder
    for HDR clips, whose highlights go above white, else a plain clip (exact for SDR
    clips, which never do without ``--ev``)."""
    if requested != "auto":
        return requested
    return "soft" if transfer in HDR_TRANSFERS else "clip"


def output_transfer(transfer: str) -> str:
    """The curve an image is written with: the clip's own, except for HDR clips, which
    become SDR pictures (sRGB)."""
    return "srgb" if transfer in HDR_TRANSFERS or transfer == "linear" else transfer


def _rgb_to_xyz(primaries: tuple[tuple[float, float], ...]) -> np.ndarray:
    """The RGB -> CIE XYZ matrix of three xy primaries with the D65 white point."""
    xyz = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in primaries]).T
    wx, wy = 0.3127, 0.3290
    white = np.array([wx / wy, 1.0, (1 - wx - wy) / wy])
    return xyz * np.linalg.solve(xyz, white)


_BT709 = ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060))
_BT2020 = ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046))
BT2020_TO_BT709 = np.linalg.solve(_rgb_to_xyz(_BT709), _rgb_to_xyz(_BT2020)).astype(np.float32)
# Display P3 (P3-D65): the primaries of phones' photos (iPhone HEIC stills).
_P3_D65 = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
P3_TO_BT709 = np.linalg.solve(_rgb_to_xyz(_BT709), _rgb_to_xyz(_P3_D65)).astype(np.float32)


def white_in_srgb(kelvin: float) -> np.ndarray:
    """The colour of a black body at ``kelvin`` (the Planckian locus, as the DNG SDK and
    raw developers read a temperature), as linear sRGB with green 1: what a white card
    lit by it records in sRGB's primaries without any white balance. Kim et al.'s cubic
    fit of the locus (US patent 7024034, 2002), good to 1667-25000 K."""
    t = 1e3 / kelvin
    if kelvin <= 4000:
        x = -0.2661239 * t**3 - 0.2343589 * t**2 + 0.8776956 * t + 0.179910
    else:
        x = -3.0258469 * t**3 + 2.1070379 * t**2 + 0.2226347 * t + 0.240390
    if kelvin <= 2222:
        y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
    elif kelvin <= 4000:
        y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483
    rgb = np.linalg.solve(_rgb_to_xyz(_BT709), np.array([x / y, 1.0, (1 - x - y) / y]))
    return rgb / rgb[1]


def to_output_primaries(linear: np.ndarray, transfer: str) -> np.ndarray:
    """Linear H×W×3 RGB in the clip's primaries -> in BT.709/sRGB's, float32: HDR clips'
    BT.2020 colours are converted (those outside sRGB's gamut go negative in a channel,
    which the tone curve clips); SDR clips are returned as they are."""
    if transfer not in HDR_TRANSFERS:
        return linear
    import cv2

    return cv2.transform(np.ascontiguousarray(linear, dtype=np.float32), BT2020_TO_BT709)
