"""An interval's long trail in a few segments, each pre-filtered along its own motion:
the flow render's integration at full size, whose cost grows as the root of the trail.

The exact integral of an interval (:func:`lexp.renderers.interpolate.integrate_interval`)
samples an instant every pixel of trail: a car crossing 60 px between two frames costs
60 warps of the whole frame. But over a short stretch of time a pixel's content moves
along a nearly straight line, and the light it leaves there is the image averaged
along that line — a box filter *along the motion*, with nothing taken away across it.
So a trail longer than ``SHORT_TRAIL`` pixels is cut into m segments of time
(``segments_for``: each √n pixels long for an n-pixel trail, at least 5), and each is
one instant at its middle, s = (k + ½)/m, looked up not in A and B but in A and B
box-filtered along their own motion by one segment's length:

    A_box(y) = mean of A over the segment [y − F(y)/2m, y + F(y)/2m]
    B_box(y) = mean of B over the segment [y − G(y)/2m, y + G(y)/2m]

(F: the flow A→B, G: B→A, in pixels over the interval). For locally straight, even
motion the midpoint instant of A_box is the mean of the dense instants it replaces; the
edge of a cloud or a car moving sideways keeps its full-size sharpness, as it does in a
real long exposure. The boxes are made once per interval, the instants are few, and
the rest is the exact integral's: Super SloMo's flows, the path bends, and the trust
that leans towards the plain blend where the two warps disagree (judged here on the
boxed warps, against the plain frames). The midpoint rule needs no end instants, and
the plain blends' share of the instants sums to (A + B)/2 whatever m is, so a still
pixel is still exactly the mean of its frames.

A box up to ``DIRECT_TAPS`` pixels is that many bilinear lookups of the image, evenly
spaced along the pixel's own motion vector; a longer one is such a base box doubled
(:func:`motion_box`), each doubling two bicubic lookups, so a box of any length costs
at most DIRECT_TAPS + 2·log2(L/DIRECT_TAPS) lookups. Each box and its instant's lookup
interpolate twice where the exact integral interpolates once, which blurs a little
across the motion: boxes of 2–3 px lost up to 0.6 dB to the exact render on crisp
synthetic edges, while from 5 px on the segments matched or beat it (median +0.02 dB,
worst −0.11 over scripts/quality_guard.py's synthetic cases). Trails up to SHORT_TRAIL
px are integrated exactly: few instants anyway, and there the second interpolation
would cost most.
"""

from __future__ import annotations

import math

import numpy as np

from lexp.renderers.warp import _grid, _local_error, _sample

SHORT_TRAIL = 16  # instants (pixels of trail) up to which the exact integral is kept
MIN_SEGMENT_PX = 5.0  # pixels of trail a segment of a long trail spans at least
MAX_SEGMENTS = 16  # segments an interval is cut into at most (longer boxes beyond that)


def segments_for(n: int) -> int:
    """m: segments for an interval whose exact integral takes ``n`` > SHORT_TRAIL
    instants (one per pixel of its fastest pixels' trail, interpolate.samples_for): each
    spans √n pixels, at least MIN_SEGMENT_PX — m grows as √n, up to MAX_SEGMENTS.
    (Boxes of 2–3 px lost up to 0.6 dB to the exact render on crisp synthetic edges
    moving 10 px, their interpolation blurring about as much as they smooth; 5 px and up
    did not: scripts/quality_guard.py.)"""
    length = max(MIN_SEGMENT_PX, math.sqrt(n))
    return max(1, min(MAX_SEGMENTS, math.ceil(n / length)))


DIRECT_TAPS = 8  # a box is at most this many lookups of the image itself; longer, doubled


