"""What ``auto`` renders with, decided by what the picture would show.

The flow render where the exposure outlasts the clip (or the generator, where its
checkpoint measured better there); otherwise the plain mean, unless it would visibly
differ from the flow render: both are rendered on small copies of the whole window
(:func:`window_scan`), corrected for the detail by the window's first
``PROBE_INTERVALS`` intervals at full size, and the two must stay within
``INVISIBLE_DB`` where they differ most (:func:`lexp.metrics.local_psnr`). A stream,
which cannot be read twice, is judged by its first intervals (:func:`predicted_db`).
Water, smoke and foliage move in every frame, but their copies blend invisibly in a long
mean, and the flow render costs ~50x the mean's time there. A drifting camera is
steadied first (:mod:`lexp.renderers.camera`). For ``max``, :func:`gaps_would_show`
decides whether the lighten blend fills the gaps between frames along the flow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from lexp.config import RenderConfig
from lexp.media import Clip, ClipInfo, window_frames
from lexp.renderers.camera import steady_a_moving_camera, steady_a_shake
from lexp.renderers.result import Why
from lexp.renderers.stack_loop import stack_clip

AUTO_MOTION_PX = 1.0  # motion per frame under which the mean is already continuous
# The mean against the flow render in their worst neighbourhoods (metrics.local_psnr),
# at and above which the mean's copies are invisible and auto takes the mean: one 8-bit
# code value RMS (20·log10(255) dB). The night street's beaded trails are 44 dB there
# (visible, zoomed in); water's noise-like differences, 52-54.
INVISIBLE_DB = 48.13
PROBE_INTERVALS = 4  # intervals at the window's start that auto renders both ways
WINDOW_DB_PER_DECADE = 7.0  # how the probe's dB grows with the window (predicted_db)


def choose_auto(clip: Clip, config: RenderConfig, learned_allowed: bool = True,
                source=None):
    """What ``auto`` renders ``clip`` with: (config, with --align turned on for a moving
    camera; the method; why, in words; the window's frames, the first few already read).
    ``config`` has its transfer resolved (:func:`lexp.renderers.dispatch.for_clip`).
    ``source``: the clip's ClipSource, to read the window a second time for
    :func:`window_scan` (a clip of frames in memory is read again as it is; a stream
    cannot be)."""
    import itertools

    from lexp.media.sources import open_again
    from lexp.renderers import flow as flow_render

    window = flow_render.window_for(config, clip.info.fps)
    frames = window_frames(clip, window)
    peeked = list(itertools.islice(frames, PROBE_INTERVALS + 1))
    frames = itertools.chain(peeked, frames)
    probe, steadied = peeked, None
    if config.align is None and config.align_auto:
        config, probe, steadied = steady_a_moving_camera(config, clip.info, peeked)

    def reopened():
        """The clip opened again to read the window anew (a stdin spool judged as the
        file would be), None where it cannot be. RAW frames are read again at half size:
        the scan looks at 320-px copies, and developing a burst twice at full size would
        double the render's time."""
        return open_again(clip, source, config.fps, replace(
            config.raw, draft=config.raw_draft or clip.info.transfer_tag == "linear"))

    again = reopened()
    if again is None:  # a stream: judged by its first frames
        method, reason = _choose(config, clip.info, probe, learned_allowed=learned_allowed)
        return config, method, (steadied.then(reason) if steadied else reason), frames
    # A camera still at first may shake later (a hand settling on the shutter): pairs of
    # the window are looked at as the scan reads it, and a shake is steadied.
    later = LaterPairs() if steadied is None and config.align is None and \
        config.align_auto else None
    with again as second:
        method, reason = _choose(
            config, clip.info, probe, learned_allowed=learned_allowed,
            rescan=lambda: later.watch(window_frames(second, window)) if later is not None
            else window_frames(second, window))
    shake = later.shake() if later is not None else None
    if shake is not None:
        config, probe, steadied = steady_a_shake(config, clip.info, peeked, shake)
        if config.align:  # judged again, steadied: what the render will show
            with reopened() as third:
                method, reason = _choose(config, clip.info, probe,
                                         learned_allowed=learned_allowed,
                                         rescan=lambda: window_frames(third, window))
    return config, method, (steadied.then(reason) if steadied else reason), frames


class LaterPairs:
    """Consecutive pairs of full-size frames at a few points of the window (the 4th,
    8th, 12th, 16th, 24th, ... frames read), taken as the window scan reads it: where a
    shake that starts after a still beginning shows (:func:`camera.shake_of`)."""

    AT = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
    SHAKEN = 2  # pairs that must shake: one may be a burst of light filling the frame

    def __init__(self) -> None:
        self.pairs: list[list] = []

    def watch(self, frames):
        """``frames`` passed through, the pairs kept (copies: frames may share a buffer)."""
        pending = None
        for count, (index, frame) in enumerate(frames):
            if pending is not None:
                self.pairs.append([pending, (index, frame.copy())])
                pending = None
            if count in self.AT:
                pending = (index, frame.copy())
            yield index, frame

    def shake(self) -> tuple[tuple[float, float], float] | None:
        """(the mean shift (x, y) in px a frame of the pairs that shake, how much their
        directions agree: 1 when all go one way, a pan; near 0 for a hand's shake), when
        enough pairs shake; else None."""
        from lexp.renderers.camera import _first_flow, shake_of

        shifts = np.array([s for pair in self.pairs
                           if (s := shake_of(*_first_flow(pair))) is not None])
        if len(shifts) < self.SHAKEN:
            return None
        mean = shifts.mean(axis=0)
        agree = float(np.hypot(*mean) / np.mean(np.hypot(shifts[:, 0], shifts[:, 1])))
        return (float(mean[0]), float(mean[1])), agree


def _extrapolator(config: RenderConfig, learned_allowed: bool) -> tuple[str, Why]:
    """Past the clip's end: the generator where its checkpoint measured above the flow
    render there, on clips it never trained on (``checkpoint.Measured.earned``), else
    the flow render."""
    from lexp import checkpoint

    gain = checkpoint.measured(checkpoint.resolve(config.checkpoint)) \
        if learned_allowed else None
    if gain is not None and gain.earned():
        return "learned", Why("the exposure outlasts the frames: the trained generator "
                              "continues their motion",
                              f"{gain.median_db:+.2f} dB over flow, measured")
    return "flow", Why("the exposure outlasts the frames: their motion is continued")


def _choose(config: RenderConfig, info, peeked, learned_allowed: bool,
            rescan=None) -> tuple[str, Why]:
    """auto's choice and why, from the window's first frames (``peeked``) and, where the
    window can be read again (``rescan()``: its (index, frame) pairs anew), a scan of all
    of it (:func:`window_scan`). The generator only extrapolates, and only where it
    measured better (``learned_allowed``: false for a trail video, which only the flow
    render can show building up)."""
    from lexp.renderers import flow as flow_render

    exposure = flow_render.exposure_periods(config, info.fps)
    if exposure is not None:
        first, end = config.window.frame_range(info.fps)
        stop = min(x for x in (end, info.frame_count, math.inf) if x is not None)
        if exposure > stop - first:
            return _extrapolator(config, learned_allowed)
    # (A strided window is judged like any other, on its own frames: the mean of every
    # 8th frame of a waterfall still blends invisibly, and costs an eighth.)
    if len(peeked) < 2:
        return "mean", Why("one frame")
    if rescan is not None:
        return _choose_by_scan(config, info, peeked, rescan)
    per_frame = motion_per_frame(peeked)
    if per_frame <= AUTO_MOTION_PX:
        return "mean", Why(STILL_WORDS, f"motion {per_frame:.1f} px/frame")
    if len(peeked) < 3:
        return "flow", Why(COPIES_WORDS, f"motion {per_frame:.1f} px/frame")
    db = predicted_db(config, info, peeked)
    figures = f"motion {per_frame:.1f} px/frame; {_differ(db)}"
    if db >= INVISIBLE_DB:
        return "mean", Why(_blends_words(info), figures)
    return "flow", Why(COPIES_WORDS, figures)


def _choose_by_scan(config: RenderConfig, info: ClipInfo, peeked: list, rescan) -> tuple:
    """mean or flow by the whole window's predicted difference (:func:`window_scan`,
    corrected for the detail a small copy cannot show by the full-size probe)."""
    scan = window_scan(config, info, rescan())
    if scan.whole >= STILL_DB:
        return "mean", Why(STILL_WORDS, f"the stacked and traced renders {scan.whole:.0f} dB "
                           "apart")
    detail = DEFAULT_DETAIL_DB
    if len(peeked) >= 3:
        full = probe_db(config, info, peeked)
        if max(full, scan.start) < STILL_DB:  # the start moves: measure what detail costs
            detail = min(0.0, max(DETAIL_FLOOR_DB, full - scan.start))
    db = scan.whole + detail
    if db >= INVISIBLE_DB:
        return "mean", Why(_blends_words(info), _differ(db))
    return "flow", Why(COPIES_WORDS, _differ(db))


# auto's reasons, in a camera manual's words (the figures behind them: Why.figures)
STILL_WORDS = "nothing moves enough to leave copies"
COPIES_WORDS = "stacked frames would show separate copies of what moves"


def _blends_words(info: ClipInfo) -> str:
    rate = f" at {info.fps:.3g} frames/s" if info.fps else ""
    return f"what moves blends smoothly{rate}, as in a long exposure"


def _differ(db: float) -> str:
    return f"the stacked and traced renders {db:.0f} dB apart where they differ most, predicted"


PROXY_SIDE = 320  # px: the long side of the window scan's copies of the frames
PROXY_BUDGET = 256 << 20  # bytes of those copies: a longer window is scanned this far
# What the full-size detail costs the scan's prediction: the full-size probe against
# the scan's own at the window's start, measured per clip, down to DETAIL_FLOOR_DB (stars
# a small copy cannot show at all measured -108); where the start holds still,
# DEFAULT_DETAIL_DB, the most measured on ../shared/clips above the floor (-12.3, the
# crowd; scripts/auto_table.py). STILL_DB: two renders this close are the same picture.
DEFAULT_DETAIL_DB = -12.0
DETAIL_FLOOR_DB = -15.0
STILL_DB = 100.0


@dataclass
class WindowScan:
    """The mean against the flow render on small copies of the window's frames, in
    their worst neighbourhoods (dB): all of the window, and its first intervals."""

    whole: float
    start: float


def window_scan(config: RenderConfig, info: ClipInfo, frames) -> WindowScan:
    """Render the window both ways on copies ``PROXY_SIDE`` px on their long side
    (``frames``: its (index, frame) pairs; at most ``PROXY_BUDGET`` of copies), and
    compare: how the differences between the two add up over the whole window (a crowd
    dilutes them, lamps in one lane pile them up), which a few intervals cannot tell."""
    import cv2

    from lexp import metrics

    scale = min(1.0, PROXY_SIDE / max(info.width, info.height))
    size = (max(1, round(info.width * scale)), max(1, round(info.height * scale)))
    aligner = None
    if config.align:  # steadied (by auto or --align): the scan sees what the render will
        from lexp.errors import InputError
        from lexp.renderers.align import Aligner

        aligner = Aligner(config.align, "fill")
    small, used = [], 0
    for index, frame in frames:
        copy = frame if frame.shape[1::-1] == size else \
            cv2.resize(frame, size, interpolation=cv2.INTER_AREA)  # (RAW: read at half size)
        if aligner is not None:
            try:
                copy = aligner.warp(index, copy)
            except InputError:  # too plain to align at this size: judge it unaligned
                aligner = None
            if copy is None:
                continue
        small.append(copy)
        used += copy.nbytes
        if used >= PROXY_BUDGET:
            break
    if len(small) < 2:
        return WindowScan(math.inf, math.inf)
    sigma = max(1.0, metrics.LOCAL_SIGMA * scale)

    def both(part: list) -> float:
        mean, flowed = _both_ways(config, info, part, estimator_name="dis")
        return metrics.local_psnr(mean, flowed, sigma=sigma)

    return WindowScan(both(small), both(small[:PROBE_INTERVALS + 1]))


def motion_per_frame(peeked: list) -> float:
    """How far the fast pixels of the first two (index, frame) pairs move per frame:
    the 99.5th percentile of a quick flow's length (DIS ultrafast at half size)."""
    from lexp.flow import DISFlow

    (i, a), (j, b) = peeked[:2]
    motion = DISFlow("ultrafast", scale=0.5).pair(a, b)
    return float(np.percentile(np.hypot(motion[0], motion[1]), 99.5)) / (j - i)


def _plain(config: RenderConfig, method: str) -> RenderConfig:
    """``config`` for rendering a few frames in memory with ``method``: the whole of
    them, and none of the finishing touches that need the whole clip."""
    from lexp.config import STILL_BELOW_PX, Window

    return replace(config, method=method, window=Window(), exposure=None, keep_sharp=None,
                   sharp_mask=None, rear_curtain=False, still_below=STILL_BELOW_PX,
                   checkpoint=None, gap_fill=None)


def _both_ways(config: RenderConfig, info: ClipInfo, frames: list,
               estimator_name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mean, flow render) of ``frames`` (a clip in memory), encoded as the output is.
    ``estimator_name``: the flow estimator (default: the render's own)."""
    from lexp import flow as flows
    from lexp.media import MemoryClip
    from lexp.renderers import flow as flow_render
    from lexp.renderers.stack import finish

    clip = MemoryClip(frames, info.fps, name=info.name)
    clip.info = replace(clip.info, transfer_tag=info.transfer_tag)
    estimator = flows.make_estimator(estimator_name) if estimator_name is not None else \
        flow_render.estimator_for(config)
    flowed = flow_render.render_flow(clip, _plain(config, "flow"), estimator).linear
    mean = stack_clip(clip, _plain(config, "mean")).linear
    return finish(mean, config), finish(flowed, config)


def probe_db(config: RenderConfig, info: ClipInfo, probe: list) -> float:
    """The mean against the flow render of the ``probe`` frames (the window's first
    (index, frame) pairs) at full size, in their worst neighbourhoods (dB)."""
    from lexp import metrics

    return metrics.local_psnr(*_both_ways(config, info, [f for _, f in probe]))


def predicted_db(config: RenderConfig, info: ClipInfo, probe: list) -> float:
    """How far the window's plain mean would be from its flow render in their worst
    neighbourhoods (:func:`lexp.metrics.local_psnr`, dB), predicted from ``probe``, the
    window's first (index, frame) pairs.

    Both renders are made from the probe's K intervals (at full size: copies show in
    the detail), and the dB carried to the window's N intervals as
    ``dB_K + WINDOW_DB_PER_DECADE · log10(N / K)``. Each interval's difference between
    the two (the copies against the trail) lands on other pixels as things move, so a
    longer window dilutes it: were the differences independent, by 10 dB per tenfold
    (RMS ∝ 1/√N); things that move on coherently (a lamp along its path, water along
    its current) pile theirs up more: 7.0–10.7 dB per tenfold measured on synthetic
    water and lamps and on the night street (tests/test_auto.py, scripts/auto_table.py);
    the lowest errs towards the flow render. The probe sees the window's start only:
    water whose first frames differ more (or less) than the rest is predicted off by up
    to 9 dB (tests/test_auto.py), on the rule's right side in every case measured.
    """
    from lexp.media import window_length

    db = probe_db(config, info, probe)
    k = len(probe) - 1
    length = window_length(info, config.window)
    n = max(k, (length - 1) if length else k)  # unknown length (a stream): as the probe
    return db + WINDOW_DB_PER_DECADE * math.log10(n / k)


def gaps_would_show(config: RenderConfig, info: ClipInfo, peeked: list) -> bool:
    """Whether a lighten stack would leave visible gaps between the frames' copies of a
    light: the window's first frames (``peeked``) moving more than ``AUTO_MOTION_PX`` a
    frame, and their gap-filled lighten blend differing from the plain one by more than
    ``INVISIBLE_DB`` where they differ most (a wide glow's copies may already touch)."""
    from lexp import flow as flows
    from lexp import metrics
    from lexp.media import MemoryClip
    from lexp.renderers.stack import finish
    from lexp.renderers.trails import max_along_flow

    if len(peeked) < 2:
        return False
    if motion_per_frame(peeked) <= AUTO_MOTION_PX:
        return False
    clip = MemoryClip([f for _, f in peeked], info.fps, name=info.name)
    plain = _plain(config, "max")
    filled = max_along_flow(clip, plain, flows.make_estimator("dis")).linear
    frames_only = stack_clip(clip, plain).linear
    return metrics.local_psnr(finish(frames_only, config), finish(filled, config)) < \
        INVISIBLE_DB
