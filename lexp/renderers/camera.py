"""Is the camera moving? What ``auto`` (:mod:`lexp.renderers.auto`) asks before it
judges the picture: a camera that drifts is steadied (``--align``) and said so, a pan
keeps its motion, a tripod under a turning sky is a tripod; a method named outright on a
drifting camera renders as asked, with a warning.
"""

from __future__ import annotations

import math

import numpy as np

from lexp.config import RenderConfig
from lexp.media import Clip, ClipInfo, window_frames
from lexp.renderers.result import Why

# The camera moves when most of the first pair's flow is one shift: its median at least
# CAMERA_PX a frame, CAMERA_SHARE of the pixels near it (within 0.5 px, or a quarter of
# the shift), the same shift in 7 of the frame's 3×3 regions, and none of them still.
# (A car crossing a still street moves a minority; a river or a crowd moves by regions;
# stars turn over still ground; a pan or a drifting hand moves all.)
CAMERA_PX = 0.5
CAMERA_SHARE = 0.6
STILL_REGION_PX = 0.3  # a region whose median moves less holds still: so does the camera


def camera_motion(peeked: list) -> tuple[float, float] | None:
    """The camera's own motion (x, y) in px per frame from the first two (index, frame)
    pairs, or None when it holds still (or nothing can tell)."""
    first = _first_flow(peeked)
    return None if first is None else _shift_of(*first[:3])


# Frames larger than this (px, the longer side) are judged on a copy this size: a camera's
# drift is the median of many pixels, sub-pixel on the copy; a 12 MP frame's own flow
# cost seconds.
CAMERA_FLOW_PX = 1280


def _first_flow(peeked: list) -> tuple[np.ndarray, np.ndarray, int, float] | None:
    """(x flow, y flow in full-size px, frames apart, full-size px per flow sample) of the
    window's first two frames, at full size up to CAMERA_FLOW_PX (the regions must
    agree within 0.5 px); None with fewer than two."""
    import cv2

    from lexp.flow import DISFlow

    if len(peeked) < 2:
        return None
    (i, a), (j, b) = peeked[:2]
    h, w = a.shape[:2]
    scale = max(1.0, max(h, w) / CAMERA_FLOW_PX)
    if scale > 1:
        size = (round(w / scale), round(h / scale))
        a, b = (cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in (a, b))
        scale = w / size[0]
    if a.dtype != np.uint8:  # 16-bit frames: the estimator reads 8
        from lexp.media import to_8bit

        a, b = to_8bit(a), to_8bit(b)
    fx, fy = DISFlow("medium").pair(a, b)
    if scale > 1:
        fx, fy = fx * np.float32(scale), fy * np.float32(scale)
    return fx, fy, j - i, scale


