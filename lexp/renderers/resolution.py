"""The flow render's working resolution: flow, and fast motion, on smaller frames.

Integrating an interval costs its pixels times its in-between instants, and the
instants grow with the motion (one per ``SAMPLE_STEP_PX`` of trail); estimating its flow
costs its pixels. At the sizes phones film both are large: 1080p traffic at 25 px a
frame was 2 Mpx × 25 instants a frame, four minutes for 120 frames. But motion fields
are smooth, and a trail 25 px long keeps no detail along it finer than the trail.

- **Flow** is estimated at full size on frames up to ``FULL_FLOW_SIDE`` (1280) pixels
  long, and on copies ``FLOW_SIDE`` (960) pixels long of larger ones (``s_flow`` = long
  side / FLOW_SIDE): a 4K clip's flow costs what a 960×540 one's does. (Not 960 for
  all: on 1280-px clips that cost the star-field time-lapse 7 dB of gap-fill, its stars
  being a pixel or two across.)
- **Each interval** is integrated at a level of a pyramid over those frames: level k is
  2^k times smaller, the smallest whose trail stays under ``MAX_STEPS_PER_PERIOD``
  pixels a frame period (so at most ~12 instants a period, however fast), and never
  under ``MIN_WORK_SIDE`` pixels. (12, not 8: at 8 the sunrise time-lapse's clouds,
  8–9 px a period, went to the next level and lost 0.9 dB of gap-fill.) A still or slow
  interval (under a pixel a period: no in-between instant) is the plain blend of its
  frames, kept at full size.
- **Slow intervals of large frames** go the other way (``level_for``): where the flow
  is reduced and an interval is at level 0, it is integrated at the finest level above
  the flow's — 2^k times the flow size, the full size at most — whose trail stays under
  ``FINE_STEPS_PER_PERIOD`` (3) pixels a period there, its flows upsampled: at most ~3
  instants a period at full size, and only where it moves (tiles). Fast traffic never
  qualifies; a night sky, its stars 2–3 px across drifting ~2 px a period at 1080p, does.

Composition (:class:`Composer`): each interval's plain blend of its two frames (the
trapezoid rule's ends) is summed at full size, and the flow render replaces it only
where that interval moves (``moving_mask``, from its flow), by its working-size
difference, upsampled. A still clip is still exactly its mean; an interval's still
parts are exact at full size; moving parts are as sharp as their level. Clips up to
FULL_FLOW_SIDE whose motion stays under the limit render exactly as at full size.

What it costs where it acts (``scripts/quality_at_size.py --size 1080p``: the gap-fill
protocol on ../shared/clips scaled to 1080p, against the same render at full size
throughout): median 43.12 dB against 43.33, 3–6× faster; six clips gain (up to +1.1 dB:
river, shaky park), the star field loses 5.6 dB and the sunrise clouds 1.6 (slow fine
detail, at half size). Counting levels from full size instead (level 0 = full size, the
flow upsampled) measured star field −0.9 and clouds −0.5, but 1080p traffic at 32× the
mean's time and 4K at 3.5 GB: not taken. Slow intervals finer than the flow
(``level_for`` below 0, for slow motion only) took the star field from 46.83 to 51.52 dB
(street traffic −0.11, median 43.12 → 43.18) for 1080p traffic at about the same time
and 4K's at +30 % (docs/results.md).
"""

from __future__ import annotations

import math

import numpy as np

FULL_FLOW_SIDE = 1280  # pixels: frames up to this long have their flow at full size
FLOW_SIDE = 960  # pixels: larger frames have it on copies this long (DIS medium: 51 ms a
# pair at 960×540 on this 2-core machine, 96 at 1280×720, 270 at 1920×1080)
MAX_STEPS_PER_PERIOD = 12.0  # working pixels of trail per frame period, at most
MIN_WORK_SIDE = 96  # pixels: no level is smaller
FINE_STEPS_PER_PERIOD = 3.0  # pixels of trail per frame period at a level finer than the
# flow's (``level_for`` below 0): at most ~3 instants a period at full size
MOVING_FROM_PX, MOVING_FULL_PX = 0.5, 1.5  # full-size px per period: the mask's ramp


def flow_scale(height: int, width: int) -> float:
    """s_flow: full-size pixels per flow pixel (1: flow at full size)."""
    side = max(height, width)
    return 1.0 if side <= FULL_FLOW_SIDE else side / FLOW_SIDE


def work_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """(width, height) at ``scale`` full-size pixels per working pixel."""
    return max(8, round(width / scale)), max(8, round(height / scale))


