"""Light trails without gaps: the lighten (max) blend over the instants between frames.

A plain lighten stack takes each pixel's brightest frame, so a headlight moving 20 px
a frame draws a string of beads 20 px apart. Here every interval between two frames is
sampled at instants a pixel apart along the optical flow (the flow render's instants,
``lexp.renderers.interpolate``: Super SloMo's intermediate flows, each warp trusted
where the two agree), and the maximum is taken over them as well as over the frames: one
unbroken line, as StarStaX's gap filling draws it. Where the flow cannot explain the
change (a light switching on), an instant leans to the plain blend of the two frames,
whose maximum is the frames' own: never brighter than the plain lighten stack there.

Cost: tile by tile where things move (lexp.renderers.tiles), each tile as its own motion
needs. Where a tile's motion runs one way (a road's lanes, both directions), an instant
every ``GAP_STEP_PX`` px of its fastest trail, and the light they bring swept along that
axis by a dilation as long as their spacing (for a straight path the maximum is the
swept glow); elsewhere (crossing or turning motion) an instant a pixel apart. Each
instant is two warps and a trust blur, up to ``MAX_INSTANTS`` an interval.
"""

from __future__ import annotations

import math
import time

import numpy as np

from lexp import colour
from lexp.errors import InputError
from lexp.media import window_frames
from lexp.renderers.prepare import FrameStream, FramesUsed
from lexp.renderers.result import RenderResult

MAX_INSTANTS = 256  # per interval: 256 px of trail between two frames, a pixel apart


def max_along_flow(clip, config, estimator, *, cache=None, source=None, frames=None,
                   on_progress=None, video=None) -> RenderResult:
    """The lighten blend of the clip's window over its frames and the instants between
    them (see the module docstring): a RenderResult, linear float32 H×W×3. ``cache``,
    ``source``: the flow cache and the clip's ClipSource (flows are shared with the flow
    render); ``frames``: (index, RGB frame) pairs to use instead of reading the window;
    ``video``: a trail_video.TrailSpec, whose frame k adds the brightest of frame k and
    the instants before it (a comet's light ages a frame period at a time)."""
    from lexp.renderers.trail_video import recording

    with recording(video, config, "max", clip.info.fps) as recorder:
        result = _max_along_flow(clip, config, estimator, cache, source, frames,
                                 on_progress, recorder)
        if recorder is not None:
            recorder.commit(result.details.align.crop if result.details.align else None)
    return result


def _max_along_flow(clip, config, estimator, cache, source, frames, on_progress,
                    recorder) -> RenderResult:
    from lexp import flow as flows
    from lexp.renderers import resolution
    from lexp.renderers.flow import flow_clip_id

    started = time.perf_counter()
    info = clip.info
    first, _ = config.window.frame_range(info.fps)
    lut = colour.decode_lut(config.transfer, info.bit_depth)
    if frames is None:
        frames = window_frames(clip, config.window)
    stream = FrameStream(clip, config, frames, lut)
    clip_id = flow_clip_id(cache, source, config, first)
    best, previous, size = None, None, None
    used, instants = FramesUsed(), 0
    for frame in stream:
        linear = colour.linearise(frame.rgb, lut)
        if frame.gain != 1.0:
            linear *= np.float32(frame.gain)
        h, w = linear.shape[:2]
        if best is None:
            scale = resolution.flow_scale(h, w)
            size = resolution.work_size(h, w, scale) if scale > 1 else (w, h)
            best = linear.copy()
        else:
            np.maximum(best, linear, out=best)
        # The video adds what this frame period brought: the frame and the instants
        # before it (filled into a copy, then into the whole exposure).
        brought = linear.copy() if recorder is not None and previous is not None else best
        small = frame.rgb if (w, h) == size else resolution.downscale(frame.rgb, size)
        if previous is not None:
            before, a, a_small = previous
            gap = frame.time - before.time
            forward = resolution.flow_at(flows.cached_pair(
                estimator, cache, clip_id, before.index, frame.index, a_small, small), (w, h))
            n = _instants(forward, gap)
            if n > 1:
                backward = resolution.flow_at(flows.cached_pair(
                    estimator, cache, clip_id, frame.index, before.index, small, a_small),
                    (w, h))
                instants += _fill_gaps(brought, a, linear, forward, backward, gap, n)
        if brought is not best:
            np.maximum(best, brought, out=best)
        if recorder is not None:
            recorder.add(brought, 1.0, stream.level())
        previous = (frame, linear, small)
        used.add(frame.index, on_progress)
    if best is None:
        raise InputError(f"no frames to render in {info.name}",
                         hint="check the clip and the --start/--end window")
    linear = stream.finish(best)
    stream.notes.details.trails = instants
    return RenderResult(linear, info, used.count, used.first, used.last,
                        time.perf_counter() - started, clip.warnings() + stream.notes.warnings,
                        details=stream.notes.details)


def _instants(flow: np.ndarray, gap: float) -> int:
    """Instants for (part of) an interval: a pixel apart, up to MAX_INSTANTS."""
    from lexp.renderers import interpolate

    return min(interpolate.exact_samples_for(flow, gap), MAX_INSTANTS)


