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

In-between frames: :mod:`lexp.renderers.interpolate` (both directions, occlusion-safe,
on curved paths); at full size in a few segments pre-filtered along the motion
(:mod:`lexp.renderers.segments`), or a pixel of trail apart for the exact render
(``RenderConfig.exact``, the reference every fast path is judged by:
scripts/quality_guard.py). Flow of large frames is estimated smaller:
:mod:`lexp.renderers.resolution`.

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
from lexp.renderers.extrapolate import check_extrapolation, extrapolate
from lexp.renderers.interpolate import interval_sum, path_bends

HISTORY = 5  # frames kept for extrapolation


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
    """Two consecutive frames (``a``, ``b``: their linear light at full size, numpy or
    tensors), the flow a→b (2, h, w) at the flow size and ``gap`` frame periods between
    them; the flow b→a is fetched on demand, once."""

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


class Exposure:
    """The exposure's running sum: linear light × frame periods, float64 H×W×3 at full
    size, plus the trail video's frames when one is recorded. Each frame contributes half
    a period before and after it at the ends (``open``/``close``) and each interval its
    integral along the flow (``settle``), at full size."""

    def __init__(self, recorder, stats, full_shape: tuple[int, ...], frames) -> None:
        self.recorder, self.stats = recorder, stats
        self.frames = frames  # resolution.HostFrames, or on_device.DeviceFrames
        self.shape = full_shape  # H×W×3
        self.composer = frames.composer(full_shape)
        self.head = None  # the first half period, until the video shows it

    def _record(self, part, weight: float, level: float) -> None:
        self.recorder.add(self.frames.host(part), weight, level)

    def add(self, part) -> None:
        """Full-size light: an interval, the ends, the extrapolated part."""
        self.composer.add_full(part)

    def total(self) -> np.ndarray:
        return self.composer.total()

    def open(self, linear) -> None:
        self.head = linear * 0.5  # the first frame's half period before it
        self.add(self.head)

    def settle(self, before: _Interval | None, interval: _Interval,
               after: _Interval | None) -> None:
        """Integrate ``interval`` between its neighbours (None at the ends): its paths
        bend the way the motion either side of it goes."""
        from lexp.renderers import resolution

        frames = self.frames
        flow = frames.flow  # where the bends are worked out: numpy, or the GPU

        def bends(backward):
            return path_bends(flow(interval.forward), flow(backward), interval.gap,
                              None if before is None else (flow(before.backward_estimate()),
                                                           before.gap),
                              None if after is None else (flow(after.forward), after.gap),
                              sample_flow=frames.sample_flow)

        # Every interval at full size, along its flow upsampled: fast motion costs a few
        # segments there, not a smaller copy (lexp.renderers.segments).
        a, b = interval.a, interval.b
        size = (a.shape[1], a.shape[0])

        def bends_here(_backward):
            curve = bends(interval.backward())
            return None if curve is None else tuple(frames.flow_at(x, size) for x in curve)

        forward = resolution.flow_at(interval.forward, size)  # as it is, at the flow size
        part, n = interval_sum(a, b, forward, interval.gap,
                               lambda: resolution.flow_at(interval.backward(), size),
                               bends_here, frames.integrate, frames.tiled, frames.samples,
                               frames.box_above)
        self.add(part)
        if self.recorder is not None:
            if self.head is None:
                self._record(part, interval.gap, interval.level)
            else:  # the video's first frame holds the first half period too
                self._record(part + self.head, interval.gap + 0.5, interval.level)
                self.head = None
        self.stats.pairs += 1
        self.stats.samples += n

    def close(self, linear, level: float) -> None:
        tail = linear * 0.5  # the last frame's half period after it
        self.add(tail)
        if self.recorder is not None:
            if self.head is not None:  # a single frame
                self._record(self.head + tail, 1.0, level)
            else:
                self._record(tail, 0.5, level)


def estimator_for(config):
    """The flow estimator a render uses: ``config.flow`` (auto: RAFT on a GPU when its
    weights are cached, else DIS medium; never RAFT on a CPU, which the render cannot
    afford)."""
    from lexp import flow as flows

    if config.flow == "auto":
        return flows.auto_estimator(device=config.device, raft_on_cpu=False)
    return flows.make_estimator(config.flow, device=config.device)