def level_for(forward: np.ndarray, gap: float, flow_scale: float = 1.0) -> int:
    """The pyramid level to integrate an interval at, from its flow (2, h, w) at the flow
    size over ``gap`` periods: its fast pixels (99.5th percentile) under
    MAX_STEPS_PER_PERIOD a period there, the level at least MIN_WORK_SIDE long. A slow
    interval (level 0) of a clip whose flow is reduced (``flow_scale`` > 1 full-size
    pixels per flow pixel) goes finer: the finest level below 0 — level −k is 2^k times
    the flow size, the full size at most — where its fast pixels move at most
    ``FINE_STEPS_PER_PERIOD`` pixels a period. (Stars of a 1080p night sky, 2–3 px
    across, drift ~2 px a period: at the 960-px flow size they were integrated half as
    sharp, −5.6 dB of gap-fill.)"""
    from lexp.renderers.interpolate import fast_motion

    speed = fast_motion(forward) / gap  # flow pixels a period
    wanted = max(0, math.ceil(math.log2(max(speed, 1e-9) / MAX_STEPS_PER_PERIOD)))
    if wanted > 0:
        most = max(0, int(math.log2(max(forward.shape[1:]) / MIN_WORK_SIDE)))
        return min(wanted, most)
    finest = math.ceil(math.log2(flow_scale) - 1e-9) if flow_scale > 1 else 0  # the full size
    for k in range(finest, 0, -1):
        if speed * min(2 ** k, flow_scale) <= FINE_STEPS_PER_PERIOD:
            return -k
    return 0