def _fill_gaps(best: np.ndarray, a: np.ndarray, b: np.ndarray, forward: np.ndarray,
               backward: np.ndarray, gap: float, n: int) -> int:
    """Raise ``best`` (float32 H×W×3, in place) to the brightest of the instants between
    linear frames ``a`` and ``b`` (flows a→b, b→a at full size; ``n`` instants for the
    whole frame: :func:`_instants`), tile by tile where
    things move as lexp.renderers.tiles plans it (each tile a pixel apart along its own
    motion; a still sky costs nothing); returns the instants of the fastest tile."""
    from lexp.renderers import tiles

    h, w = a.shape[:2]
    budget = tiles.WORTH_IT * (n - 1) * h * w
    plan, work = tiles.plan(forward, backward, None, gap, _instants, budget)
    if work >= budget:  # motion everywhere: the whole frame at once
        plan = [((0, h, 0, w), n, (0, h, 0, w))]
    for (y0, y1, x0, x1), n, (cy0, cy1, cx0, cx1) in plan:
        if n == 1:
            continue  # under a pixel: the frames' own maximum is the trail's
        crop = (slice(cy0, cy1), slice(cx0, cx1))
        brightest = _brightest_instant(
            np.ascontiguousarray(a[crop]), np.ascontiguousarray(b[crop]),
            np.ascontiguousarray(forward[:, crop[0], crop[1]]),
            np.ascontiguousarray(backward[:, crop[0], crop[1]]), n)
        inner = brightest[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]
        np.maximum(best[y0:y1, x0:x1], inner, out=best[y0:y1, x0:x1])
    return max(n for _, n, _ in plan) - 1


def _brightest_instant(a: np.ndarray, b: np.ndarray, forward: np.ndarray,
                       backward: np.ndarray, n: int) -> np.ndarray:
    """The per-pixel maximum over the interval between ``a`` and ``b`` (``n``: the
    instants a pixel apart its fastest motion needs): instants each the plain blend plus
    its trusted warped departure, as the flow render's. Where the motion runs one way
    (:func:`_motion_axis`), only every GAP_STEP_PX-th of them is made, and the light
    they bring is drawn on along that axis by a dilation as long as their spacing: a
    straight path's maximum is the swept glow, a few times cheaper."""
    axis = _motion_axis(forward) if n > GAP_STEP_PX else None
    count = n if axis is None else max(2, math.ceil(n / GAP_STEP_PX))
    brightest = _brightest_of(a, b, forward, backward, count)
    if axis is None:
        return brightest
    import cv2

    # The light the instants brought (brighter than both frames there by BROUGHT, in
    # linear light: a still lamp brings nothing, nor does the warps' noise on a still
    # texture), swept along the axis over the instants' spacing.
    brought = (brightest - np.maximum(a, b)).max(axis=2) > BROUGHT
    moving_light = np.where(brought[..., None], brightest, np.float32(0))
    reach = math.ceil(n / count / 2)
    swept = cv2.dilate(moving_light, _line_kernel(axis, reach),
                       borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return np.maximum(brightest, swept, out=brightest)


# Gap filling makes an instant every GAP_STEP_PX px of the fastest trail where the motion
# runs one way (its orientation's coherence at least AXIS_COHERENCE), and a pixel apart
# elsewhere (crossing motions, a turn).
GAP_STEP_PX = 4
AXIS_COHERENCE = 0.9
BROUGHT = 0.01  # linear light: sRGB code 25 of 255


def _motion_axis(forward: np.ndarray) -> float | None:
    """The orientation (radians, mod π) along which the moving pixels (over 1 px) of a
    2×H×W flow run, when they run one way or its opposite (two lanes), else None: the
    doubled-angle mean of their directions, weighted by speed²."""
    u, v = forward[0], forward[1]
    moving = u * u + v * v > 1.0
    if not moving.any():
        return None
    u, v = u[moving].astype(np.float64), v[moving].astype(np.float64)
    c, s = float(np.sum(u * u - v * v)), float(np.sum(2 * u * v))
    if math.hypot(c, s) < AXIS_COHERENCE * float(np.sum(u * u + v * v)):
        return None
    return 0.5 * math.atan2(s, c)


def _line_kernel(angle: float, reach: int) -> np.ndarray:
    """A line ``reach`` px each side of the centre at ``angle`` (radians), as a uint8
    (2·reach+1)² structuring element."""
    kernel = np.zeros((2 * reach + 1, 2 * reach + 1), np.uint8)
    for t in np.linspace(-reach, reach, 4 * reach + 1):
        kernel[round(reach + t * math.sin(angle)), round(reach + t * math.cos(angle))] = 1
    return kernel


def _brightest_of(a: np.ndarray, b: np.ndarray, forward: np.ndarray, backward: np.ndarray,
                  n: int) -> np.ndarray:
    """The per-pixel maximum of instants k/n (k = 1 … n−1) between ``a`` and ``b``."""
    from lexp.renderers import interpolate
    from lexp.renderers.warp import _grid, _local_error

    h, w = a.shape[:2]
    basis = np.stack([np.stack(_grid(h, w)), forward, backward]).reshape(3, -1)
    plain_error = _local_error(a, b)
    brightest = None
    for k in range(1, n):
        s = k / n
        weights = np.float32(interpolate.instant_weights(s, False))
        coords = (weights @ basis).reshape(2, 2, h, w)
        instant = interpolate.departure(a, b, a, b, coords, plain_error, s)
        instant += a * np.float32(1 - s)
        instant += b * np.float32(s)
        brightest = instant if brightest is None else np.maximum(brightest, instant,
                                                                 out=brightest)
    return brightest
