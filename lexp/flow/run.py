"""Flow over a clip: every consecutive pair of its window, through the cache; and the
flow between two frames, through the cache (as renders ask for it). Also the helpers
that use a flow: warping an image along it, and its error against a known truth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lexp.flow.base import FlowEstimator


def warp_backward(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``image`` at p + flow(p): with the flow t→t+1 and ``image`` = frame t+1,
    this brings frame t+1 back onto frame t. image: H×W×C (any dtype), flow (2, H, W)."""
    import cv2

    h, w = flow.shape[1:]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(image, xs + flow[0], ys + flow[1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def endpoint_error(flow: np.ndarray, truth: np.ndarray, margin: int = 0) -> float:
    """Mean endpoint error in pixels between two (2, H, W) flows (borders trimmed)."""
    d = np.sqrt(((np.asarray(flow, np.float64) - truth) ** 2).sum(axis=0))
    if margin:
        d = d[margin:-margin, margin:-margin]
    return float(d.mean())


@dataclass
class FlowRun:
    """What :func:`clip_flows` did."""

    clip: str  # the clip's name
    method: str  # the estimator, e.g. "dis-medium"
    width: int  # frame width (pixels)
    height: int  # frame height (pixels)
    pairs: int  # flows produced (forward, plus backward on request)
    mean_motion: float  # mean flow magnitude over all pairs and pixels (pixels)
    max_motion: float  # largest flow magnitude seen (pixels)
    seconds: float  # wall time
    cache_hits: int  # flows read from the cache
    cache_misses: int  # flows computed
    cache_damaged: int = 0  # damaged cache entries found (deleted and recomputed)
    device: str | None = None  # where a learned estimator ran (None: OpenCV, or all cached)

    def to_json(self) -> dict:
        return {"clip": self.clip, "method": self.method, "size": [self.width, self.height],
                "pairs": self.pairs, "mean_motion_px": round(self.mean_motion, 4),
                "max_motion_px": round(self.max_motion, 4), "seconds": round(self.seconds, 3),
                "device": self.device,
                "cache": {"hits": self.cache_hits, "misses": self.cache_misses,
                          "damaged": self.cache_damaged}}


def clip_flows(source, estimator: FlowEstimator, config, *, clip=None, cache=None,
               backward: bool = False, on_flow=None, on_progress=None) -> FlowRun:
    """Flow between consecutive frames of the clip's window, through the cache.

    ``source``: a media.ClipSource to open, or None with ``clip``, a clip already open
    (frames in memory: never cached). ``config`` is a RenderConfig (its window and fps are
    used). ``on_flow(i, j, flow)`` receives every flow (i -> j; backward flows have
    i > j) as it is produced. Frames stream through: two are held at a time.
    """
    import contextlib
    import time

    from lexp import media

    started = time.perf_counter()
    hits0 = misses0 = damaged0 = 0
    clip_id = cache.clip_id(source) if cache is not None and source is not None and \
        source.paths else None
    if cache is not None:
        hits0, misses0, damaged0 = cache.hits, cache.misses, cache.damaged
    queue = _PairQueue(estimator, cache, on_flow)
    opened = media.open_clip(source, config.fps) if clip is None else \
        contextlib.nullcontext(clip)
    with opened as clip:
        info = clip.info
        previous = None
        for used, (index, frame) in enumerate(media.window_frames(clip, config.window)):
            if previous is not None:
                directions = [(previous[0], index, previous[1], frame)]
                if backward:
                    directions.append((index, previous[0], frame, previous[1]))
                for i, j, a, b in directions:
                    queue.add(clip_id, i, j, a, b)
                if on_progress is not None:
                    on_progress(used, None)
            previous = (index, frame)
        queue.compute()
    stats = queue.stats
    pairs = stats["pairs"]
    if pairs == 0:
        from lexp.errors import InputError

        raise InputError(f"{info.name}: flow needs at least two frames in the window",
                         hint="check the clip and the --start/--end window")
    return FlowRun(info.name, estimator.label(), info.width, info.height, pairs,
                   stats["motion"] / stats["pixels"], stats["max"], time.perf_counter() - started,
                   (cache.hits - hits0) if cache else 0,
                   (cache.misses - misses0) if cache else pairs,
                   (cache.damaged - damaged0) if cache else 0,
                   getattr(estimator, "device_used", None))


def motion_of(flow: np.ndarray) -> dict:
    """A (2, H, W) flow's motion as ``lexp flow`` sums it: {"sum": Σ |flow| (px),
    "max": the largest |flow|, "pixels": H·W} (kept with each cached flow)."""
    magnitude = np.sqrt(flow[0] ** 2 + flow[1] ** 2)
    return {"sum": float(magnitude.sum()), "max": float(magnitude.max()),
            "pixels": int(magnitude.size)}


class _PairQueue:
    """Flows in the order asked: a cached one is read, the others are estimated in
    batches (as many pairs per estimator call as ``batch_limit`` allows) and cached;
    each reaches ``on_flow(i, j, flow)`` and the motion statistics."""

    def __init__(self, estimator: FlowEstimator, cache, on_flow) -> None:
        self.estimator, self.cache, self.on_flow = estimator, cache, on_flow
        self.stats = {"motion": 0.0, "max": 0.0, "pixels": 0, "pairs": 0}
        self.pending: list[tuple] = []  # pairs to compute: (i, j, a, b, cache key or None)
        self.batch: int | None = None  # pairs per estimator call, decided at the first miss

    def add(self, clip_id: str | None, i: int, j: int, a: np.ndarray, b: np.ndarray) -> None:
        key = None
        if clip_id is not None:
            key = self.cache.key(clip_id, i, j, self.estimator.key(), (a.shape[1], a.shape[0]))
            # Nothing wants the flow itself: its statistics, kept beside it, will do.
            motion = self.cache.motion(key) if self.on_flow is None else None
            if motion is not None:
                self.compute()
                self._count(motion)
                return
            flow = self.cache.get(key)
            if flow is not None:
                self.compute()  # keep flows in order for on_flow
                self.emit(i, j, flow)
                return
        self.pending.append((i, j, a, b, key))
        if self.batch is None:
            self.batch = self.estimator.batch_limit((a.shape[1], a.shape[0]))
        if len(self.pending) >= self.batch:
            self.compute()

    def emit(self, i: int, j: int, flow: np.ndarray) -> None:
        self._count(motion_of(flow))
        if self.on_flow is not None:
            self.on_flow(i, j, flow)

    def _count(self, motion: dict) -> None:
        self.stats["motion"] += motion["sum"]
        self.stats["max"] = max(self.stats["max"], motion["max"])
        self.stats["pixels"] += motion["pixels"]
        self.stats["pairs"] += 1

    def compute(self) -> None:
        """Estimate the pending pairs (one batch), cache and emit them."""
        from lexp.flow.cache import from_half, to_half

        if not self.pending:
            return
        flows = self.estimator.pairs([(a, b) for _, _, a, b, _ in self.pending])
        for (i, j, _, _, key), flow in zip(self.pending, flows, strict=True):
            half = to_half(flow)  # as the cache keeps it: a warm run exports the same
            rounded = from_half(half)
            if key is not None:
                self.cache.put(key, half, {"estimator": self.estimator.key(), "pair": [i, j],
                                           "motion": motion_of(rounded)})
            self.emit(i, j, rounded)
        self.pending.clear()


def cached_pair(estimator: FlowEstimator, cache, clip_id: str | None, i: int, j: int,
                a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The flow from frame ``i`` (``a``) to frame ``j`` (``b``), through the cache when there
    is one. Always rounded to float16 as the cache stores it, so a result is the same
    whether its flows were computed now or read back."""
    from lexp.flow.cache import from_half, to_half

    if cache is None or clip_id is None:
        return from_half(to_half(estimator.pair(a, b)))
    key = cache.key(clip_id, i, j, estimator.key(), (a.shape[1], a.shape[0]))
    flow = cache.get(key)
    if flow is None:
        half = to_half(estimator.pair(a, b))
        cache.put(key, half, {"estimator": estimator.key(), "pair": [i, j]})
        flow = from_half(half)
    return flow
