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

Beyond the clip, the exposure goes on in :mod:`lexp.renderers.extrapolate`, whose docstring says
how (extrapolation).
"""

from __future__ import annotations

import math
import time
from functools import partial

import numpy as np

from lexp import colour
from lexp.errors import InputError
from lexp.renderers.extrapolate import (  # noqa: F401 (re-exported: the extrapolation's parts)
    brightness_trend,
    camera_wander,
    check_extrapolation,
    extrapolate,
    gaussian_blur,
    guide_velocity,
)
from lexp.renderers.warp import (  # noqa: F401 (re-exported)
    ERROR_BLUR_SIGMA,
    SAMPLE_STEP_PX,
    _grid,
    _local_error,
    _sample,
)

MAX_SAMPLES_PER_PAIR = 96  # cost cap for a pair with huge motion
HISTORY = 5  # frames kept for extrapolation


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
    """Two consecutive frames (``a``, ``b``: resolution.Pyramid s of their linear light),
    the flow a→b (2, h, w) at the flow size and ``gap`` frame periods between them; the
    flow b→a is fetched on demand, once."""

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


class _Exposure:
    """The exposure's running sum: linear light × frame periods, float64 H×W×3 at full
    size, plus the trail video's frames when one is recorded. Each frame contributes half
    a period before and after it at the ends (``open``/``close``) and each interval its
    integral along the flow (``settle``), at full size or, for fast motion and large
    frames, at a working size composed with the full-size frames
    (lexp.renderers.resolution)."""

    def __init__(self, recorder, stats, full_shape: tuple[int, ...], exact: bool) -> None:
        from lexp.renderers.resolution import Composer

        self.recorder, self.stats = recorder, stats
        self.exact = exact  # flow at full size: level-0 intervals are integrated there
        self.composer = Composer(full_shape)
        self.head: np.ndarray | None = None  # the first half period, until the video shows it

    def add(self, part: np.ndarray) -> None:
        """Light that needs no composing (full size): the ends, the extrapolated part."""
        self.composer.full += part

    def total(self) -> np.ndarray:
        return self.composer.total()

    def open(self, linear: np.ndarray) -> None:
        self.head = linear * np.float32(0.5)  # the first frame's half period before it
        self.add(self.head)

    def settle(self, before: _Interval | None, interval: _Interval,
               after: _Interval | None) -> None:
        """Integrate ``interval`` between its neighbours (None at the ends): its paths
        bend the way the motion either side of it goes."""
        from lexp.renderers import resolution

        def bends(backward):
            return path_bends(interval.forward, backward, interval.gap,
                              None if before is None else (before.backward_estimate(),
                                                           before.gap),
                              None if after is None else (after.forward, after.gap))

        level = resolution.level_for(interval.forward, interval.gap)
        if self.exact and level == 0:  # the full-size render, as it always was
            part, n = interval_sum(interval.a.full, interval.b.full, interval.forward,
                                   interval.gap, interval.backward, bends)
            self.add(part)
        else:
            a, b = interval.a.at(level), interval.b.at(level)
            size = (a.shape[1], a.shape[0])

            def bends_here(_backward):
                curve = bends(interval.backward())
                return None if curve is None else tuple(resolution.flow_at(x, size)
                                                        for x in curve)

            forward = resolution.flow_at(interval.forward, size)
            part, n = interval_sum(a, b, forward, interval.gap,
                                   lambda: resolution.flow_at(interval.backward(), size),
                                   bends_here)
            full_width = interval.a.full.shape[1]
            mask = None if n == 1 else resolution.moving_mask(forward, interval.gap,
                                                              full_width / size[0])
            if mask is not None:
                self.stats.work_size = min(self.stats.work_size or size, size)
            part = self.composer.add_interval(interval.a.full, interval.b.full, a, b, part,
                                              interval.gap, mask,
                                              want_part=self.recorder is not None)
        if self.recorder is not None:
            if self.head is None:
                self.recorder.add(part, interval.gap, interval.level)
            else:  # the video's first frame holds the first half period too
                self.recorder.add(part + self.head, interval.gap + 0.5, interval.level)
                self.head = None
        self.stats.pairs += 1
        self.stats.samples += n

    def close(self, linear: np.ndarray, level: float) -> None:
        tail = linear * np.float32(0.5)  # the last frame's half period after it
        self.add(tail)
        if self.recorder is not None:
            if self.head is not None:  # a single frame
                self.recorder.add(self.head + tail, 1.0, level)
            else:
                self.recorder.add(tail, 0.5, level)


def _flow_clip_id(cache, source, config, first: int) -> str | None:
    """The flow cache's key for the clip (its content; hashed here, once flow is sure to
    run), or None when flows are not cached."""
    clip_id = cache.clip_id(source) if cache is not None and source and source.paths else None
    if clip_id is not None and config.align:  # aligned frames have flows of their own
        import hashlib

        clip_id = hashlib.sha256(f"{clip_id}|align={config.align}|reference={first}"
                                 .encode()).hexdigest()
    return clip_id


def render_flow(clip, config, estimator, *, cache=None, source=None, frames=None,
                on_progress=None, video=None, learner=None):
    """Stream the clip's window, integrating every interval along its flow; extrapolate
    when the exposure is longer than the clip. Returns a result.RenderResult (linear
    float32 H×W×3; ``details.flow``: the FlowStats). ``cache``: a FlowCache, used when
    ``source`` (the clip's ClipSource) names files, whose content keys it. ``frames``: an
    iterator of (index, RGB frame) to use instead of reading the window (it may have been
    peeked at). ``video``: a trail_video.TrailSpec. Frames come through a
    prepare.FrameStream, so --align, --deflicker, timestamps and --keep-sharp apply as for
    stacking. Fast motion is worked on at a reduced size (lexp.renderers.resolution).
    ``learner`` (the learned generator, lexp.renderers.learned):
    ``learner.observe(linear, flow, time)`` sees every linear frame with the flow into it
    from the previous frame (per frame period, on its own grid; None for the first), and
    ``learner.refine(linear)`` turns the flow render (linear, before crop and keep-sharp)
    into its own."""
    from lexp import media
    from lexp.renderers.prepare import FrameStream
    from lexp.renderers.result import FlowStats, RenderResult
    from lexp.renderers.trail_video import recording

    started = time.perf_counter()
    info = clip.info
    first, _ = config.window.frame_range(info.fps)
    exposure = exposure_periods(config, info.fps)
    clip_id = _flow_clip_id(cache, source, config, first)
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
    with recording(video, config, "flow", info.fps) as recorder:
        # The frame count, when the container says it: the progress bar's ETA.
        total = media.window_length(info, window_for(config, info.fps))
        walk = _Walk(info.name, estimator, cache, clip_id, lut, stats, recorder, learner,
                     stream, on_progress, total)
        walk.run()
        exposed = walk.exposed
        periods = covered = walk.last_time - walk.first_time + 1
        if exposure is not None and exposure > covered:
            check_extrapolation(exposure, covered, walk.used, config)
            _extrapolate_into(exposed, walk.history, walk.full_velocities(),
                              exposure - covered, config, stream, on_progress, walk.used)
            periods = exposure
        if cache is not None:
            stats.cache_hits, stats.cache_misses = cache.hits - hits0, cache.misses - misses0
        linear = (exposed.total() / periods).astype(np.float32)
        if learner is not None:
            linear = learner.refine(linear, periods)
        linear = stream.finish(linear)
        if recorder is not None:
            recorder.commit(stream.crop_box())
    stream.notes.details.flow = stats
    return RenderResult(linear, info, walk.used, walk.first_used, walk.last_used,
                        time.perf_counter() - started, clip.warnings() + stream.notes.warnings,
                        details=stream.notes.details)


class _Walk:
    """One pass over the clip's frames: each interval's flow, integrated once the next
    one's flow is known (its paths bend the way the motion either side goes), into an
    :class:`_Exposure`; and the last frames and flows, kept for extrapolation."""

    def __init__(self, name, estimator, cache, clip_id, lut, stats, recorder, learner,
                 stream, on_progress, total: int | None = None) -> None:
        self.name, self.estimator, self.cache, self.clip_id = name, estimator, cache, clip_id
        self.lut, self.stats, self.recorder, self.learner = lut, stats, recorder, learner
        self.stream, self.on_progress, self.total = stream, on_progress, total
        self.exposed: _Exposure | None = None
        self.history: list[np.ndarray] = []  # full-size linear frames, newest last
        self.velocities: list[np.ndarray] = []  # working-size flows between them, per period
        self.used = self.first_used = self.last_used = 0
        self.first_time = self.last_time = 0.0
        self.size: tuple[int, int] | None = None  # the working size (width, height)

    def run(self) -> None:
        from lexp.renderers import resolution

        previous = None  # (Frame, Pyramid, rgb at the flow size)
        earlier = pending = None  # the last two intervals read; pending is not integrated
        for frame in self.stream:
            if self.exposed is None:
                h, w = frame.rgb.shape[:2]
                scale = resolution.flow_scale(h, w)
                self.size = resolution.work_size(h, w, scale) if scale > 1 else (w, h)
                self.exposed = _Exposure(self.recorder, self.stats, (h, w, 3), scale == 1)
            current, previous = self._step(frame, previous)
            if current is not None:
                if pending is not None:
                    self.exposed.settle(earlier, pending, current)
                earlier, pending = pending, current
        if previous is None:
            raise InputError(f"no frames to render in {self.name}",
                             hint="check the clip and the --start/--end window")
        if pending is not None:
            self.exposed.settle(earlier, pending, None)
        self.exposed.close(previous[1].full, self.stream.level())

    def _step(self, frame, previous):
        """Read one frame: (the interval it closes or None, the new ``previous``)."""
        from lexp import flow as flows
        from lexp.renderers import resolution

        import cv2

        # cv2.LUT: the same floats as numpy's lut[rgb], 8× faster at 1080p.
        linear = cv2.LUT(frame.rgb, self.lut)
        if frame.gain != 1.0:
            linear *= np.float32(frame.gain)
        pyramid = resolution.Pyramid(linear, self.size)
        rgb = frame.rgb if (frame.rgb.shape[1], frame.rgb.shape[0]) == self.size else \
            resolution.downscale(frame.rgb, self.size)
        current = None
        if previous is None:
            self.exposed.open(linear)
            self.first_used, self.first_time = frame.index, frame.time
        else:
            _check_size(self.name, frame, previous[0])
            before, a, a_rgb = previous
            gap = frame.time - before.time  # frame periods (timestamps may be uneven)
            forward = flows.cached_pair(self.estimator, self.cache, self.clip_id,
                                        before.index, frame.index, a_rgb, rgb)
            backward = partial(flows.cached_pair, self.estimator, self.cache, self.clip_id,
                               frame.index, before.index, rgb, a_rgb)
            current = _Interval(a, pyramid, forward, backward, gap, self.stream.level())
            self.velocities = (self.velocities + [forward / np.float32(gap)])[-(HISTORY - 1):]
        if self.learner is not None:
            self.learner.observe(linear, self.velocities[-1] if previous is not None
                                 else None, frame.time)
        self.history = (self.history + [linear])[-HISTORY:]
        self.used += 1
        self.last_used, self.last_time = frame.index, frame.time
        if self.on_progress is not None:
            self.on_progress(self.used, self.total)
        return current, (frame, pyramid, rgb)

    def full_velocities(self) -> list[np.ndarray]:
        """The kept flows at full size, in full-size pixels (what extrapolation reads)."""
        from lexp.renderers.resolution import flow_at

        h, w = self.history[-1].shape[:2]
        return [flow_at(v, (w, h)) for v in self.velocities]


def _check_size(name: str, frame, before) -> None:
    if frame.rgb.shape != before.rgb.shape:
        raise InputError(f"{name}: frame {frame.index} is {frame.rgb.shape[1]}×"
                         f"{frame.rgb.shape[0]}, the clip started at "
                         f"{before.rgb.shape[1]}×{before.rgb.shape[0]}",
                         hint="frames must share one size")


def _extrapolate_into(exposed: _Exposure, history, velocities, periods: float, config,
                      stream, on_progress, used: int) -> None:
    """Add ``periods`` frame periods of light carried past the last frame (see
    lexp.renderers.extrapolate) to the exposure, and to its video."""
    recorder = exposed.recorder
    on_period = None if recorder is None else (
        lambda part, weight: recorder.add(part, weight, stream.level()))
    # The bar goes on counting: each extrapolated period is a frame more.
    advance = None if on_progress is None else (
        lambda done, total: on_progress(used + done, used + total))
    extra, exposed.stats.steady = extrapolate(history, velocities, periods,
                                              guide=config.motion_guide, on_period=on_period,
                                              on_progress=advance)
    exposed.add(extra)
    exposed.stats.extrapolated = periods


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