def _shift_of(fx: np.ndarray, fy: np.ndarray, apart: int) -> tuple[float, float] | None:
    """The camera's shift (x, y) in px per frame when most of the flow is one shift,
    else None."""
    mx, my = float(np.median(fx)), float(np.median(fy))
    speed = math.hypot(mx, my) / apart
    near = max(0.5, 0.25 * math.hypot(mx, my))  # px: "the same shift", up to flow's noise
    share = float(np.mean(np.hypot(fx - mx, fy - my) < near))
    if speed < CAMERA_PX or share < CAMERA_SHARE:
        return None
    h, w = fx.shape
    regions = [(float(np.median(fx[r * h // 3:(r + 1) * h // 3, c * w // 3:(c + 1) * w // 3])),
                float(np.median(fy[r * h // 3:(r + 1) * h // 3, c * w // 3:(c + 1) * w // 3])))
               for r in range(3) for c in range(3)]
    if any(math.hypot(x, y) < STILL_REGION_PX for x, y in regions):
        return None  # ground that holds still: a tripod under a turning sky, not a drift
    agree = sum(math.hypot(x - mx, y - my) < near for x, y in regions)
    # (a passer-by may fill two regions)
    return (mx / apart, my / apart) if agree >= 7 else None


# A zoom: the flow of the frame's 4×4 regions is one radial field (x, y) · z about some
# point, z·(half the diagonal) at least ZOOM_PX a frame, and it explains the regions
# within a quarter of that (a scene's own motion does not line up so).
ZOOM_PX = 1.0


def zoom_rate(fx: np.ndarray, fy: np.ndarray, apart: int, spacing: float = 1.0
              ) -> float | None:
    """The camera's zoom as a change of scale a frame (+0.01: 1% closer a frame), when
    the first pair's flow is a zoom (with any shift and roll), else None. Least squares
    of u = z·x − r·y + tx, v = r·x + z·y + ty over the 16 regions' median flows.
    ``spacing``: full-size px between flow samples (the flow in full-size px)."""
    h, w = fx.shape
    fit, misfit, _ = _similarity(fx, fy, spacing)
    reach = abs(fit[0]) * math.hypot(w, h) * spacing / 2  # px the corners move, by zoom
    if reach / apart < ZOOM_PX or misfit > 0.25 * reach:
        return None
    return float(fit[0]) / apart


def _similarity(fx: np.ndarray, fy: np.ndarray, spacing: float):
    """(zoom, roll, shift x, shift y) fitted by least squares to the median flows of the
    frame's 4×4 regions (u = z·x − r·y + tx, v = r·x + z·y + ty, x and y from the frame's
    centre in full-size px); the fit's RMS misfit (px); the regions' median motion (px)."""
    h, w = fx.shape
    rows = []
    for r in range(4):
        for c in range(4):
            ys, xs = slice(r * h // 4, (r + 1) * h // 4), slice(c * w // 4, (c + 1) * w // 4)
            x, y = ((c + 0.5) * w / 4 - w / 2) * spacing, ((r + 0.5) * h / 4 - h / 2) * spacing
            rows.append((x, y, float(np.median(fx[ys, xs])), float(np.median(fy[ys, xs]))))
    x, y, u, v = (np.array(col) for col in zip(*rows, strict=True))
    one, nil = np.ones_like(x), np.zeros_like(x)
    design = np.vstack([np.stack([x, -y, one, nil], 1), np.stack([y, x, nil, one], 1)])
    flows = np.concatenate([u, v])
    fit = np.linalg.lstsq(design, flows, rcond=None)[0]
    misfit = float(np.sqrt(np.mean((design @ fit - flows) ** 2)))
    return fit, misfit, float(np.median(np.hypot(u, v)))


def shake_of(fx: np.ndarray, fy: np.ndarray, apart: int, spacing: float = 1.0
             ) -> tuple[float, float] | None:
    """The camera's shift (x, y) in px per frame when a pair's flow is one shake of the
    whole frame — a shift with some roll and zoom, explained by one similarity within a
    quarter of its motion (0.5 px at least), at least CAMERA_PX a frame, and no region
    of the frame still (ground under a turning sky keeps its sky turning) — else None."""
    h, w = fx.shape
    for r in range(3):
        for c in range(3):
            ys, xs = slice(r * h // 3, (r + 1) * h // 3), slice(c * w // 3, (c + 1) * w // 3)
            if math.hypot(float(np.median(fx[ys, xs])),
                          float(np.median(fy[ys, xs]))) < STILL_REGION_PX:
                return None
    fit, misfit, motion = _similarity(fx, fy, spacing)
    if motion / apart < CAMERA_PX or misfit > max(0.5, 0.25 * motion):
        return None
    return float(fit[2]) / apart, float(fit[3]) / apart


# A camera whose drift over the window would leave less than this share of the frame
# in every view pans on purpose (aligning would crop the picture away): auto keeps it.
PAN_KEEPS = 0.5


def steady_a_moving_camera(config: RenderConfig, info: ClipInfo, peeked: list):
    """(config, probe frames, words): with ``--align`` turned on when the camera drifts
    (:func:`camera_motion`; a shake that rotates, or parallax, is not seen) (the probe
    frames aligned too), or as they were when it holds still, pans
    across the view, zooms, or its frames cannot be registered (too little texture),
    saying which."""
    from dataclasses import replace


    first = _first_flow(peeked)
    motion = None if first is None else _shift_of(*first[:3])
    if motion is None:
        zoom = None if first is None else zoom_rate(*first)
        if zoom is not None:  # aligning would crop to the narrowest view, and blur it
            return config, peeked, Why("the camera zooms: a zoom cannot be steadied, its "
                                       "motion kept", f"{100 * zoom:+.1f}% a frame")
        return config, peeked, None
    speed = math.hypot(*motion)
    if (pan := _pans(config, info, motion)) is not None:
        return config, peeked, pan
    return _steadied(replace(config, align="similarity"), config, peeked,
                     Why("the camera drifts: steadied (--no-align keeps its motion)",
                         f"{speed:.1f} px/frame"))


def _pans(config: RenderConfig, info: ClipInfo, shift: tuple[float, float]) -> Why | None:
    """Why the camera's motion is kept when ``shift`` (px a frame) over the window would
    leave less than PAN_KEEPS of the view in every frame; else None."""
    from lexp.media import window_length

    length = window_length(info, config.window)
    if length is None:
        return None
    dx, dy = (abs(m) * (length - 1) for m in shift)
    if (1 - dx / info.width) * (1 - dy / info.height) >= PAN_KEEPS:
        return None
    return Why("the camera pans: its motion kept (--align steadies it)",
               f"{math.hypot(*shift):.1f} px/frame")


def _steadied(steadied: RenderConfig, config: RenderConfig, peeked: list, why: Why):
    """(config, probe, words): ``steadied`` with the probe frames aligned, or ``config``
    as it was when they cannot be (too little texture), said so."""
    from lexp.errors import InputError
    from lexp.renderers.align import Aligner

    aligner = Aligner(steadied.align, steadied.align_border)
    try:
        probe = [(i, warped) for i, f in peeked
                 if (warped := aligner.warp(i, f)) is not None]
    except InputError:
        probe = []
    if len(probe) < 2:
        return config, peeked, Why("the camera moves, but its frames have too little "
                                   "detail to steady", why.figures)
    return steadied, probe, why


# A later motion whose sampled shifts agree this much in direction is a pan, not a hand.
PAN_AGREES = 0.8


def steady_a_shake(config: RenderConfig, info: ClipInfo, peeked: list, shake):
    """(config, probe frames, words) for a camera found moving later in the window
    (``shake``: its mean shift, px a frame, and how much its samples' directions agree:
    :class:`lexp.renderers.auto.LaterPairs`): steadied as a drift is, unless it moves one
    way far enough to pan the view away."""
    from dataclasses import replace

    (shift, agree), speed = shake, math.hypot(*shake[0])
    if agree >= PAN_AGREES and (pan := _pans(config, info, shift)) is not None:
        return config, peeked, pan
    return _steadied(replace(config, align="similarity"), config, peeked,
                     Why("the camera shakes: steadied (--no-align keeps its motion)",
                         f"{speed:.1f} px/frame, later in the window"))


def drift_of(clip: Clip, config: RenderConfig, source) -> float | None:
    """The camera's motion in px per frame when it drifts, else None, from the window's
    first two frames read from a second opening of the clip (the render then streams
    the clip as it would have: its own buffers, its decoder's channel order); None where
    it cannot be read twice. For a method named outright, which auto's steadying does
    not apply to, but whose user should hear of a smear."""
    import itertools

    from lexp.media.sources import open_again
    from lexp.renderers import flow as flow_render

    again = open_again(clip, source, config.fps, config.raw)
    if again is None:
        return None
    with again as second:
        frames = window_frames(second, flow_render.window_for(config, clip.info.fps))
        peeked = list(itertools.islice(frames, 2))
        frames.close()
    motion = camera_motion(peeked)
    return None if motion is None else math.hypot(*motion)
