"""The flow render past the clip's last frame: an exposure longer than the clip.

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

import numpy as np

from lexp.renderers.warp import SAMPLE_STEP_PX, _grid, _local_error

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
    trust = motion_trust(history, flows)
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
        looked, outside = _looked_up(last, ones, xs - t * velocity[0], ys - t * velocity[1])
        c_still, c_moving, arriving = _period_coefficients(
            carried, t, carried_share, left_share, fixed_share, gain(t, mean_level),
            gain(t, last_level))
        if whole_periods:
            part = still_part * (c_still[..., None] if np.ndim(c_still) else c_still)
            part += c_moving[..., None] * (looked + outside[..., None] * stationary)
            if arriving is not None:
                part += arriving
            part = _blurred_and_weighted(part, wander, t, weight)
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


def _looked_up(last: np.ndarray, ones: np.ndarray, map_x, map_y):
    """``last`` sampled at (map_x, map_y) (H×W×3, 0 outside the frame), and the share of
    each sample that came from outside the frame (H×W): there the content is unknown and
    the stationary estimate takes that share. (Separate contiguous images: strided
    channel views cost several times as much per pass.)"""
    import cv2

    looked = cv2.remap(last, map_x, map_y, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    outside = 1 - cv2.remap(ones, map_x, map_y, cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return looked, outside


def _blurred_and_weighted(part: np.ndarray, wander, t: int, weight: float) -> np.ndarray:
    """A whole period's light, blurred by the camera's wander (growing with time, taken
    at the period's middle) and scaled to the share of the period it stands for."""
    if wander is not None:
        reach = (t - 1 + 0.5 * weight) ** WANDER_EXPONENT
        part = gaussian_blur(part, wander[0] * reach, wander[1] * reach)
    if weight != 1.0:
        part *= np.float32(weight)
    return part


def motion_trust(history: list[np.ndarray], flows: list[np.ndarray]) -> np.ndarray:
    """H×W in [0, 1]: how much better than standing still the early frames' motion
    predicts the last frame, pixel by pixel (1: it moves as it did; 0: it stays)."""
    count = len(history)
    middle = (count - 1) // 2
    early = np.mean(flows[:middle], axis=0)
    ahead = count - 1 - middle
    # Forward: each pixel of the middle frame goes where its own early velocity takes it
    # (looked up backwards, a small mover's front half would be judged by the still
    # background it covers, and fail).
    predicted = _forward_warp(history[middle], ahead * early[0], ahead * early[1])
    moving_error = _local_error(predicted, history[-1])
    still_error = _local_error(np.mean(history[:middle + 1], axis=0), history[-1])
    return (still_error / (moving_error + still_error + 1e-8)) ** TRUST_EXPONENT


def _period_coefficients(carried: _CarriedLight, t: int, carried_share, left_share,
                         fixed_share, still_gain, moving_gain):
    """(c_still, c_moving, arriving) of period ``t``: the per-pixel (H×W) weights of the
    still share's light and of the moving share looked up backwards, and the light the
    carried movers bring (H×W×3, or None)."""
    if not carried:  # (the formula below, with nothing arriving)
        return still_gain, left_share * moving_gain, None
    light, coverage = carried.at(t)
    # What the arriving movers do not cover: the still share, the moving share looked up
    # backwards, and, where this pixel's own movers have left and nothing came in their
    # place (a hole), what lies behind them.
    hole = np.maximum(carried_share - coverage, 0)
    uncovered = (1 - coverage) / np.maximum(fixed_share + hole, 1e-6)
    return (uncovered * still_gain, uncovered * (left_share + hole) * moving_gain,
            light * moving_gain)


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