def flow_clip_id(cache, source, config, first: int) -> str | None:
    """The flow cache's key for the clip (its content; hashed here, once flow is sure to
    run), or None when flows are not cached."""
    clip_id = cache.clip_id(source) if cache is not None and source and source.paths else None
    # Aligned frames, and RAW frames developed otherwise than by default, have flows of
    # their own.
    developed = "" if config.raw == type(config.raw)() else f"|{config.raw}"
    if clip_id is not None and (config.align or developed):
        import hashlib

        clip_id = hashlib.sha256(f"{clip_id}|align={config.align}|reference={first}"
                                 f"{developed}".encode()).hexdigest()
    return clip_id


def render_flow(clip, config, estimator, *, cache=None, source=None, frames=None,
                on_progress=None, video=None, learner=None, integrator=None):
    """Stream the clip's window, integrating every interval along its flow; extrapolate
    when the exposure is longer than the clip. Returns a result.RenderResult (linear
    float32 H×W×3; ``details.flow``: the FlowStats). ``cache``: a FlowCache, used when
    ``source`` (the clip's ClipSource) names files, whose content keys it. ``frames``: an
    iterator of (index, RGB frame) to use instead of reading the window (it may have been
    peeked at). ``video``: a trail_video.TrailSpec. Frames come through a
    prepare.FrameStream, so --align, --deflicker, timestamps and --keep-sharp apply as for
    stacking. Every interval is integrated at full size (lexp.renderers.segments).
    ``learner`` (the learned generator, lexp.renderers.learned):
    ``learner.observe(linear, flow, time)`` sees every linear frame with the flow into it
    from the previous frame (per frame period, on its own grid; None for the first), and
    ``learner.refine(linear)`` turns the flow render (linear, before crop and keep-sharp)
    into its own. ``integrator``: a interpolate_torch.TorchIntegrator (a GPU: see
    ``integrator_for``), on whose device the frames, their instants and the sums are kept
    (lexp.renderers.on_device); None: numpy and OpenCV on the CPU."""
    from lexp import media
    from lexp.renderers.prepare import FrameStream
    from lexp.renderers.resolution import HostFrames
    from lexp.renderers.result import FlowStats, RenderResult
    from lexp.renderers.trail_video import recording

    started = time.perf_counter()
    info = clip.info
    first, _ = config.window.frame_range(info.fps)
    exposure = exposure_periods(config, info.fps)
    clip_id = flow_clip_id(cache, source, config, first)
    if exposure is not None:  # known before any work when the window's length is
        length = media.window_length(info, config.window)
        if length is not None:
            check_extrapolation(exposure, (length - 1) * config.window.stride + 1, length,
                                config)
    window = window_for(config, info.fps)
    if frames is None:
        frames = media.window_frames(clip, window)
    lut = colour.decode_lut(config.transfer, clip.info.bit_depth)
    stream = FrameStream(clip, config, frames, lut)
    stats = FlowStats(estimator.label())
    if integrator is not None and integrator.device.type != "cpu":
        stats.integrated_on = integrator.device.type
    space = HostFrames(lut, config.exact) if integrator is None else \
        integrator.frames(lut, config.exact)
    hits0, misses0 = (cache.hits, cache.misses) if cache is not None else (0, 0)
    with recording(video, config, "flow", info.fps) as recorder:
        # The frame count, when the container says it: the progress bar's ETA.
        total = media.window_length(info, window)
        walk = Walk(info.name, estimator, cache, clip_id, space, stats, recorder, learner,
                     stream, on_progress, total)
        walk.run()
        exposed = walk.exposed
        periods = covered = walk.last_time - walk.first_time + 1
        if exposure is not None and exposure > covered:
            check_extrapolation(exposure, covered, walk.used, config)
            history = [space.host(linear) for linear in walk.history]
            _extrapolate_into(exposed, history, walk.full_velocities(),
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


class Walk:
    """One pass over the clip's frames: each interval's flow, integrated once the next
    one's flow is known (its paths bend the way the motion either side goes), into an
    :class:`Exposure`; and the last frames and flows, kept for extrapolation."""

    def __init__(self, name, estimator, cache, clip_id, frames, stats, recorder, learner,
                 stream, on_progress, total: int | None = None) -> None:
        self.name, self.estimator, self.cache, self.clip_id = name, estimator, cache, clip_id
        self.frames, self.stats, self.recorder, self.learner = frames, stats, recorder, learner
        self.stream, self.on_progress, self.total = stream, on_progress, total
        self.exposed: Exposure | None = None
        self.history: list = []  # full-size linear frames (``frames``' arrays), newest last
        self.velocities: list[np.ndarray] = []  # flows between them (flow size), per period
        self.used = self.first_used = self.last_used = 0
        self.first_time = self.last_time = 0.0
        self.size: tuple[int, int] | None = None  # the flow size (width, height)
        # Where the walk is: the last frame read (Frame, its linear light, rgb at the
        # flow size) and the last two intervals read, ``pending`` not integrated yet.
        self.previous = self.earlier = self.pending = None

    def run(self) -> None:
        for frame in self.stream:
            self.push(frame)
        self.finish()

    def push(self, frame) -> None:
        """Read one frame: the interval before the last one read is integrated now that
        the motion after it is known."""
        from lexp.renderers import resolution

        if self.exposed is None:
            h, w = frame.rgb.shape[:2]
            scale = 1.0 if self.frames.exact else resolution.flow_scale(h, w)
            self.size = resolution.work_size(h, w, scale) if scale > 1 else (w, h)
            self.flow_scale = scale  # full-size px per flow px (the first interval may
            self.flow_size_decided = scale == 1  # find it slow: then 1 from there on)
            self.exposed = Exposure(self.recorder, self.stats, (h, w, 3), self.frames)
        current, self.previous = self._step(frame, self.previous)
        if current is not None:
            if self.pending is not None:
                self.exposed.settle(self.earlier, self.pending, current)
            self.earlier, self.pending = self.pending, current

    def finish(self, exposed: Exposure | None = None) -> None:
        """The frames have ended: the last interval integrated, the last frame's half
        period added, into ``exposed`` (default: the walk's own exposure; another one
        shows what the walk would give if it ended now, leaving it to go on)."""
        if self.previous is None:
            raise InputError(f"no frames to render in {self.name}",
                             hint="check the clip and the --start/--end window")
        exposed = exposed or self.exposed
        if self.pending is not None:
            exposed.settle(self.earlier, self.pending, None)
        exposed.close(self.previous[1], self.stream.level())

    def _step(self, frame, previous):
        """Read one frame: (the interval it closes or None, the new ``previous``)."""
        from lexp import flow as flows
        from lexp.renderers import resolution

        linear = self.frames.linear(frame.rgb, frame.gain)
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
            if not self.flow_size_decided:
                self.flow_size_decided = True
                if resolution.slow_drift(forward, gap, self.flow_scale):  # (stars):
                    self.flow_scale, self.size = 1.0, (frame.rgb.shape[1], frame.rgb.shape[0])
                    a_rgb, rgb = before.rgb, frame.rgb  # the clip's flow at full size
                    forward = flows.cached_pair(self.estimator, self.cache, self.clip_id,
                                                before.index, frame.index, a_rgb, rgb)
            backward = partial(flows.cached_pair, self.estimator, self.cache, self.clip_id,
                               frame.index, before.index, rgb, a_rgb)
            current = _Interval(a, linear, forward, backward, gap, self.stream.level())
            self.velocities = (self.velocities + [forward / np.float32(gap)])[-(HISTORY - 1):]
        if self.learner is not None:
            velocity = self.velocities[-1] if previous is not None else None
            self.learner.observe(self.frames.host(linear), velocity, frame.time)
        self.history = (self.history + [linear])[-HISTORY:]
        self.used += 1
        self.last_used, self.last_time = frame.index, frame.time
        if self.on_progress is not None:
            self.on_progress(self.used, self.total)
        return current, (frame, linear, rgb)

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


def _extrapolate_into(exposed: Exposure, history, velocities, periods: float, config,
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