def box_plan(vectors: np.ndarray) -> tuple[int, int]:
    """(taps, doublings) for boxes along (2, H, W) ``vectors`` (pixels): the longest box
    2^doublings times a base of ``taps`` lookups at most a pixel apart, the base at most
    DIRECT_TAPS long ((1, 0): no box, the vectors are under a pixel)."""
    longest = float(np.sqrt((vectors ** 2).sum(axis=0)).max()) if vectors.size else 0.0
    if longest <= 1.0:
        return 1, 0
    doublings = max(0, math.ceil(math.log2(longest / DIRECT_TAPS)))
    return math.ceil(longest / 2 ** doublings), doublings


def motion_box(image: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """``image`` (float32 H×W×C) averaged at each pixel y along the segment
    [y − v/2, y + v/2], v = ``vectors``[:, y] (2, H, W, pixels): a box filter along
    each pixel's own motion, nothing across it. Up to DIRECT_TAPS pixels long it is the
    mean of that many bilinear lookups of the image, spaced evenly along v (one
    interpolation, as the exact integral makes); longer, that base box along v/2^J is
    doubled J times — level j the mean of level j − 1 at y ± 2^(j−2)·v/2^J, bicubic
    (bilinear, compounded, blurred across the motion too) — so a box of any length costs
    at most DIRECT_TAPS + 2·J lookups. Exact for a constant field, and close for the
    smooth fields optical flow gives."""
    taps, doublings = box_plan(vectors)
    if taps == 1 and doublings == 0:
        return image
    h, w = image.shape[:2]
    xs, ys = _grid(h, w)
    base = vectors / np.float32(2 ** doublings)  # the base box's vector
    step = base / np.float32(taps)
    out = np.zeros_like(image)
    for i in range(taps):
        offset = np.float32(i + 0.5 - taps / 2)
        out += _sample(image, xs + offset * step[0], ys + offset * step[1])
    out *= np.float32(1 / taps)
    for j in range(1, doublings + 1):
        dx, dy = base * np.float32(2.0 ** (j - 2))
        out = _sample_cubic(out, xs - dx, ys - dy) + _sample_cubic(out, xs + dx, ys + dy)
        out *= np.float32(0.5)
    return out


def _sample_cubic(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """warp._sample, bicubic: sharp across the motion however often it is repeated."""
    import cv2

    return cv2.remap(image, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def integrate_segments(a: np.ndarray, b: np.ndarray, forward: np.ndarray,
                       backward: np.ndarray, n: int, bends=None) -> np.ndarray:
    """integrate_interval's equal at less cost (module docstring): ``a``/``b`` linear
    float32 H×W×3 frames, ``forward``/``backward`` (2, H, W) flows a→b and b→a,
    ``n`` the exact integral's instant count, ``bends`` path_bends' terms or None.
    Returns what integrate_interval returns for the same interval — the left-endpoint
    sum of n instants, i.e. n·(the interval's mean) − (b − a)/2 — so interval_sum and
    tiles take either."""
    from lexp.renderers import interpolate

    if n <= SHORT_TRAIL:  # the exact integral: few instants anyway
        return interpolate.integrate_interval(a, b, forward, backward, n, bends)
    h, w = a.shape[:2]
    fields = [_grid(h, w), forward, backward, *(bends or ())]
    plain_error = _local_error(a, b)
    bent = bends is not None
    m = segments_for(n)
    a_box = motion_box(a, forward / np.float32(m))
    b_box = motion_box(b, backward / np.float32(m))
    # The mean over the interval: the plain blends' share is (a + b)/2 for any m (the
    # midpoints' s average ½); each segment adds, where its warps agree, their departure.
    departure = np.zeros_like(a)
    for k in range(m):
        s = (k + 0.5) / m
        departure += interpolate.departure(a, b, a_box, b_box,
                                           interpolate.lookups(fields, s, bent), plain_error, s)
    # n·mean − (b − a)/2, with mean = (a + b)/2 + departure/m
    total = departure * np.float32(n / m)
    total += a * np.float32(n / 2 + 0.5)
    total += b * np.float32(n / 2 - 0.5)
    return total
