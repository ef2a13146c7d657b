"""Optical flow estimators behind one small interface, and helpers to use flow.

Data contract
-------------
Flow is ``float32 (2, H, W)`` in pixels, from frame t to frame t+1: ``flow[0]`` is the
horizontal motion (x, to the right), ``flow[1]`` the vertical (y, down), so that the
content at pixel p of frame t is found at ``p + flow[:, p]`` in frame t+1.

Estimators take two ``uint8 H×W×3`` RGB frames and return that array. A ``scale`` below
1 estimates on frames resized by that factor (cheaper; RAFT at 1080p needs GBs), then
resizes the flow back and multiplies its vectors by ``1/scale``, so the units stay pixels
of the full frame.

Estimators: OpenCV's DIS (Kroeger et al., ECCV 2016; presets ``ultrafast``, ``fast``,
``medium``), Farnebäck (2003), and RAFT small/large from torchvision (:mod:`lexp.raft`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lexp.errors import UsageError
from lexp.flow_base import FlowEstimator  # noqa: F401 (re-exported: the estimators' base)

DIS_PRESETS = ("ultrafast", "fast", "medium")


class DISFlow(FlowEstimator):
    """OpenCV's Dense Inverse Search: fast, and good on textured motion."""

    def __init__(self, preset: str = "medium", scale: float = 1.0) -> None:
        if preset not in DIS_PRESETS:
            raise UsageError(f"unknown DIS preset {preset!r}", hint="ultrafast, fast or medium")
        super().__init__("dis", scale, {"preset": preset})

    def _estimate(self, ga, gb):
        import cv2

        preset = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
                  "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                  "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[self.params["preset"]]
        return cv2.DISOpticalFlow_create(preset).calc(ga, gb, None)


class FarnebackFlow(FlowEstimator):
    """Farnebäck's polynomial expansion: smooth, slower, no texture needed at fine scale."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__("farneback", scale, {"levels": 5, "winsize": 15, "iterations": 5,
                                              "poly_n": 7, "poly_sigma": 1.5})

    def _estimate(self, ga, gb):
        import cv2

        p = self.params
        return cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, p["levels"], p["winsize"],
                                            p["iterations"], p["poly_n"], p["poly_sigma"],
                                            cv2.OPTFLOW_FARNEBACK_GAUSSIAN)


ESTIMATORS = ("dis", "dis-fast", "dis-ultrafast", "farneback", "raft-small", "raft-large")


def make_estimator(name: str, *, scale: float = 1.0, device: str = "auto",
                   cache=None) -> FlowEstimator:
    """``dis`` (= ``dis-medium``), ``dis-fast``, ``dis-ultrafast``, ``farneback``,
    ``raft-small`` or ``raft-large`` (weights from the lexp cache ``cache``; ``device``
    applies to RAFT only)."""
    if name == "farneback":
        return FarnebackFlow(scale)
    if name == "dis" or name.startswith("dis-"):
        return DISFlow(name.split("-", 1)[1] if "-" in name else "medium", scale)
    if name in ("raft-small", "raft-large"):
        from lexp.raft import RAFTFlow

        return RAFTFlow(name, scale, device, cache=cache)
    raise UsageError(f"unknown flow estimator {name!r}", hint=", ".join(ESTIMATORS))


def auto_estimator(*, scale: float = 1.0, device: str = "auto", cache=None,
                   raft_on_cpu: bool = True) -> FlowEstimator:
    """The best estimator available: RAFT when its weights are in the cache (large on a
    GPU, small on a CPU, where large costs twice the time for a little accuracy), else
    DIS medium. ``raft_on_cpu=False`` keeps DIS on a CPU (renders: RAFT measured 0.22
    pairs/s at 720p there, DIS 16). Needs no torch unless RAFT weights are there."""
    from lexp import weights

    cached = [n for n in ("raft-large", "raft-small") if weights.is_cached(weights.get(n), cache)]
    if not cached:
        return DISFlow("medium", scale)
    from lexp import torch_env

    on_gpu = torch_env.resolve_device(device).type != "cpu"
    if not on_gpu and not raft_on_cpu:
        return DISFlow("medium", scale)
    name = cached[0] if on_gpu or len(cached) == 1 else cached[1]
    return make_estimator(name, scale=scale, device=device, cache=cache)


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


# --------------------------------------------------------------------------- clips


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
    from lexp.flow_cache import to_half

    started = time.perf_counter()
    hits0 = misses0 = damaged0 = 0
    clip_id = cache.clip_id(source) if cache is not None and source is not None and \
        source.paths else None
    if cache is not None:
        hits0, misses0, damaged0 = cache.hits, cache.misses, cache.damaged
    stats = {"motion": 0.0, "max": 0.0, "pixels": 0, "pairs": 0}
    pending: list[tuple] = []  # pairs to compute: (i, j, a, b, cache key or None)
    batch = None  # pairs per estimator call, decided at the first miss

    def emit(i: int, j: int, flow: np.ndarray) -> None:
        magnitude = np.sqrt(flow[0] ** 2 + flow[1] ** 2)
        stats["motion"] += float(magnitude.sum())
        stats["max"] = max(stats["max"], float(magnitude.max()))
        stats["pixels"] += magnitude.size
        stats["pairs"] += 1
        if on_flow is not None:
            on_flow(i, j, flow)

    def compute_pending() -> None:
        if not pending:
            return
        flows = estimator.pairs([(a, b) for _, _, a, b, _ in pending])
        for (i, j, _, _, key), flow in zip(pending, flows, strict=True):
            half = to_half(flow)  # as the cache keeps it: a warm run exports the same
            if key is not None:
                cache.put(key, half, {"estimator": estimator.key(), "pair": [i, j]})
            emit(i, j, half.astype(np.float32))
        pending.clear()

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
                    key = None
                    if clip_id is not None:
                        key = cache.key(clip_id, i, j, estimator.key(), (a.shape[1], a.shape[0]))
                        flow = cache.get(key)
                        if flow is not None:
                            compute_pending()  # keep flows in order for on_flow
                            emit(i, j, flow)
                            continue
                    pending.append((i, j, a, b, key))
                    if batch is None:
                        batch = estimator.batch_limit((a.shape[1], a.shape[0]))
                    if len(pending) >= batch:
                        compute_pending()
                if on_progress is not None:
                    on_progress(used, None)
            previous = (index, frame)
        compute_pending()
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


def cached_pair(estimator: FlowEstimator, cache, clip_id: str | None, i: int, j: int,
                a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The flow from frame ``i`` (``a``) to frame ``j`` (``b``), through the cache when there
    is one. Always rounded to float16 as the cache stores it, so a result is the same
    whether its flows were computed now or read back."""
    from lexp.flow_cache import to_half

    if cache is None or clip_id is None:
        return to_half(estimator.pair(a, b)).astype(np.float32)
    key = cache.key(clip_id, i, j, estimator.key(), (a.shape[1], a.shape[0]))
    flow = cache.get(key)
    if flow is None:
        half = to_half(estimator.pair(a, b))
        cache.put(key, half, {"estimator": estimator.key(), "pair": [i, j]})
        flow = half.astype(np.float32)
    return flow