def downscale(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An image (uint8 or linear float32, H×W×C) at ``size`` (width, height), by area:
    on linear light that is the light each working pixel receives."""
    import cv2

    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def upscale(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A working-size image (or mask) at ``size`` (width, height), bilinear."""
    import cv2

    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def flow_at(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (2, h, w) flow resampled to ``size`` (width, height), in that grid's pixels."""
    if (flow.shape[2], flow.shape[1]) == size:
        return flow
    sx, sy = size[0] / flow.shape[2], size[1] / flow.shape[1]
    resize = downscale if size[0] < flow.shape[2] else upscale
    return np.stack([resize(np.ascontiguousarray(flow[0]), size) * np.float32(sx),
                     resize(np.ascontiguousarray(flow[1]), size) * np.float32(sy)])


class Pyramid:
    """One linear frame at full size and at the levels asked for (level 0: the flow
    size; level k: 2^k times smaller; below 0, finer than the flow size, from the full
    frame), each made once, by area. ``full``: float32 H×W×3 (numpy here; a device
    tensor in on_device.DevicePyramid, which overrides ``_downscale``)."""

    def __init__(self, full, flow_size: tuple[int, int]) -> None:
        self.full = full
        h, w = full.shape[:2]
        self.levels = {0: full if (w, h) == flow_size else self._downscale(full, flow_size)}

    def _downscale(self, image, size: tuple[int, int]):
        return downscale(image, size)

    def at(self, level: int):
        """The frame at ``level``: below 0, finer than the flow size (−k: 2^k times it),
        made from the full-size frame, which is what a level at least that large is."""
        if level not in self.levels:
            base = self.levels[0]
            size = level_size(base, level)
            h, w = self.full.shape[:2]
            if level < 0 and size[0] >= w:
                self.levels[level] = self.full
            else:
                source = self.full if level < 0 else base
                self.levels[level] = self._downscale(source, size)
        return self.levels[level]


def level_size(base: np.ndarray, level: int) -> tuple[int, int]:
    """(width, height) of pyramid level ``level`` over ``base`` (level 0)."""
    h, w = base.shape[:2]
    return max(8, round(w / 2 ** level)), max(8, round(h / 2 ** level))


def moving_mask(forward: np.ndarray, gap: float, scale: float) -> np.ndarray:
    """H×W float32 in [0, 1] on the flow's grid: where an interval moves (its flow, at
    ``scale`` full-size pixels per pixel over ``gap`` periods, above ``MOVING_FROM_PX``
    full-size pixels a period; 1 from ``MOVING_FULL_PX``)."""
    per_period = np.sqrt(forward[0] ** 2 + forward[1] ** 2) * np.float32(scale / gap)
    return np.clip((per_period - MOVING_FROM_PX) / (MOVING_FULL_PX - MOVING_FROM_PX), 0, 1)


class Composer:
    """Sums an exposure whose intervals are worked on at reduced sizes (the module
    docstring): ``full``, Σ (1 − mask↑)·plain_full plus the end half periods; per working
    size, Σ (render − (1 − mask)·plain) there. The exposure is ``full`` plus each of
    those upsampled. Full-size terms are summed in float32, ``FOLD`` at a time, into a
    float64 total (a long exposure adds thousands of terms; converting each full-size
    term to float64 was a third of the composing).

    Images are numpy here; on_device.DeviceComposer keeps the same sums as tensors on a
    device by overriding the array hooks at the end."""

    FOLD = 32

    def __init__(self, full_shape: tuple[int, ...]) -> None:
        self.full_size = (full_shape[1], full_shape[0])
        self.sum64 = self._zeros(full_shape, wide=True)
        self.sum32 = self._zeros(full_shape)
        self.terms = 0
        self.scratch = self._zeros(full_shape)
        self.work: dict[tuple[int, int], object] = {}  # size -> sum at that size

    def add_full(self, part) -> None:
        """A full-size term (float32 H×W×3)."""
        self.sum32 += part
        self.terms += 1
        if self.terms == self.FOLD:
            self.sum64 += self.sum32
            self.sum32[...] = 0
            self.terms = 0

    def _plain(self, a_full, b_full, weight):
        """(a + b)·weight into the scratch buffer (weight: a scalar or H×W×1)."""
        self._add(a_full, b_full, self.scratch)
        self.scratch *= weight
        return self.scratch

    def add_interval(self, a_full, b_full, a_work, b_work, render_work, gap: float,
                     mask: np.ndarray | None, want_part: bool = False):
        """One interval: its render at the working size of ``a_work`` (the sum over its
        ``gap`` periods, ends by the trapezoid rule) and ``mask`` there (numpy H×W; None:
        no in-between instant was needed, so the render is the plain blend, kept at full
        size). ``want_part``: return the interval's sum at full size as the exposure has
        it (for the trail video)."""
        half = float(gap / 2)
        if mask is None:
            plain = self._plain(a_full, b_full, half)
            self.add_full(plain)
            return self._copy(plain) if want_part else None
        size = (a_work.shape[1], a_work.shape[0])
        still = 1 - self._mask(mask)  # H×W×1 at the working size
        kept = self._plain(a_full, b_full, self._upscale(still, self.full_size) * half)
        self.add_full(kept)
        moving = render_work - (a_work + b_work) * (still * half)
        if size not in self.work:
            self.work[size] = self._zeros(moving.shape, wide=True)
        self.work[size] += moving
        return kept + self._upscale(moving, self.full_size) if want_part else None

    def total(self) -> np.ndarray:
        """The exposure's sum, float64 H×W×3 at full size (numpy, wherever it was summed)."""
        out = self.sum64 + self.sum32
        for part in self.work.values():
            out += self._upscale(part, self.full_size)
        return self._host(out)

    # The array hooks: numpy and OpenCV here.
    def _zeros(self, shape: tuple[int, ...], wide: bool = False) -> np.ndarray:
        return np.zeros(shape, np.float64 if wide else np.float32)

    def _add(self, a, b, out) -> None:
        np.add(a, b, out=out)

    def _copy(self, image) -> np.ndarray:
        return image.copy()

    def _upscale(self, image, size: tuple[int, int]) -> np.ndarray:
        """float32 H×W×C (C = 1 kept) at ``size``, whatever ``image``'s float type."""
        out = upscale(image.astype(np.float32, copy=False), size)
        return out[..., None] if out.ndim == 2 else out

    def _mask(self, mask: np.ndarray) -> np.ndarray:
        return mask[..., None]

    def _host(self, image) -> np.ndarray:
        return image


class HostFrames:
    """The flow render's frames on the CPU (numpy; OpenCV to resize and integrate): linear
    light, pyramids and the exposure's sums. on_device.DeviceFrames is its equal on a
    torch device."""

    tiled = True  # intervals are integrated tile by tile (lexp.renderers.tiles)
    integrate = None  # interpolate.interval_sum's default: OpenCV
    sample_flow = None  # interpolate.path_bends' default: OpenCV's remap

    def __init__(self, lut: np.ndarray) -> None:
        self.lut = lut  # 256 entries, float32

    def linear(self, rgb: np.ndarray, gain: float) -> np.ndarray:
        """A decoded uint8 H×W×3 frame in linear light, float32 (× ``gain``)."""
        import cv2

        linear = cv2.LUT(rgb, self.lut)  # the same floats as lut[rgb], 8× faster at 1080p
        if gain != 1.0:
            linear *= np.float32(gain)
        return linear

    def pyramid(self, linear, flow_size: tuple[int, int]) -> Pyramid:
        return Pyramid(linear, flow_size)

    def flow(self, flow: np.ndarray) -> np.ndarray:
        """A (2, H, W) flow where the path bends are worked out: here, as it is."""
        return flow

    def flow_at(self, flow, size: tuple[int, int]):
        return flow_at(flow, size)

    def composer(self, full_shape: tuple[int, ...]) -> Composer:
        return Composer(full_shape)

    def host(self, image) -> np.ndarray:
        """``image`` as a numpy array (for the trail video, extrapolation, the learner)."""
        return image
