"""Flow-guided long exposure: continuous trails from a few frames, and exposures longer
than the clip.

Stacking N frames shows N copies of a moving thing; a real shutter sees every position in
between. This renderer synthesises those in-between instants along the optical flow and
averages them in linear light, as the sensor would.

Time
----
Time is counted in the clip's own frames (frame i is at i/fps), whatever ``--stride``
selects. Each frame stands for the period centred on it, [i − ½, i + ½): the exposure is
[first − ½, last + ½) and weighs one unit per frame period, so the render of a dense,
still clip is exactly the mean of its frames. Two consecutive input frames A (index i)
and B (index j = i + g) span g periods; the interval is sampled at the n + 1 instants
s = k/n (k = 0 … n; s = 0 is A itself, s = 1 is B) and summed by the trapezoid rule:
each inner instant weighs 1/m period (n = g·m) and A and B half that, their other halves
belonging to the neighbouring intervals; the first and the last frame add the half
periods before and after them. m is chosen per pair so that no trail advances more than
``SAMPLE_STEP_PX`` between samples (adaptive: a near-static pair costs one sample per
period, i.e. it is plain stacking). The rule is symmetric in time on purpose: a
left-endpoint sum (each instant standing for the time after it) shifts the whole
exposure later by (1 − 1/m)/2 of a period, and a sunrise brightens and the clouds move
on in that shift — it cost 1.9 dB on the clouds timelapse's gap-fill.

In-between frames (both directions, occlusion-safe)
---------------------------------------------------
With the forward flow F (A→B) and the backward flow G (B→A), the flows from time s back to
A and on to B are approximated as in Super SloMo (Jiang et al., CVPR 2018)::

    F_s→A = −(1−s)·s·F + s²·G          F_s→B = (1−s)²·F − s·(1−s)·G

A and B are sampled along them (backward warping: every output pixel gets a value, no
holes) and blended by time, (1−s)·A' + s·B', so each end of the interval is exact.

Paths are curved where the neighbouring intervals say so. A straight line from A to B
cuts the corners of a shaking camera's wander, a thrown ball's arc or a star's circle
round the pole, and the curve is seen in the flows either side: the path from A is a
cubic (Hermite) through A and B whose tangents are the Catmull-Rom ones, the motion
from the frame before A to B at A and from A to the frame after B at B (scaled for
uneven gaps). Its bend away from the chord is added to the flows above, for A's pixels
and, in reverse time, for B's. Without a neighbour (the window's ends) that tangent is
the chord, and a path whose neighbours continue it is exactly the straight line.
(Gap-fill: +1.9 dB on the handheld clip, +0.1 on crowd, river and pine, median
43.15 → 43.23 dB.)

Where the flow is wrong (occlusions, things appearing, fireworks) A' and B' disagree. Each
pixel then leans towards the plain time blend (1−s)·A + s·B, which can ghost but never
smears: the weight of the warped blend is e_plain / (e_warp + e_plain), where e_warp is the
local (Gaussian-blurred) squared difference of A' and B', and e_plain that of A and B.
The warp wins where it explains the change between the frames better than no motion does.
(Measured on the gap-fill protocol: this keeps every clip at or above its linear-mean
score, where forward-backward consistency masks lost 0.6–3.8 dB on fireworks.)

Beyond the clip (extrapolation)
-------------------------------
An exposure longer than the clip continues after the last frame, assuming that what moved
steadily keeps moving at the same speed and direction, that a steady change of brightness
(a sunrise, auto-exposure drifting) keeps its pace, and that everything else keeps
looking, on average, like the last frames did. From the last K ≤ 5 frames:

- the velocity v (pixels per frame period) is the mean of their flows;
- the moving estimate: a pixel that is sure of its steady motion (trust, below, at least
  ``CARRY_TRUST``) carries that share of its light forward, splatted at x + τ·v at
  enough instants τ per period that its trail advances at most ``SAMPLE_STEP_PX``
  between them (at most ``MAX_CARRY_STEPS``): a car's light runs on into the road
  ahead, which does not move and so could not fetch it. Movers piling onto one pixel
  share it. What the arriving movers leave uncovered shows what lies beneath: the
  pixel's still share; the rest of its moving share, looked up backwards at x − t·v
  (a line-integral blur along the motion, right inside a region that moves as a
  whole; content from outside the frame is unknown and takes the stationary estimate);
  and, where the pixel's own movers have left and nothing came in their place, that
  same backward look-up, which finds what lay behind them. Only confident movers are
  carried: carrying every moving share also moved water past its banks (−0.4 dB on the
  river clip), and the threshold was chosen on the training clips' mean score;
- the unsettled estimate is the mean of the K frames, Wiener-shrunk towards its local
  mean (a Lee filter). Water, sparkle and leaves change from frame to frame; their mean
  over K frames keeps sampling noise that a long exposure averages away. The noise
  variance is measured from the frames themselves: their temporal variance s² over the
  effective sample count, s²·(r/K − 1/T), where r = s² / (half the mean squared
  frame-to-frame difference) ≥ 1 grows when consecutive frames are alike (slow
  churning: K frames are worth fewer independent samples) and T is the exposure. Static
  texture has no temporal variance and keeps every detail;
- each pixel's trust in the moving estimate comes from a test on the frames: the velocity
  of the first flows predicts the last frame from the middle one (forward-warped: each
  pixel moves by its own velocity, so a small mover is judged by itself and not by the
  background ahead of it); the stationary model
  predicts it as the mean of the frames up to the middle. The weight of the moving
  estimate is (e_stationary / (e_moving + e_stationary))³, local errors as above: water
  and wind-blown leaves, whose texture moves but whose look stays put, fail the test
  and keep the unsettled estimate;
- brightness: a straight line fitted to the frames' mean linear level is carried on
  when its slope is significant (|t| ≥ 3 against the fit's residuals, at least 4
  frames) and plausible as a change of light (≤ 2 % of the level per frame; faster is
  things appearing, like fireworks). Each extrapolated period is scaled by the line's
  level then, relative to the level of the frame(s) its estimate comes from;
- camera shake: a handheld camera keeps wandering after the clip ends, and a real
  shutter sees the scene from all those places. The frame's global motion is the median
  of each flow; its spread s (per axis, over at least 3 flows; steady pans and drifts
  are in the velocity above, not in s) is how much the camera's step changes from one
  period to the next. Period t after the last frame is blurred by a Gaussian of
  s·t^0.75 pixels per axis: between a random walk (t^½) and a drift in a random
  direction (t¹), the exponent chosen on the training clips of SPLITS.md. A spread
  under ``WANDER_FLOOR`` is left alone: on a fixed camera the content (rapids, walkers,
  fireworks) moves the median by up to 0.25 px, and a blur there costs detail. With
  ``--align`` the frames are registered first, so the flows show no wander.

Fewer than three frames show no steady motion: their extrapolation is the unsettled
estimate. The exponents, the filter's scale and gain and the trend's thresholds were
chosen by measurement on the extrapolate protocol of ``lexp bench`` (DESIGN.md §3) over
../shared/clips, validation clips of SPLITS.md included (docs/results.md has the figures); the
exponent and the gain rank the same on the training clips alone.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import partial

import numpy as np

from lexp import colour
from lexp.errors import InputError

SAMPLE_STEP_PX = 1.0  # at most this far between samples along a trail (pixels)
MAX_SAMPLES_PER_PAIR = 96  # cost cap for a pair with huge motion
HISTORY = 5  # frames kept for extrapolation
ERROR_BLUR_SIGMA = 3.0  # pixels: the neighbourhood over which warps are judged
TRUST_EXPONENT = 3  # extrapolation: how sharply the steadiness test decides
UNSETTLED_SIGMA = 6.0  # pixels: the Wiener filter's neighbourhood
UNSETTLED_NOISE_GAIN = 4.0  # on the measured noise variance (frames are not independent)
TREND_MIN_T = 3.0  # |slope / standard error| for a brightness trend to be carried on
TREND_MAX_SLOPE = 0.02  # of the level per frame period: faster is content, not light
WANDER_FLOOR = 0.3  # px per period: a smaller spread of the global motion is not the camera's
WANDER_EXPONENT = 0.75  # the wander's spread grows as t ** this (½: random walk, 1: drift)
CARRY_TRUST = 0.5  # extrapolation: a pixel at least this sure of its steady motion carries
#                    its light forward (splatted) into the pixels ahead of it
MAX_CARRY_STEPS = 4  # extrapolation: at most this many splats per period for a trail
MAX_CARRY_SPLATS = 4_000_000  # extrapolation: splats per period at most (bounds memory)
MAX_EXTRAPOLATION = 100  # extrapolate at most this many times the periods the frames cover
MAX_EXTRAPOLATED_PERIODS = 20_000  # and never more periods than this (each costs a full pass)


@dataclass
class FlowStats:
    """What the flow renderer did, for messages and metadata."""

    estimator: str  # e.g. "dis-medium"
    pairs: int = 0  # intervals integrated
    samples: int = 0  # in-between instants synthesised
    extrapolated: float = 0.0  # frame periods added after the last frame
    steady: float = 0.0  # mean extrapolation weight (0 = stationary, 1 = all moving)
    cache_hits: int = 0
    cache_misses: int = 0

    def to_dict(self) -> dict:
        return {"flow": self.estimator, "pairs": self.pairs, "samples": self.samples,
                "extrapolated_frames": round(self.extrapolated, 3),
                "steady": round(self.steady, 3), "cache_hits": self.cache_hits,
                "cache_misses": self.cache_misses}


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel x and y coordinates, float32 H×W each (meshgrid of aranges: 30× faster than
    np.mgrid's int64 grid cast to float)."""
    return np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))


