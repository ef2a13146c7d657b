"""The flow render's sizes: flow on smaller frames, every interval at full size.

Estimating an interval's flow costs its pixels, and motion fields are smooth: flow is
estimated at full size on frames up to ``FULL_FLOW_SIDE`` (1280) pixels long, and on
copies ``FLOW_SIDE`` (960) pixels long of larger ones (``s_flow`` = long side /
FLOW_SIDE): a 4K clip's flow costs what a 960×540 one's does — unless its first interval
is a slow drift of much of the frame (``SLOW_FLOW_PX``, ``DRIFT_PX``): a night sky's
stars, 2–3 px across, drift too little to be followed on a smaller copy, so such a clip's
flow is estimated at full size (render_flow's walk decides it once, at the first
interval).

Each interval is integrated at full size, along its flow upsampled, whatever the
motion: a fast interval costs a few segments pre-filtered along the
motion there (lexp.renderers.segments), not a copy shrunk in both directions. (The
working sizes this replaced integrated fast motion on copies 2^k times smaller: a
motion blur keeps the detail across its direction, and a held-back cloud time-lapse lost
3.2 dB of gap-fill to them; docs/results.md.)

``Composer`` sums the exposure: full-size terms in float32, folded into a float64
total. ``HostFrames``: the render's frames and sums with numpy and OpenCV
(on_device.DeviceFrames is their equal on a torch device).
"""

from __future__ import annotations

import numpy as np

FULL_FLOW_SIDE = 1280  # pixels: frames up to this long have their flow at full size
FLOW_SIDE = 960  # pixels: larger frames have it on copies this long (DIS medium: 51 ms a
# pair at 960×540 on this 2-core machine, 96 at 1280×720, 270 at 1920×1080)
SLOW_FLOW_PX = 4.0  # full-size px a period: a clip whose first interval drifts slower
DRIFT_PX = 0.5  # (its fast pixels under SLOW_FLOW_PX, its 90th percentile over DRIFT_PX)
# has its flow at full size: 1080p stars, 2–3 px across drifting ~2 px a period, are not
# followed on the 960-px copy (−0.5 dB against the exact render; DIS there costs 163 ms
# a pair against 39). A still street with a car in it (90th percentile 0.01 px) is not
# such a drift.


def flow_scale(height: int, width: int) -> float:
    """s_flow: full-size pixels per flow pixel (1: flow at full size)."""
    side = max(height, width)
    return 1.0 if side <= FULL_FLOW_SIDE else side / FLOW_SIDE


def slow_drift(forward: np.ndarray, gap: float, scale: float) -> bool:
    """Whether a reduced flow (2, h, w, at ``scale`` full-size px per px) over ``gap``
    periods is a slow drift of much of the frame — its 90th percentile at least
    DRIFT_PX full-size px a period, its fast pixels (99.5th) under SLOW_FLOW_PX: a night
    sky turning, not a still street with a car in it. Such a clip's flow belongs at full
    size."""
    sparse = forward[:, ::4, ::4]  # a 1-in-16 subsample is plenty for percentiles
    speed = np.sqrt(sparse[0] ** 2 + sparse[1] ** 2).ravel() * np.float32(scale / gap)
    drift, fast = np.percentile(speed, [90, 99.5])
    return bool(drift >= DRIFT_PX and fast < SLOW_FLOW_PX)


def work_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """(width, height) at ``scale`` full-size pixels per working pixel."""
    return max(8, round(width / scale)), max(8, round(height / scale))


def downscale(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An image (uint8 or linear float32, H×W×C) at ``size`` (width, height), by area:
    on linear light that is the light each working pixel receives."""
    import cv2

    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def flow_at(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (2, h, w) flow resampled to ``size`` (width, height), in that grid's pixels."""
    if (flow.shape[2], flow.shape[1]) == size:
        return flow
    import cv2

    interpolation = cv2.INTER_AREA if size[0] < flow.shape[2] else cv2.INTER_LINEAR
    out = np.empty((2, size[1], size[0]), np.float32)  # filled in place: no stacking copy
    for axis, scale in ((0, size[0] / flow.shape[2]), (1, size[1] / flow.shape[1])):
        cv2.resize(np.ascontiguousarray(flow[axis]), size, dst=out[axis],
                   interpolation=interpolation)
        out[axis] *= np.float32(scale)
    return out


class Composer:
    """Sums an exposure at full size: its terms in float32, ``FOLD`` at a time, into a
    float64 total (a long exposure adds thousands of terms; converting each one to
    float64 was a third of the summing).

    Images are numpy here; on_device.DeviceComposer keeps the same sums as tensors on a
    device by overriding the array hooks at the end."""

    FOLD = 32

    def __init__(self, full_shape: tuple[int, ...]) -> None:
        self.sum64 = self._zeros(full_shape, wide=True)
        self.sum32 = self._zeros(full_shape)
        self.terms = 0

    def add_full(self, part) -> None:
        """A full-size term (float32 H×W×3)."""
        self.sum32 += part
        self.terms += 1
        if self.terms == self.FOLD:
            self.sum64 += self.sum32
            self.sum32[...] = 0
            self.terms = 0

    def total(self) -> np.ndarray:
        """The exposure's sum, float64 H×W×3 at full size (numpy, wherever it was summed)."""
        return self._host(self.sum64 + self.sum32)

    # The array hooks: numpy here.
    def _zeros(self, shape: tuple[int, ...], wide: bool = False) -> np.ndarray:
        return np.zeros(shape, np.float64 if wide else np.float32)

    def _host(self, image) -> np.ndarray:
        return image


class HostFrames:
    """The flow render's frames on the CPU (numpy; OpenCV to resize and integrate): linear
    light, pyramids and the exposure's sums. on_device.DeviceFrames is its equal on a
    torch device. ``exact``: the reference render (flow and every instant at full size,
    at most a pixel of trail apart: interpolate.integrate_interval); otherwise each
    interval in a few segments pre-filtered along the motion (segments.py)."""

    tiled = True  # intervals are integrated tile by tile (lexp.renderers.tiles)
    sample_flow = None  # interpolate.path_bends' default: OpenCV's remap

    def __init__(self, lut: np.ndarray, exact: bool = False) -> None:
        from lexp.renderers import interpolate, segments

        self.lut = lut  # 256 entries, float32
        self.exact = exact
        self.integrate = interpolate.integrate_interval if exact else \
            segments.integrate_segments
        self.samples = interpolate.exact_samples_for if exact else interpolate.samples_for
        self.box_above = None if exact else segments.SHORT_TRAIL  # tiles.plan's

    def linear(self, rgb: np.ndarray, gain: float) -> np.ndarray:
        """A decoded uint8 (or uint16) H×W×3 frame in linear light, float32 (× ``gain``)."""
        from lexp import colour

        linear = colour.linearise(rgb, self.lut)
        if gain != 1.0:
            linear *= np.float32(gain)
        return linear

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
