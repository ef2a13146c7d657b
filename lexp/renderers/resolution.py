"""The flow render's working resolution: fast motion is integrated on smaller frames.

Integrating an interval costs its pixels times its in-between instants, and the
instants grow with the motion (one per ``SAMPLE_STEP_PX`` of trail). At the sizes phones
film both are large: 1080p traffic at 25 px a frame is 2 Mpx × 25 instants a frame,
four minutes for 120 frames. But a trail 25 px long keeps no detail along it finer than
the trail, so the flow and the in-between instants do not need full resolution there.

The working scale ``s`` (full pixels per working pixel) is chosen per clip from the
motion of its first two frames (a quick DIS probe on a copy at most 480 px long):

    s = max(1, long side / MAX_WORK_SIDE, motion per period / MAX_STEPS_PER_PERIOD)

so an interval never needs more than about ``MAX_STEPS_PER_PERIOD`` instants per frame
period, whatever the size and the speed. Slow clips, and clips up to ``MAX_WORK_SIDE``
whose motion stays under that, keep ``s = 1``: the full-resolution render, unchanged.

With ``s > 1`` the render is composed so that what does not move keeps every full-size
pixel (:class:`Composer`): each interval's plain blend of its two frames (the trapezoid
rule's ends) is summed at full size, and the flow render replaces it only where that
interval moves (a mask from its flow: ``moving_mask``), by the working-size render's
upsampled difference. A still clip is still exactly its mean, and an interval's still
parts are exact; moving parts are as sharp as the working size.
"""

from __future__ import annotations

import math

import numpy as np

MAX_WORK_SIDE = 1920  # pixels: the longest side integrated (4K is worked on at 1920)
MAX_STEPS_PER_PERIOD = 8.0  # working pixels of trail per frame period, at most
PROBE_SIDE = 480  # pixels: the motion probe's copy
MOVING_FROM_PX, MOVING_FULL_PX = 0.5, 1.5  # full-size px per period: the mask's ramp


def choose_scale(first: np.ndarray, second: np.ndarray | None, gap: float) -> float:
    """``s`` for a clip whose first two frames (uint8 H×W×3, ``gap`` frame periods apart)
    are given; ``second`` None (one frame): size alone decides."""
    h, w = first.shape[:2]
    scale = max(1.0, max(h, w) / MAX_WORK_SIDE)
    if second is not None:
        scale = max(scale, probe_motion(first, second) / max(gap, 1e-6) / MAX_STEPS_PER_PERIOD)
    return scale


def probe_motion(first: np.ndarray, second: np.ndarray) -> float:
    """The 99.5th percentile of the motion between two frames, in full-size pixels: DIS
    medium on copies at most ``PROBE_SIDE`` pixels long (~15 ms). Not ultrafast: it
    misses a small object's large displacement (measured: 9 px for a 40-px square moving
    40 px), which would leave the render at full size and slow."""
    import cv2

    from lexp.flow import DISFlow

    h, w = first.shape[:2]
    factor = min(1.0, PROBE_SIDE / max(h, w))
    size = (max(8, round(w * factor)), max(8, round(h * factor)))
    small = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in (first, second)]
    flow = DISFlow("medium").pair(*small)
    speed = np.sqrt(flow[0] ** 2 + flow[1] ** 2)
    return float(np.percentile(speed, 99.5)) * w / size[0]


def work_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """(width, height) at the working scale."""
    return max(8, round(width / scale)), max(8, round(height / scale))


def downscale(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An image (uint8 or linear float32, H×W×C) at ``size`` (width, height), by area:
    on linear light that is the light each working pixel receives."""
    import cv2

    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def upscale(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A working-size image (or mask) back at ``size`` (width, height), bilinear."""
    import cv2

    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def moving_mask(forward: np.ndarray, gap: float, scale: float) -> np.ndarray:
    """Working-size H×W float32 in [0, 1]: where an interval moves (its flow, in working
    pixels over ``gap`` periods, above ``MOVING_FROM_PX`` full-size pixels a period; 1 from
    ``MOVING_FULL_PX``)."""
    per_period = np.sqrt(forward[0] ** 2 + forward[1] ** 2) * np.float32(scale / gap)
    return np.clip((per_period - MOVING_FROM_PX) / (MOVING_FULL_PX - MOVING_FROM_PX), 0, 1)


class Composer:
    """Sums an exposure worked on at scale ``s > 1`` (see the module docstring):

    ``full``: Σ over intervals of (1 − mask↑)·plain_full, plus the end half periods;
    ``work``: Σ of (render_work − (1 − mask)·plain_work); the exposure is
    ``full + work↑``. Both float64 (a long exposure adds thousands of terms)."""

    def __init__(self, full_shape: tuple[int, ...], scale: float) -> None:
        h, w = full_shape[:2]
        self.scale = scale
        self.full_size, self.size = (w, h), work_size(h, w, scale)
        self.full = np.zeros(full_shape, np.float64)
        self.work = np.zeros((self.size[1], self.size[0], full_shape[2]), np.float64)

    def add_still(self, linear_full: np.ndarray, weight: float) -> None:
        """A part that does not move, at full size (an end's half period)."""
        self.full += linear_full * np.float32(weight)

    def add_interval(self, a_full, b_full, a_work, b_work, render_work: np.ndarray,
                     gap: float, mask: np.ndarray | None, want_part: bool = False
                     ) -> np.ndarray | None:
        """One interval: its working-size render (the sum over its ``gap`` periods, ends
        by the trapezoid rule) and ``mask`` (None: no in-between instant was needed, so
        the render is the plain blend, kept at full size). ``want_part``: return the
        interval's sum at full size as the exposure has it (for the trail video)."""
        half = np.float32(gap / 2)
        if mask is None:
            plain = (a_full + b_full) * half
            self.full += plain
            return plain if want_part else None
        kept = (a_full + b_full) * (half * (1 - upscale(mask, self.full_size)))[..., None]
        moving = render_work - (a_work + b_work) * (half * (1 - mask))[..., None]
        self.full += kept
        self.work += moving
        return kept + upscale(moving.astype(np.float32), self.full_size) if want_part \
            else None

    def total(self) -> np.ndarray:
        """The exposure's sum, float64 H×W×3 at full size."""
        return self.full + upscale(self.work.astype(np.float32), self.full_size)


def velocity_at_full_size(flow: np.ndarray, full_size: tuple[int, int]) -> np.ndarray:
    """A working-size (2, h, w) flow at full size, in full-size pixels."""
    w, h = full_size
    sx, sy = w / flow.shape[2], h / flow.shape[1]
    return np.stack([upscale(flow[0], full_size) * np.float32(sx),
                     upscale(flow[1], full_size) * np.float32(sy)])


def describe(scale: float, size: tuple[int, int]) -> str:
    """'worked on at 640×360 (1/3 scale)' for messages."""
    return f"motion worked on at {size[0]}×{size[1]} (1/{scale:.3g} scale)" \
        if not math.isclose(scale, 1.0) else ""