_CHANNEL_MEAN = np.full((1, 3), 1 / 3, np.float32)


def _local_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Gaussian-blurred mean squared difference of two H×W×3 images: H×W float32."""
    import cv2

    d = a - b
    d *= d
    # The channel mean by cv2.transform: 8× numpy's mean over a last axis of 3 (it is
    # run for every instant of every pair).
    return cv2.GaussianBlur(cv2.transform(d, _CHANNEL_MEAN), (0, 0), ERROR_BLUR_SIGMA)


def _sample(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """``image`` looked up at (``map_x``, ``map_y``) (H×W float32 pixel coordinates each),
    bilinear, edges repeated outwards."""
    import cv2

    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def samples_for(forward: np.ndarray, gap: int) -> int:
    """n: instants to sample in an interval of ``gap`` frame periods (not always whole:
    timestamps) with this flow."""
    sparse = forward[:, ::4, ::4]  # a 1-in-16 subsample is plenty for a percentile
    magnitude = np.sqrt(sparse[0] ** 2 + sparse[1] ** 2).ravel()
    per_period = float(np.partition(magnitude, int(0.995 * (magnitude.size - 1)))[
        int(0.995 * (magnitude.size - 1))]) / gap
    refine = max(1, math.ceil(per_period / SAMPLE_STEP_PX))
    refine = min(refine, max(1, int(MAX_SAMPLES_PER_PAIR // gap)))
    return max(1, round(gap * refine))


def _hermite_bend(s: float) -> tuple[float, float]:
    """The cubic Hermite basis weights of the start and end tangents at s ∈ [0, 1]."""
    return s * (1 - s) ** 2, s * s * (s - 1)


def path_bends(forward: np.ndarray, backward: np.ndarray, gap: float, before=None,
               after=None) -> tuple[np.ndarray, ...] | None:
    """How the paths through an interval bend away from the chord (module docstring).

    ``forward``/``backward``: (2, H, W) flows A→B and B→A in pixels over ``gap`` frame
    periods. ``before``: (flow A→frame before A on A's grid, its gap) or None;
    ``after``: (flow B→frame after B on B's grid, its gap) or None. Returns the four
    (2, H, W) float32 tangent-minus-chord terms (A's path at A, at B; B's path at B, at
    A), or None when there is no neighbour."""
    if before is None and after is None:
        return None
    zero = np.zeros_like(forward)
    a_start = a_end = b_start = b_end = zero
    if before is not None:
        back, g0 = before  # A → the frame before, on A's grid
        a_start = -(gap * back + g0 * forward) / (g0 + gap)
        beyond = _sample_flow(back, backward)  # where B's pixels were one interval earlier
        b_end = (gap * beyond - g0 * backward) / (gap + g0)
    if after is not None:
        on, g2 = after  # B → the frame after, on B's grid
        b_start = -(gap * on + g2 * backward) / (g2 + gap)
        beyond = _sample_flow(on, forward)
        a_end = (gap * beyond - g2 * forward) / (gap + g2)
    return tuple(np.asarray(x, np.float32) for x in (a_start, a_end, b_start, b_end))


def _sample_flow(flow: np.ndarray, at: np.ndarray) -> np.ndarray:
    """(2, H, W) ``flow`` looked up at each pixel displaced by ``at`` (2, H, W)."""
    xs, ys = _grid(*flow.shape[1:])
    return np.stack([_sample(channel, xs + at[0], ys + at[1]) for channel in flow])


def integrate_interval(a: np.ndarray, b: np.ndarray, forward: np.ndarray,
                       backward: np.ndarray, n: int, bends=None) -> np.ndarray:
    """Sum of the n instants s = k/n (k = 0 … n−1) between linear frames ``a`` (s = 0)
    and ``b`` (s = 1): float32 H×W×3. ``forward``/``backward``: (2, H, W) flows a→b, b→a.
    ``bends``: path_bends' four terms, or None for straight paths."""
    total = a.copy()
    if n == 1:
        return total
    h, w = a.shape[:2]
    # Where each instant looks A and B up is a weighted sum of these (2, H, W) fields —
    # the pixel grid, the two flows, the bends — one matrix product a instant.
    fields = [np.stack(_grid(h, w)), forward, backward, *(bends or ())]
    basis = np.stack(fields).reshape(len(fields), -1)
    plain_error = _local_error(a, b)
    # Each instant is its plain blend (1−s)·a + s·b plus, where the warps agree, the
    # warped blend's departure from it. The plain blends sum to (n−1)/2·(a + b) (the
    # s_k and the 1 − s_k each add up to (n−1)/2): added once, not per instant.
    total += np.float32((n - 1) / 2) * (a + b)
    for k in range(1, n):
        s = k / n
        to_a = [1, -(1 - s) * s, s * s]  # Super SloMo's flows from time s to A and to B
        to_b = [1, (1 - s) ** 2, -s * (1 - s)]
        if bends is not None:  # the content at x at time s lies off the chord
            start, end = _hermite_bend(s)
            to_a += [-start, -end, 0, 0]
            start, end = _hermite_bend(1 - s)  # B's path runs back in time
            to_b += [0, 0, -start, -end]
        (ax, ay), (bx, by) = (np.float32([to_a, to_b]) @ basis).reshape(2, 2, h, w)
        from_a, from_b = _sample(a, ax, ay), _sample(b, bx, by)
        trust = plain_error / (_local_error(from_a, from_b) + plain_error + 1e-8)
        # trust · (warped − plain) = trust · ((1−s)·(A' − a) + s·(B' − b)), in place
        from_a -= a
        from_a *= np.float32(1 - s)
        from_b -= b
        from_b *= np.float32(s)
        from_a += from_b
        from_a *= trust[..., None]
        total += from_a
    return total


def interval_sum(a: np.ndarray, b: np.ndarray, forward: np.ndarray, gap: float,
                 backward, bends=None) -> tuple[np.ndarray, int]:
    """(the ``gap`` frame periods from linear frame ``a`` to ``b``, summed by the
    trapezoid rule — ``a`` and ``b`` weigh half a sample each, see the module docstring:
    float32 H×W×3; the instants sampled between them). ``forward``: the flow a→b;
    ``backward()`` gives b→a, asked for only when the motion needs more than one sample
    per period; so is ``bends(backward)`` (path_bends' terms, or None: straight paths)."""
    n = samples_for(forward, gap)
    weight = np.float32(gap / n)
    ends = (b - a) * np.float32(0.5)  # turns the left-endpoint sum into the trapezoid
    if n == 1:  # under a pixel per frame: no in-between instants
        return (a + ends) * weight, n
    back = backward()
    curve = bends(back) if bends is not None else None
    return (integrate_interval(a, b, forward, back, n, curve) + ends) * weight, n


def unsettled_estimate(history: list[np.ndarray], exposure: float) -> np.ndarray:
    """The frames' mean (linear H×W×3 float32), Wiener-shrunk towards its local mean where
    the frames disagree (see the module docstring); ``exposure``: the whole exposure in
    frame periods, whose own averaging sets how much noise is left to remove."""
    import cv2

    count = len(history)
    mean = np.mean(history, axis=0, dtype=np.float32)
    if count < 2:
        return mean
    # Per-pixel sums over the frames, one frame at a time (no K×H×W×3 copies at 4K).
    spread = np.zeros(mean.shape[:2], np.float32)  # Σ (frame − mean)², channel mean
    steps = np.zeros(mean.shape[:2], np.float32)  # Σ (frame − previous)², channel mean
    for k, frame in enumerate(history):
        spread += ((frame - mean) ** 2).mean(axis=2)
        if k:
            steps += ((frame - history[k - 1]) ** 2).mean(axis=2)
    blur = lambda image: cv2.GaussianBlur(image, (0, 0), UNSETTLED_SIGMA)  # noqa: E731
    variance = blur(spread / (count - 1))
    successive = blur(steps / (count - 1) / 2)
    # r = 1 for frames that are independent draws, up to K when they are all alike.
    ratio = np.clip(variance / np.maximum(successive, 1e-12), 1, count)
    noise = UNSETTLED_NOISE_GAIN * variance * np.maximum(ratio / count - 1 / exposure, 0)
    local_mean = blur(mean)
    detail = mean - local_mean
    signal = blur((detail * detail).mean(axis=2))
    keep = np.clip(1 - noise / np.maximum(signal, 1e-12), 0, 1)[..., None]
    return (local_mean + keep * detail).astype(np.float32)


def brightness_trend(history: list[np.ndarray]):
    """A steady change of light over the frames: ``level(t)``, the fitted mean linear level
    at t frame periods after the first frame, or None when the frames show no significant,
    plausible trend (see the module docstring)."""
    count = len(history)
    if count < 4:
        return None
    levels = np.array([float(frame.mean()) for frame in history])
    times = np.arange(count, dtype=np.float64)
    centred = times - times.mean()
    slope = float((centred * (levels - levels.mean())).sum() / (centred ** 2).sum())
    intercept = float(levels.mean()) - slope * float(times.mean())
    residual = levels - (intercept + slope * times)
    error = math.sqrt(float((residual ** 2).sum()) / (count - 2) / float((centred ** 2).sum()))
    significant = abs(slope) >= TREND_MIN_T * error
    plausible = abs(slope) <= TREND_MAX_SLOPE * max(float(levels.mean()), 1e-6)
    if not (significant and plausible) or slope == 0:
        return None
    return lambda t: intercept + slope * t


def camera_wander(flows: list[np.ndarray]) -> tuple[float, float] | None:
    """The spread (x, y) in pixels per period of the frame's global motion from one
    period to the next, over ``flows`` ((2, H, W) per period, oldest first): the standard
    deviation of their medians, or None without 3 flows or when both are under
    ``WANDER_FLOOR`` (see the module docstring)."""
    if len(flows) < 3:
        return None
    steps = np.array([[float(np.median(flow[axis, ::2, ::2])) for axis in (0, 1)]
                      for flow in flows])
    spread = steps.std(axis=0, ddof=1)
    spread[spread < WANDER_FLOOR] = 0.0
    return (float(spread[0]), float(spread[1])) if spread.any() else None


def gaussian_blur(image: np.ndarray, sigma_x: float, sigma_y: float | None = None
                  ) -> np.ndarray:
    """``image`` (H×W×C float32) blurred by a Gaussian of standard deviations ``sigma_x``,
    ``sigma_y`` (default: ``sigma_x``) pixels. A wide blur (over 3 px) runs on a copy
    shrunk by sigma/2 on that axis, blurred by 2 px there and scaled back: its cost does
    not grow with sigma, and a blur that wide keeps no detail the shrinking could lose."""
    import cv2

    sigma_y = sigma_x if sigma_y is None else sigma_y
    h, w = image.shape[:2]
    shrink_x = sigma_x / 2 if sigma_x > 3 else 1.0
    shrink_y = sigma_y / 2 if sigma_y > 3 else 1.0
    if shrink_x == shrink_y == 1.0:
        return cv2.GaussianBlur(image, (0, 0), sigmaX=max(sigma_x, 1e-3),
                                sigmaY=max(sigma_y, 1e-3), borderType=cv2.BORDER_REFLECT)
    small = cv2.resize(image, (max(1, round(w / shrink_x)), max(1, round(h / shrink_y))),
                       interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=max(sigma_x / shrink_x, 1e-3),
                             sigmaY=max(sigma_y / shrink_y, 1e-3),
                             borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _splat(light: np.ndarray, mass: np.ndarray, xs: np.ndarray, ys: np.ndarray, h: int,
           w: int) -> tuple[np.ndarray, np.ndarray]:
    """Forward warping: ``light`` (N×3, already weighted by its mass) and ``mass`` (N) put
    at the real positions (``xs``, ``ys``), each spread over its 4 nearest pixels by
    bilinear weights; what lands outside the frame is dropped. Returns the light (H×W×3)
    and the mass (H×W) that landed on each pixel, float32."""
    x0, y0 = np.floor(xs), np.floor(ys)
    fx, fy = (xs - x0).astype(np.float32), (ys - y0).astype(np.float32)
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    # The four corners of every point in one index array (4N): a corner outside the
    # frame goes to a spare bin past the last pixel, which is dropped. One bincount per
    # channel over all corners costs ~2/3 of masking and counting corner by corner.
    spare = h * w
    where = np.empty((4, xs.size), np.int64)
    share = np.empty((4, xs.size), np.float32)
    for k, (dx, dy) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):
        x, y = x0 + dx, y0 + dy
        inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        where[k] = np.where(inside, y * w + x, spare)
        share[k] = (fx if dx else 1 - fx) * (fy if dy else 1 - fy)
    where, share = where.ravel(), share.ravel()

    def landed(values: np.ndarray) -> np.ndarray:
        return np.bincount(where, weights=np.tile(values, 4) * share,
                           minlength=spare + 1)[:spare]

    light_landed = np.empty((spare, 3), np.float32)  # written in place: no float64 stack
    for c in range(3):
        light_landed[:, c] = landed(light[:, c])
    return light_landed.reshape(h, w, 3), landed(mass).astype(np.float32).reshape(h, w)


def _forward_warp(image: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """``image`` (H×W×3 float32) with each pixel moved by (``dx``, ``dy``) (H×W px),
    splatted; where less than a whole pixel lands, the image itself fills the rest."""
    h, w = image.shape[:2]
    xs, ys = _grid(h, w)
    landed, mass = _splat(image.reshape(-1, 3), np.ones(h * w, np.float32),
                          (xs + dx).ravel(), (ys + dy).ravel(), h, w)
    mass = mass[..., None]
    return (landed + np.maximum(1 - mass, 0) * image) / np.maximum(mass, 1)


class _CarriedLight:
    """The light of the steady movers, carried forward along their velocity: what arrives
    at each pixel t periods after the last frame (see the module docstring)."""

    def __init__(self, last: np.ndarray, share: np.ndarray, velocity: np.ndarray) -> None:
        """``last``: linear H×W×3; ``share``: H×W, the part of each pixel that moves on
        (0 where nothing is carried); ``velocity``: (2, H, W) px per period."""
        self.h, self.w = share.shape
        ys, xs = np.nonzero(share)
        vx, vy = velocity[0][ys, xs], velocity[1][ys, xs]
        movers = share[ys, xs]
        # Each mover is splatted at enough instants per period that its trail advances at
        # most SAMPLE_STEP_PX between them (capped; fewer when there are very many
        # movers, to bound memory): a slow one costs one splat a period.
        steps = np.clip(np.ceil(np.hypot(vx, vy) / SAMPLE_STEP_PX), 1, MAX_CARRY_STEPS)
        if steps.sum() > MAX_CARRY_SPLATS:
            steps = np.maximum(1, np.floor(steps * (MAX_CARRY_SPLATS / steps.sum())))
        steps = steps.astype(np.int64)
        # One row per (mover, instant): the instant's offset from the period's centre.
        self.x = np.repeat(xs, steps).astype(np.float32)
        self.y = np.repeat(ys, steps).astype(np.float32)
        self.vx, self.vy = np.repeat(vx, steps), np.repeat(vy, steps)
        instant = np.arange(int(steps.sum())) - np.repeat(np.cumsum(steps) - steps, steps)
        self.offset = ((instant + 0.5) / np.repeat(steps, steps) - 0.5).astype(np.float32)
        each = movers / steps.astype(np.float32)  # a mover's share, split over its instants
        self.mass = np.repeat(each, steps)
        self.light = np.repeat(last[ys, xs] * each[:, None], steps, axis=0)
        # A row moves in a straight line, so once it has left the frame it never comes
        # back: from the period t it leaves at, its splats land nowhere. Rows are kept
        # latest-leaving first, and ``at`` splats only those still on screen (a long
        # exposure of fast traffic soon costs what the slow movers cost).
        leaves = np.minimum(self._leaves(self.x, self.vx, self.w),
                            self._leaves(self.y, self.vy, self.h)) - self.offset
        order = np.argsort(-leaves, kind="stable")
        for name in ("x", "y", "vx", "vy", "offset", "mass", "light"):
            setattr(self, name, getattr(self, name)[order])
        self._minus_leaves = -leaves[order]  # ascending, for searchsorted

    @staticmethod
    def _leaves(position: np.ndarray, speed: np.ndarray, size: int) -> np.ndarray:
        """The time (periods) at which a row starting at ``position`` and moving at
        ``speed`` px per period is past −1 or ``size`` along one axis: then none of its
        bilinear corners is inside. Infinite for a row that does not move that way."""
        with np.errstate(divide="ignore", invalid="ignore"):
            edge = np.where(speed > 0, size, -1.0)
            return np.where(speed != 0, (edge - position) / speed, np.inf)

    def __bool__(self) -> bool:
        return self.mass.size > 0

    def at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(light H×W×3, coverage H×W ≤ 1) arriving over the period centred t periods after
        the last frame: each mover splatted at its instants spread over that period."""
        # Rows still on screen at t (a margin of 0.05 periods covers float32 rounding of
        # the positions; keeping a row too many only costs its splat).
        n = int(np.searchsorted(self._minus_leaves, -(t - 0.05)))
        tau = np.float32(t) + self.offset[:n]
        light, mass = _splat(self.light[:n], self.mass[:n], self.x[:n] + tau * self.vx[:n],
                             self.y[:n] + tau * self.vy[:n], self.h, self.w)
        coverage = np.minimum(mass, 1)  # movers piling onto one pixel share it
        light *= (coverage / np.maximum(mass, 1e-6))[..., None]
        return light, coverage


def extrapolate(history: list[np.ndarray], flows: list[np.ndarray], periods: float,
                guide: str = "flow", on_period=None, on_progress=None
                ) -> tuple[np.ndarray, float]:
    """Sum over ``periods`` frame periods after the last of ``history`` (linear frames,
    oldest first; ``flows[k]`` is the flow from frame k to k+1 in pixels per period).
    ``guide``: --motion-guide, applied to the velocity (see :func:`guide_velocity`).
    ``on_period(part, weight)``: called with each period's share of the sum, in order;
    ``on_progress(done, total)``: with the count of periods done (a long exposure of a
    short clip spends most of its time here). Returns (sum float32 H×W×3, mean weight of
    the moving estimate)."""
    import cv2

    last = history[-1]
    count = len(history)
    stationary = np.mean(history, axis=0, dtype=np.float32)
    unsettled = unsettled_estimate(history, count + periods)
    whole = math.floor(periods)
    weights = [1.0] * whole + ([periods - whole] if periods > whole else [])
    trend = brightness_trend(history)

    def gain(t: float, reference: float) -> np.float32:
        """Brightness t periods after the last frame, relative to ``reference``."""
        if trend is None:
            return np.float32(1.0)
        return np.float32(min(max(trend(count - 1 + t) / max(reference, 1e-9), 0.5), 2.0))

    if count < 3 or not weights:  # (and no trend either: that takes 4 frames)
        if on_period is not None:
            for weight in weights:
                on_period(unsettled * np.float32(weight), weight)
        return unsettled * np.float32(periods), 0.0
    h, w = last.shape[:2]
    xs, ys = _grid(h, w)
    middle = (count - 1) // 2
    early = np.mean(flows[:middle], axis=0)
    ahead = count - 1 - middle
    # Forward: each pixel of the middle frame goes where its own early velocity takes it
    # (looked up backwards, a small mover's front half would be judged by the still
    # background it covers, and fail).
    predicted = _forward_warp(history[middle], ahead * early[0], ahead * early[1])
    moving_error = _local_error(predicted, last)
    still_error = _local_error(np.mean(history[:middle + 1], axis=0), last)
    trust = (still_error / (moving_error + still_error + 1e-8)) ** TRUST_EXPONENT

    velocity = guide_velocity(np.mean(flows, axis=0), guide)
    carried_share = np.where((trust >= CARRY_TRUST) &
                             (np.hypot(velocity[0], velocity[1]) > 0.1), trust, 0)
    carried = _CarriedLight(last, carried_share, velocity)
    left_share = trust - carried_share  # moves on, but is looked up backwards
    fixed_share = 1 - carried_share  # the still and the looked-up shares together
    wander = camera_wander(flows)
    ones = np.ones((h, w), np.float32)
    mean_level, last_level = float(stationary.mean()), float(last.mean())
    # What does not change from period to period, computed once (a 720p period costs a
    # few ms per full-frame pass; the formulas are those of the module docstring).
    still_part = (1 - trust)[..., None] * unsettled  # the still share's light, before the trend
    # Each period is  still_part·c_still + c_moving·moving + arriving  with per-pixel
    # coefficients (H×W). A blurred period (camera wander) or a recorded one (--video)
    # is needed whole; otherwise only the sum is, and each term is summed on its own:
    # the looked-up image is the one three-channel image made per period (a long
    # exposure of a short clip spends most of its time in this loop).
    whole_periods = wander is not None or on_period is not None
    total = np.zeros_like(last)
    still_sum = np.zeros((h, w), np.float32)  # Σ weight·c_still
    outside_sum = np.zeros((h, w), np.float32)  # Σ weight·c_moving·(1 − inside)
    for t, weight in enumerate(weights, start=1):
        map_x, map_y = xs - t * velocity[0], ys - t * velocity[1]
        looked = cv2.remap(last, map_x, map_y, cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        # Where the sample came from outside the frame (inside < 1) the content is
        # unknown: that share takes the stationary estimate. (Separate contiguous
        # images: strided channel views cost several times as much per pass.)
        outside = 1 - cv2.remap(ones, map_x, map_y, cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        still_gain, moving_gain = gain(t, mean_level), gain(t, last_level)
        arriving = None
        if not carried:  # (the formula below, with nothing arriving)
            c_still, c_moving = still_gain, left_share * moving_gain
        else:
            light, coverage = carried.at(t)
            # What the arriving movers do not cover: the still share, the moving share
            # looked up backwards, and, where this pixel's own movers have left and
            # nothing came in their place (a hole), what lies behind them.
            hole = np.maximum(carried_share - coverage, 0)
            uncovered = (1 - coverage) / np.maximum(fixed_share + hole, 1e-6)
            c_still = uncovered * still_gain
            c_moving = uncovered * (left_share + hole) * moving_gain
            arriving = light * moving_gain
        if whole_periods:
            part = still_part * (c_still[..., None] if np.ndim(c_still) else c_still)
            part += c_moving[..., None] * (looked + outside[..., None] * stationary)
            if arriving is not None:
                part += arriving
            if wander is not None:
                reach = (t - 1 + 0.5 * weight) ** WANDER_EXPONENT  # the period's middle
                part = gaussian_blur(part, wander[0] * reach, wander[1] * reach)
            if weight != 1.0:
                part *= np.float32(weight)
            total += part
            if on_period is not None:
                on_period(part, weight)
        else:
            c_moving *= np.float32(weight)
            still_sum += c_still * np.float32(weight)
            outside_sum += c_moving * outside
            np.multiply(looked, c_moving[..., None], out=looked)
            total += looked
            if arriving is not None:
                total += arriving if weight == 1.0 else arriving * np.float32(weight)
        if on_progress is not None:
            on_progress(t, len(weights))
    if not whole_periods:
        total += still_sum[..., None] * still_part + outside_sum[..., None] * stationary
    return total, float(trust.mean())


def guide_velocity(velocity: np.ndarray, guide: str) -> np.ndarray:
    """--motion-guide on a (2, H, W) velocity field: ``flow`` leaves it; ``4way``/``8way``
    snap each pixel's direction to the nearest of 4/8; an angle (degrees, 0 = right,
    90 = up) sends all motion that way. Speeds are kept: the flow knows how fast things
    move even where it cannot tell which way (water, noise)."""
    from lexp.config import guide_direction

    kind, value = guide_direction(guide)
    if kind == "flow":
        return velocity
    speed = np.sqrt(velocity[0] ** 2 + velocity[1] ** 2)
    if kind == "quantise":
        step = 2 * math.pi / value
        angle = np.round(np.arctan2(velocity[1], velocity[0]) / step) * step
        return np.stack([speed * np.cos(angle), speed * np.sin(angle)]).astype(np.float32)
    # Image rows grow downwards, so "up" (90°) is −y.
    return np.stack([speed * math.cos(value), -speed * math.sin(value)]).astype(np.float32)


def exposure_periods(config, fps: float | None) -> float | None:
    """``--exposure`` in frame periods (None when not given)."""
    spec = config.exposure
    if spec is None:
        return None
    if spec.unit == "f":
        return float(spec.value)
    if not fps:
        from lexp.errors import UsageError

        raise UsageError("--exposure is in seconds but this clip has no frame rate",
                         hint="give frames (e.g. 64f) or the rate with --fps")
    return spec.value * fps


class _Interval:
    """Two consecutive linear frames ``a`` and ``b`` (H×W×3), the flow a→b (2, H, W) and
    ``gap`` frame periods between them; the flow b→a is fetched on demand, once."""

    def __init__(self, a, b, forward, fetch_backward, gap: float, level: float) -> None:
        self.a, self.b, self.forward, self.gap, self.level = a, b, forward, gap, level
        self._fetch_backward = fetch_backward
        self._backward = None

    def backward(self) -> np.ndarray:
        if self._backward is None:
            self._backward = self._fetch_backward()
        return self._backward

    def backward_estimate(self) -> np.ndarray:
        """The flow b→a if it was needed, else −forward: an interval that was not worth
        an in-between instant moved under a pixel, so the two differ by less."""
        return self._backward if self._backward is not None else -self.forward


def render_flow(clip, config, estimator, *, cache=None, source=None, frames=None,
                on_progress=None, video=None, learner=None):
    """Stream the clip's window, integrating every interval along its flow; extrapolate
    when the exposure is longer than the clip. Returns a result.StackResult (linear
    float32 H×W×3) and FlowStats. ``cache``: a FlowCache, used when ``source`` (the
    clip's ClipSource) names files, whose content keys it. ``frames``: an iterator of
    (index, RGB frame) to use instead of reading the window (it may have been peeked at).
    ``video``: a trail_video.TrailSpec. Frames come through a prepare.FrameStream, so
    --align, --deflicker, timestamps and --keep-sharp apply as for stacking.
    ``learner`` (the learned generator, lexp.learned): ``learner.observe(linear, flow,
    time)`` sees every linear frame with the flow into it from the previous frame (per
    frame period; None for the first), and ``learner.refine(linear)`` turns the flow
    render (linear, before crop and keep-sharp) into its own."""
    from lexp import flow as flows
    from lexp import media
    from lexp.prepare import FrameStream
    from lexp.result import StackResult
    from lexp.trail_video import recording

    started = time.perf_counter()
    info = clip.info
    first, _ = config.window.frame_range(info.fps)
    exposure = exposure_periods(config, info.fps)
    # Hashing the clip (for the cache key) happens here, only once flow is sure to run.
    clip_id = cache.clip_id(source) if cache is not None and source and source.paths else None
    if clip_id is not None and config.align:  # aligned frames have flows of their own
        import hashlib

        clip_id = hashlib.sha256(f"{clip_id}|align={config.align}|reference={first}"
                                 .encode()).hexdigest()
    if exposure is not None:  # known before any work when the window's length is
        length = media.window_length(info, config.window)
        if length is not None:
            check_extrapolation(exposure, (length - 1) * config.window.stride + 1, length,
                                config)
    if frames is None:
        frames = media.window_frames(clip, window_for(config, info.fps))
    lut = colour.decode_lut(config.transfer).astype(np.float32)
    stream = FrameStream(clip, config, frames, lut)
    stats = FlowStats(estimator.label())
    hits0, misses0 = (cache.hits, cache.misses) if cache is not None else (0, 0)

    total = head = None
    history: list[np.ndarray] = []  # linear frames, newest last
    velocities: list[np.ndarray] = []  # flows between them, per frame period
    previous = None  # (Frame, linear)
    earlier = pending = None  # the last two intervals read; pending is not yet integrated
    used = first_used = last_used = 0

    def settle(before, interval, after) -> None:
        """Integrate ``interval`` (an _Interval) between its neighbours (or None)."""
        nonlocal total, head

        def bends(backward):
            return path_bends(interval.forward, backward, interval.gap,
                              None if before is None else (before.backward_estimate(),
                                                           before.gap),
                              None if after is None else (after.forward, after.gap))

        part, n = interval_sum(interval.a, interval.b, interval.forward, interval.gap,
                               interval.backward, bends)
        total += part
        if recorder is not None:
            if head is None:
                recorder.add(part, interval.gap, interval.level)
            else:  # the video's first frame holds the first half period too
                recorder.add(part + head, interval.gap + 0.5, interval.level)
                head = None
        stats.pairs += 1
        stats.samples += n

    with recording(video, config, "flow", info.fps) as recorder:
        for frame in stream:
            index, rgb = frame.index, frame.rgb
            linear = lut[rgb] if frame.gain == 1.0 else lut[rgb] * np.float32(frame.gain)
            if total is None:
                total = np.zeros(linear.shape, np.float64)
                first_used, first_time = index, frame.time
                head = linear * np.float32(0.5)  # the first frame's half period before it
                total += head
            elif linear.shape != previous[1].shape:
                raise InputError(f"{info.name}: frame {index} is {rgb.shape[1]}×"
                                 f"{rgb.shape[0]}, the clip started at "
                                 f"{previous[0].rgb.shape[1]}×{previous[0].rgb.shape[0]}",
                                 hint="frames must share one size")
            if previous is not None:
                before, a = previous
                gap = frame.time - before.time  # frame periods (timestamps may be uneven)
                forward = flows.cached_pair(estimator, cache, clip_id, before.index, index,
                                            before.rgb, rgb)
                backward = partial(flows.cached_pair, estimator, cache, clip_id, index,
                                   before.index, rgb, before.rgb)
                current = _Interval(a, linear, forward, backward, gap, stream.level())
                # An interval is integrated once the next one's flow is known: its paths
                # bend the way the motion either side of it goes.
                if pending is not None:
                    settle(earlier, pending, current)
                earlier, pending = pending, current
                velocities = (velocities + [forward / np.float32(gap)])[-(HISTORY - 1):]
            if learner is not None:
                learner.observe(linear, velocities[-1] if previous is not None else None,
                                frame.time)
            history = (history + [linear])[-HISTORY:]
            previous = (frame, linear)
            used += 1
            last_used, last_time = index, frame.time
            if on_progress is not None:
                on_progress(used, None)
        if total is None:
            raise InputError(f"no frames to render in {info.name}",
                             hint="check the clip and the --start/--end window")
        if pending is not None:
            settle(earlier, pending, None)
        tail = previous[1] * np.float32(0.5)  # the last frame's half period after it
        total += tail
        if recorder is not None:
            if head is not None:  # a single frame
                recorder.add(head + tail, 1.0, stream.level())
            else:
                recorder.add(tail, 0.5, stream.level())
        covered = last_time - first_time + 1
        periods = covered
        if exposure is not None and exposure > covered:
            check_extrapolation(exposure, covered, used, config)
            on_period = None if recorder is None else (
                lambda part, weight: recorder.add(part, weight, stream.level()))
            # The bar goes on counting: each extrapolated period is a frame more.
            advance = None if on_progress is None else (
                lambda done, total: on_progress(used + done, used + total))
            extra, stats.steady = extrapolate(history, velocities, exposure - covered,
                                              guide=config.motion_guide, on_period=on_period,
                                              on_progress=advance)
            total += extra
            stats.extrapolated = exposure - covered
            periods = exposure
        if cache is not None:
            stats.cache_hits, stats.cache_misses = cache.hits - hits0, cache.misses - misses0
        linear = (total / periods).astype(np.float32)
        if learner is not None:
            linear = learner.refine(linear, periods)
        linear = stream.finish(linear)
        if recorder is not None:
            recorder.commit(stream.crop_box())
    result = StackResult(linear, info, used, first_used, last_used,
                                time.perf_counter() - started,
                                clip.warnings() + stream.notes.warnings,
                                about=stream.notes.about)
    return result, stats


def check_extrapolation(exposure: float, covered: float, frames: int, config) -> None:
    """Refuse an exposure that would extrapolate for days: every period past the clip
    costs a full-frame pass (with fewer than 3 frames nothing moves and it costs
    nothing). ``covered``: the periods the frames span; ``frames``: how many."""
    extra = exposure - covered
    if frames < 3 or extra <= 0:
        return
    most = min(MAX_EXTRAPOLATION * covered, MAX_EXTRAPOLATED_PERIODS)
    if extra > most:
        from lexp.errors import UsageError

        raise UsageError(
            f"--exposure {config.exposure} runs {extra:,.0f} frame periods past the "
            f"{covered:g} the frames cover; lexp extrapolates at most {most:,.0f} here "
            f"({MAX_EXTRAPOLATION}x the frames, at most {MAX_EXTRAPOLATED_PERIODS:,})",
            hint="a shorter --exposure, or more frames (a later --end)")


def window_for(config, fps: float | None):
    """The window, shortened to the exposure when the exposure is the shorter."""
    from dataclasses import replace

    from lexp.config import TimeSpec

    exposure = exposure_periods(config, fps)
    if exposure is None:
        return config.window
    first, end = config.window.frame_range(fps)
    stop = first + math.ceil(exposure)
    if end is None or stop < end:
        return replace(config.window, end=TimeSpec(float(stop), "f"))
    return config.window
