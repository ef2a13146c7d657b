"""Instants only where things move: an interval's frame in tiles, each sampled as finely as
its own motion needs.

An interval's in-between instants (:mod:`lexp.renderers.interpolate`) are set by its
fastest pixels: one per ``SAMPLE_STEP_PX`` of their trail. A night street whose car
lights move 6 px a frame under a still sky paid 6 instants a frame for every pixel of
the sky. Here the frame is cut into ``TILE_PX`` tiles; each takes the instants its own
fast pixels need (``samples_for`` on its flow), a still tile none (its plain blend, as a
still frame has always had), and a moving one is integrated on a crop around it wide
enough that its pixels see exactly what they see in the whole frame:

- every lookup an instant makes from a pixel lies within ``reach`` of it (the flows and
  the path bends, each times the most its weight can be over s ∈ [0, 1]);
- the trust of a pixel reads the warped images within the error blur's radius
  (warp.ERROR_BLUR_RADIUS, OpenCV's 25-tap kernel at σ = 3), whose own lookups reach on.

So a tile's crop is the tile plus the blur's radius, plus the largest reach within
that radius, plus 2 px (bilinear's neighbour, rounding). A tile's pixels then get the
same sum as the whole frame would give them with the same count of instants. When the
crops would cost more than ``WORTH_IT`` of the whole frame (fast motion everywhere:
large margins), the whole frame is integrated at once, as before.

Measured (old and new code alternating, 2 runs each): the demo clip's render 24.0 →
19.2 s with its flows estimated, the river clip's first 60 frames 44.5 → 35.6 s with them
cached, fireworks 29.1 → 30.3 s (the one that loses: motion everywhere, tiles rarely
used, and the planning costs); 1080p street traffic 15–16× the mean's time → 10×.
"""

from __future__ import annotations

import math

import numpy as np

from lexp.renderers.warp import ERROR_BLUR_RADIUS

TILE_PX = 64  # working pixels: the side of a tile
WORTH_IT = 0.8  # tiles are used when their work is under this share of the whole frame's:
# a crop's pixels cost more than the whole frame's (copies, calls, cache). Measured on
# the first 60 frames of fireworks (sparks fill the frame) and river, flows cached:
# at 1.0 fireworks +8 %; 0.9: +6 % and river −19 %; 0.8: +4 %, −20 %; 0.7: 0 %, −4 %.
_BEND_WEIGHT = 4 / 27  # the largest Hermite tangent weight, s(1 − s)² at s = 1/3


def reach(forward: np.ndarray, backward: np.ndarray, bends=None, boxed: bool = False
          ) -> np.ndarray:
    """H×W float32: how far (pixels, per axis) any instant's lookups can be from each
    pixel. Super SloMo's weights are at most 1/4 on one flow and 1 on the other
    (interpolate.instant_weights), a bend's at most 4/27; ``boxed``: plus a segment's
    box (lexp.renderers.segments), which reaches on half its motion, at most half the
    interval's, and its bicubic taps 2 px more."""
    fa, ga = np.abs(forward).max(axis=0), np.abs(backward).max(axis=0)
    far = np.maximum(fa * np.float32(0.25) + ga, fa + ga * np.float32(0.25))
    if boxed:
        far += np.maximum(fa, ga) * np.float32(0.5) + np.float32(2)
    for bend in bends or ():
        far += np.abs(bend).max(axis=0) * np.float32(_BEND_WEIGHT)
    return far


def _tiles(height: int, width: int):
    for y0 in range(0, height, TILE_PX):
        for x0 in range(0, width, TILE_PX):
            yield y0, min(height, y0 + TILE_PX), x0, min(width, x0 + TILE_PX)


def plan(forward: np.ndarray, backward: np.ndarray, bends, gap: float, samples_for,
         budget: float = math.inf, box_above: int | None = None
         ) -> tuple[list[tuple[tuple[int, int, int, int], int, tuple[int, int, int, int]]],
                    float]:
    """([(tile (y0, y1, x0, x1), its instants n, its crop (y0, y1, x0, x1))], the work:
    Σ (n − 1) × crop pixels) for an interval with these (2, H, W) flows over ``gap``
    periods; ``samples_for(flow, gap)`` counts a tile's instants. When the tiles alone
    (no margins) already cost ``budget``, ([], inf) without working out the crops.
    ``box_above``: tiles of more instants are integrated in boxed segments (their crops
    reach further); None: none is."""
    h, w = forward.shape[1:]
    counts = [(tile, samples_for(forward[:, tile[0]:tile[1], tile[2]:tile[3]], gap))
              for tile in _tiles(h, w)]
    if sum((n - 1) * (y1 - y0) * (x1 - x0) for (y0, y1, x0, x1), n in counts) >= budget:
        return [], math.inf
    boxed = box_above is not None and any(n > box_above for _, n in counts)
    far = {False: reach(forward, backward, bends),
           True: reach(forward, backward, bends, boxed=True) if boxed else None}
    radius = ERROR_BLUR_RADIUS
    out, work = [], 0
    for (y0, y1, x0, x1), n in counts:
        crop = (y0, y1, x0, x1)
        if n > 1:
            reach_map = far[box_above is not None and n > box_above]
            ring = reach_map[max(0, y0 - radius):y1 + radius, max(0, x0 - radius):x1 + radius]
            margin = radius + math.ceil(float(ring.max())) + 2
            crop = (max(0, y0 - margin), min(h, y1 + margin),
                    max(0, x0 - margin), min(w, x1 + margin))
            work += (n - 1) * (crop[1] - crop[0]) * (crop[3] - crop[2])
        out.append(((y0, y1, x0, x1), n, crop))
    return out, work


def tiled_integral(a: np.ndarray, b: np.ndarray, forward: np.ndarray, backward: np.ndarray,
                   bends, gap: float, tiles, integrate) -> np.ndarray:
    """The interval's trapezoid sum (interpolate.interval_sum's, float32 H×W×3), tile by
    tile as ``tiles`` (``plan``'s) says; ``integrate`` is integrate_interval or its
    equal on another device."""
    out = np.empty_like(a)
    for (y0, y1, x0, x1), n, (cy0, cy1, cx0, cx1) in tiles:
        weight = np.float32(gap / n)
        ends = (b[y0:y1, x0:x1] - a[y0:y1, x0:x1]) * np.float32(0.5)
        if n == 1:
            out[y0:y1, x0:x1] = (a[y0:y1, x0:x1] + ends) * weight
            continue
        box = (slice(cy0, cy1), slice(cx0, cx1))
        fields = (np.ascontiguousarray(f[:, box[0], box[1]]) for f in (forward, backward))
        crop_bends = None if bends is None else tuple(
            np.ascontiguousarray(x[:, box[0], box[1]]) for x in bends)
        summed = integrate(np.ascontiguousarray(a[box]), np.ascontiguousarray(b[box]),
                           *fields, n, crop_bends)
        inner = summed[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]
        out[y0:y1, x0:x1] = (inner + ends) * weight
    return out