# --------------------------------------------------------------------------- export


def flo_bytes(flow: np.ndarray) -> bytes:
    """Middlebury .flo: 'PIEH', width, height (int32), then u, v interleaved (float32)."""
    h, w = flow.shape[1:]
    header = np.array([202021.25], "<f4").tobytes() + np.array([w, h], "<i4").tobytes()
    return header + np.ascontiguousarray(flow.transpose(1, 2, 0), "<f4").tobytes()


def read_flo(path) -> np.ndarray:
    """A Middlebury .flo file as float32 (2, H, W)."""
    data = np.fromfile(path, np.uint8)
    if data[:4].tobytes() != b"PIEH":
        raise ValueError(f"{path} is not a .flo file")
    w, h = np.frombuffer(data[4:12].tobytes(), "<i4")
    return np.frombuffer(data[12:].tobytes(), "<f4").reshape(h, w, 2).transpose(2, 0, 1).copy()


def _colour_wheel() -> np.ndarray:
    """The Middlebury colour wheel (Baker et al. 2011): 55 hues, uint8 RGB."""
    segments = [(15, (255, 0, 0), (255, 255, 0)), (6, (255, 255, 0), (0, 255, 0)),
                (4, (0, 255, 0), (0, 255, 255)), (11, (0, 255, 255), (0, 0, 255)),
                (13, (0, 0, 255), (255, 0, 255)), (6, (255, 0, 255), (255, 0, 0))]
    rows = []
    for n, start, stop in segments:
        t = np.arange(n)[:, None] / n
        rows.append(np.asarray(start) * (1 - t) + np.asarray(stop) * t)
    return np.concatenate(rows)


_WHEEL = None


