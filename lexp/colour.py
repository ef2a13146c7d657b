"""Transfer functions and tone curves: the one place where light is encoded or decoded.

A sensor integrates light linearly, so every blend in lexp happens in *linear light*:
decode the clip's 8-bit code values to linear float, blend, then encode back.

Conventions
-----------
- Code values: uint8 H×W×3 RGB (0..255) coming in; float32 in [0, 1] going out to the
  writer, which quantises to 8 or 16 bits.
- Linear light: float32 H×W×3 in [0, ∞). 1.0 is the brightest value the clip could
  encode; values above 1 appear only after exposure compensation.

Transfer functions (``--transfer``):

- ``srgb``   the IEC 61966-2-1 piecewise curve (default; also a very good model of how
             Rec.709 video is displayed on computer screens).
- ``rec709`` the inverse of the ITU-R BT.709 camera OETF (linear segment below 0.081).
- ``none``   no decoding: blend the code values themselves. This is what naive tools do
             (the "8-bit mean" baseline); it darkens highlights and kills light trails.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Transfer = Literal["srgb", "rec709", "none"]
ToneCurve = Literal["clip", "soft", "reinhard"]
TRANSFERS: tuple[str, ...] = ("srgb", "rec709", "none")
TONE_CURVES: tuple[str, ...] = ("clip", "soft", "reinhard")

# The soft curve is the identity up to this linear value, then rolls off smoothly to 1.
SOFT_KNEE = 0.8


def decode(code: np.ndarray, transfer: Transfer) -> np.ndarray:
    """Encoded values in [0, 1] (any float array) -> linear light, same shape, float64."""
    v = np.asarray(code, dtype=np.float64)
    if transfer == "srgb":
        return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    if transfer == "rec709":
        return np.where(v < 0.081, v / 4.5, ((v + 0.099) / 1.099) ** (1 / 0.45))
    if transfer == "none":
        return v
    raise ValueError(f"unknown transfer function {transfer!r}")


def encode(linear: np.ndarray, transfer: Transfer) -> np.ndarray:
    """Linear light in [0, 1] -> encoded values in [0, 1], same shape, float32.

    Values outside [0, 1] are clipped first; tone-map before calling this if the image
    has highlights above 1.
    """
    x = np.clip(np.asarray(linear, dtype=np.float32), 0.0, 1.0)
    if transfer == "srgb":
        out = np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    elif transfer == "rec709":
        out = np.where(x < 0.018, x * 4.5, 1.099 * np.power(x, 0.45) - 0.099)
    elif transfer == "none":
        out = x
    else:
        raise ValueError(f"unknown transfer function {transfer!r}")
    return out.astype(np.float32, copy=False)


def decode_lut(transfer: Transfer) -> np.ndarray:
    """The 256-entry table code value -> linear light, float32 (computed in float64)."""
    return decode(np.arange(256) / 255.0, transfer).astype(np.float32)


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