def flow_to_rgb(flow: np.ndarray, max_motion: float | None = None) -> np.ndarray:
    """Colour-code a (2, H, W) flow: hue = direction, saturation = speed (uint8 H×W×3).

    Magnitudes are divided by ``max_motion`` (default: this flow's largest, as in the
    Middlebury benchmark's images, but at least 1 px, so that a nearly static frame
    stays white instead of showing its noise at full colour).
    """
    global _WHEEL
    if _WHEEL is None:
        _WHEEL = _colour_wheel()
    u, v = flow[0].astype(np.float64), flow[1].astype(np.float64)
    radius = np.sqrt(u * u + v * v)
    scale = max_motion or max(float(radius.max()), 1.0)
    u, v, radius = u / scale, v / scale, radius / scale
    angle = np.arctan2(-v, -u) / np.pi  # -1..1
    position = (angle + 1) / 2 * (len(_WHEEL) - 1)
    k0 = np.floor(position).astype(int)
    k1 = (k0 + 1) % len(_WHEEL)
    f = (position - k0)[..., None]
    colour = ((1 - f) * _WHEEL[k0] + f * _WHEEL[k1]) / 255.0
    r = np.minimum(radius, 1.0)[..., None]
    colour = 1 - r * (1 - colour)  # white at rest, full colour at max_motion
    return np.rint(colour * 255).astype(np.uint8)


class FlowExporter:
    """Writes flows as they come: .flo files, colour PNGs, and/or a colour mp4.

    Exports appear whole or not at all. Files are written into a hidden staging folder
    inside each export folder and moved into place by :meth:`close` (renames within one
    folder, with Ctrl-C and SIGTERM held off until the last one); the video is committed
    there too. ``close(commit=False)`` removes everything this run wrote.
    """

    def __init__(self, flo_dir=None, image_dir=None, video=None, fps: float = 10.0) -> None:
        from pathlib import Path

        from lexp.media import VideoWriter

        self.flo_dir = Path(flo_dir) if flo_dir else None
        self.image_dir = Path(image_dir) if image_dir else None
        self.video = VideoWriter(video, fps) if video else None
        self._staging: dict = {}  # export folder -> its staging folder
        self._made: list = []  # export folders this run created (removed again on abort)
        for folder in (self.flo_dir, self.image_dir):
            if folder is not None and folder not in self._staging:
                if not folder.exists():
                    self._made.append(folder)
                self._staging[folder] = self._make_staging(folder)

    @staticmethod
    def _make_staging(folder):
        import os
        import tempfile

        from lexp.paths import describe_os_error

        try:
            folder.mkdir(parents=True, exist_ok=True)
            return type(folder)(tempfile.mkdtemp(prefix=f".lexp-partial-{os.getpid()}-",
                                                 dir=folder))
        except OSError as err:
            raise describe_os_error(err, folder) from err

    def __call__(self, i: int, j: int, flow: np.ndarray) -> None:
        import cv2

        from lexp.paths import write_bytes_atomic

        name = f"flow_{i:05d}_{j:05d}"
        if self.flo_dir is not None:
            write_bytes_atomic(self._staging[self.flo_dir] / f"{name}.flo", flo_bytes(flow))
        rgb = None
        if self.image_dir is not None:
            rgb = flow_to_rgb(flow)
            ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            write_bytes_atomic(self._staging[self.image_dir] / f"{name}.png", png.tobytes())
        if self.video is not None and i < j:  # forward flows only: one frame per step
            self.video.add(rgb if rgb is not None else flow_to_rgb(flow))

    def close(self, commit: bool = True) -> None:
        """Move everything into place (``commit``), or remove all of it."""
        import contextlib
        import shutil

        try:
            if self.video is not None:
                self.video.commit() if commit else self.video.abort()
            if commit:
                self._place()
        except BaseException:
            if self.video is not None and commit:
                self.video.path.unlink(missing_ok=True)
            raise
        finally:
            for staging in self._staging.values():
                shutil.rmtree(staging, ignore_errors=True)
            self._staging = {}
        if not commit:
            for folder in self._made:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only if empty: never what someone else put there

    def _place(self) -> None:
        """Rename the staged files into their folders, signals held off meanwhile."""
        import signal

        from lexp.paths import describe_os_error, replace_into

        held = {signal.SIGINT, signal.SIGTERM}
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            for folder, staging in self._staging.items():
                for item in sorted(staging.iterdir()):
                    try:
                        replace_into(item, folder / item.name)
                    except OSError as err:
                        raise describe_os_error(err, folder / item.name) from err
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
