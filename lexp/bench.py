"""Speed and quality benchmarks: what each method costs, and what it gives.

Quality (see ../shared/DESIGN.md §3). The ground truth of a long exposure is the
linear-light mean of every frame over the exposure window. Two protocols:

- ``gap-fill``: the method sees K = 8 frames, every 8th (0, 8, ..., 56); the truth is the
  linear mean of frames 0..56. Clips shorter than 57 frames sit this one out.
- ``extrapolate``: the method sees the first 5 frames; the truth is the linear mean of
  frames 0..63 (or of every frame, for a shorter clip).

Each method is the product's own renderer (``renderers.stack_clip`` then ``renderers.finish``)
fed the protocol's frames, next to the baselines: the first frame, the 8-bit mean (code
values averaged, as naive tools do) and the linear mean. Scores (``lexp.metrics``):
PSNR over the frame, PSNR over the moving region, SSIM; per clip, the median over clips,
and the worst clip.

Speed: per stage on one clip (or a synthetic one), each next to the floor measured in the
same run: the bundled ffmpeg decoding the clip to rgb24 and discarding it. Stages: decode
(lexp's reader), each stacking method (frames already in memory), encode (JPEG, 16-bit
PNG), and the whole render per method. Every stage is warmed up once, then timed
``repeats`` times; the median is reported.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lexp import colour, media, metrics, renderers
from lexp.config import RenderConfig
from lexp.errors import InputError, UsageError
from lexp.media import ClipSource, MemoryClip

ProgressCallback = Callable[..., None]


# --------------------------------------------------------------------------- methods

@dataclass(frozen=True)
class Method:
    name: str  # as shown and as given to --methods
    config: RenderConfig | None  # the renderer's config; None = the first frame itself


METHODS: dict[str, Method] = {m.name: m for m in (
    # The three baselines: the first frame, the 8-bit mean, the linear mean.
    Method("first-frame", None),
    Method("mean-8bit", RenderConfig(method="mean", transfer="none")),
    Method("mean", RenderConfig(method="mean")),
    Method("median", RenderConfig(method="median")),
    Method("max", RenderConfig(method="max")),
    # Flow-guided integration (lexp.renderers.flow) with DIS medium, no flow cache.
    Method("flow", RenderConfig(method="flow", flow="dis")),
    # Its reference: flow and every instant at full size, a pixel of trail apart (slow).
    Method("flow-exact", RenderConfig(method="flow", flow="dis", exact=True)),
    # The generator (lexp.renderers.learned) on that flow render: the shipped lexp checkpoint, and
    # the seed architecture trained with the same data and budget.
    # Both score the network itself: a render falls back to the flow render where the
    # checkpoint measured below it, and that measurement is made here.
    Method("learned", RenderConfig(method="learned", flow="dis", learned_fallback=False)),
    Method("learned-seed", RenderConfig(method="learned", flow="dis", checkpoint="seed",
                                        learned_fallback=False)),
)}
DEFAULT_METHODS = ("first-frame", "mean-8bit", "mean", "median", "flow")


def resolve_methods(names: str | None, checkpoint: str | None = None) -> list[Method]:
    """The methods named (comma-separated); ``checkpoint`` replaces ``learned``'s."""
    chosen = [n.strip() for n in names.split(",")] if names else list(DEFAULT_METHODS)
    unknown = [n for n in chosen if n not in METHODS]
    if unknown:
        raise UsageError(f"unknown method {unknown[0]!r} for bench",
                         hint="choose from: " + ", ".join(METHODS))
    methods = [METHODS[n] for n in chosen]
    if checkpoint is not None:
        if "learned" not in chosen:
            raise UsageError("--checkpoint is for the learned method",
                             hint="add learned to --methods")
        from lexp import checkpoint as checkpoints

        checkpoints.load_network(checkpoints.resolve(checkpoint))  # fail before any work
        methods = [Method(m.name, dataclasses.replace(m.config, checkpoint=checkpoint))
                   if m.name == "learned" else m for m in methods]
    return methods


def run_method(method: Method, frames: list[np.ndarray], fps: float | None,
               indices: list[int] | None = None, exposure: int | None = None) -> np.ndarray:
    """The method's image for ``frames[i] for i in indices`` (default: all of them), as an
    exposure of ``exposure`` frames from the first (default: up to the last index):
    encoded float32 H×W×3 in [0, 1]. Methods see only the chosen frames; flow is told
    their frame numbers (a stride) and the exposure, so it knows the time between them
    and how far to extrapolate."""
    indices = list(range(len(frames))) if indices is None else indices
    if method.config is None:
        return frames[indices[0]].astype(np.float32) / 255.0
    config = method.config
    if config.method in ("flow", "learned"):
        from lexp.config import TimeSpec, Window

        steps = {b - a for a, b in zip(indices, indices[1:], strict=False)} or {1}
        if len(steps) != 1:
            raise UsageError("flow in bench needs evenly spaced frames")
        chosen = {i: frames[i] for i in indices}
        sparse = [chosen.get(i, frames[indices[0]]) for i in range(indices[-1] + 1)]
        config = dataclasses.replace(
            config, window=Window(end=TimeSpec(float(indices[-1] + 1), "f"),
                                  stride=steps.pop()),
            exposure=TimeSpec(float(exposure), "f") if exposure else None)
        result = renderers.render_clip(MemoryClip(sparse, fps), config)
        return renderers.finish(result.linear, renderers.for_clip(config, result.clip))
    stacked = renderers.stack_clip(MemoryClip([frames[i] for i in indices], fps), config)
    return renderers.finish(stacked.linear, config)


# --------------------------------------------------------------------------- quality

@dataclass(frozen=True)
class Protocol:
    name: str
    inputs: Callable[[int], list[int] | None]  # frame count -> input indices (None: skip)
    truth_end: Callable[[int], int]  # frame count -> end (exclusive) of the truth window
    frames_needed: int  # frames to decode from the clip's start


PROTOCOLS: dict[str, Protocol] = {
    "gap-fill": Protocol("gap-fill", lambda n: list(range(0, 57, 8)) if n >= 57 else None,
                         lambda n: 57, 57),
    "extrapolate": Protocol("extrapolate", lambda n: list(range(5)) if n >= 5 else None,
                            lambda n: min(64, n), 64),
}


@dataclass
class Score:
    clip: str  # the clip's file name
    protocol: str  # gap-fill | extrapolate
    method: str  # the method's name
    psnr: float  # dB over the whole frame
    psnr_moving: float  # dB over the moving region (NaN if nothing moves)
    ssim: float  # mean SSIM


@dataclass
class QualityReport:
    scores: list[Score] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (clip, protocol, why)
    thumbnails: dict = field(default_factory=dict)  # (clip, protocol) -> {column: image}
    clips: list[str] = field(default_factory=list)  # every clip tried, scored or not

    def summary(self) -> list[dict]:
        """Per protocol and method: medians over clips and the worst clip."""
        rows = []
        order = {name: i for i, name in enumerate(PROTOCOLS)}
        keys = sorted(dict.fromkeys((s.protocol, s.method) for s in self.scores),
                      key=lambda k: order.get(k[0], len(order)))
        for protocol, method in keys:
            mine = [s for s in self.scores if (s.protocol, s.method) == (protocol, method)]
            worst = min(mine, key=lambda s: s.psnr)
            moving = [s.psnr_moving for s in mine if not np.isnan(s.psnr_moving)]
            rows.append({
                "protocol": protocol, "method": method, "clips": len(mine),
                "psnr_median": statistics.median(s.psnr for s in mine),
                "psnr_moving_median": statistics.median(moving) if moving else float("nan"),
                "ssim_median": statistics.median(s.ssim for s in mine),
                "worst_clip": worst.clip, "worst_psnr": worst.psnr})
        return rows

    def to_json(self) -> dict:
        return {"summary": self.summary(), "scores": [asdict(s) for s in self.scores],
                "skipped": [{"clip": c, "protocol": p, "why": w} for c, p, w in self.skipped]}


def clips_in(paths: list[str]) -> list[ClipSource]:
    """The clips named, as ``lexp render`` reads its inputs (lexp.inputs): videos,
    folders of videos or of frames, globs."""
    from lexp.inputs import resolve_inputs

    return resolve_inputs(paths)


def run_quality(paths: list[str], methods: list[Method], protocols: list[Protocol], *,
                thumb_width: int = 0, on_progress: ProgressCallback | None = None
                ) -> QualityReport:
    report = QualityReport()
    clips = clips_in(paths)
    lut = colour.decode_lut("srgb")
    for number, source in enumerate(clips):
        name = Path(source.name).name
        report.clips.append(name)
        needed = max(p.frames_needed for p in protocols)
        try:
            with media.open_clip(source) as clip:
                frames = [media.to_8bit(f) for _, f in clip.frames(0, needed)]  # (8-bit truth)
                fps = clip.info.fps
        except InputError as err:  # one unreadable clip does not void the others' scores
            report.skipped += [(name, p.name, err.message) for p in protocols]
            if on_progress is not None:
                on_progress(number + 1, len(clips))
            continue
        for protocol in protocols:
            indices = protocol.inputs(len(frames))
            if not frames or indices is None:
                report.skipped.append((name, protocol.name,
                                       f"{len(frames)} frames is too short"))
                continue
            window = frames[:protocol.truth_end(len(frames))]
            truth_linear = np.mean([lut[f] for f in window], axis=0, dtype=np.float64)
            truth = colour.encode(truth_linear, "srgb")
            first = frames[0].astype(np.float32) / 255.0
            moving = metrics.moving_mask(truth, first)
            shown = {}
            for method in methods:
                image = run_method(method, frames, fps, indices, len(window))
                report.scores.append(Score(name, protocol.name, method.name,
                                           metrics.psnr(image, truth),
                                           metrics.psnr(image, truth, moving),
                                           metrics.ssim(image, truth)))
                if thumb_width:
                    shown[method.name] = _thumbnail(image, thumb_width)
            if thumb_width:
                lead = {} if "first-frame" in shown else {
                    "first frame": _thumbnail(first, thumb_width)}
                report.thumbnails[(name, protocol.name)] = {
                    **lead, **shown, "truth": _thumbnail(truth, thumb_width)}
        if on_progress is not None:
            on_progress(number + 1, len(clips))
    if not report.scores:
        reasons = "; ".join(dict.fromkeys(f"{c}: {why}" for c, _, why in report.skipped))
        raise InputError(f"no clip could be scored ({reasons})",
                         hint="the protocols need 57 (gap-fill) or 64 (extrapolate) frames")
    return report


def _thumbnail(image: np.ndarray, width: int) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    small = cv2.resize(np.asarray(image, np.float32), (width, max(1, round(h * width / w))),
                       interpolation=cv2.INTER_AREA)
    return np.clip(np.rint(small * 255), 0, 255).astype(np.uint8)


def contact_sheet(report: QualityReport, path: str | Path) -> None:
    """Rows = (clip, protocol), columns = first frame, each method, truth; written atomically."""
    import cv2

    from lexp.paths import write_bytes_atomic

    if not report.thumbnails:
        raise InputError("nothing to put on a contact sheet")
    rows = []
    for (clip, protocol), tiles in report.thumbnails.items():
        width = max(t.shape[1] for t in tiles.values())
        height = max(t.shape[0] for t in tiles.values())
        cells = []
        for label, tile in tiles.items():
            cell = np.zeros((height + 22, width, 3), np.uint8)
            cell[22:22 + tile.shape[0], :tile.shape[1]] = tile
            cv2.putText(cell, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                        cv2.LINE_AA)
            cells.append(cell)
        row = np.concatenate(cells, axis=1)
        title = np.zeros((20, row.shape[1], 3), np.uint8)
        cv2.putText(title, f"{clip} ({protocol})", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (200, 200, 120), 1, cv2.LINE_AA)
        rows.append(np.concatenate([title, row], axis=0))
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows])
    ok, data = cv2.imencode(sheet_suffix(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise UsageError(f"cannot write a contact sheet as {path}", hint="use a .png or .jpg name")
    write_bytes_atomic(path, data.tobytes())


SHEET_SUFFIXES = (".png", ".jpg", ".jpeg")


def sheet_suffix(path: str | Path) -> str:
    """The contact sheet's image type from its name (.png when it has no suffix); a name
    it cannot be written as is a UsageError, raised before any clip is scored."""
    suffix = Path(path).suffix.lower() or ".png"
    if suffix not in SHEET_SUFFIXES:
        raise UsageError(f"--sheet {path}: a contact sheet is written as PNG or JPEG",
                         hint="use a .png or .jpg name")
    return suffix


# --------------------------------------------------------------------------- speed

@dataclass
class Stage:
    stage: str  # what was timed
    seconds: float  # median wall time
    frames: int  # frames it processed (0 for per-image stages)
    ratio_to_floor: float | None  # frames/s relative to decoding to rgb24 (1.0 = as fast)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.frames and self.seconds else 0.0


@dataclass
class SpeedReport:
    clip: str
    width: int
    height: int
    frames: int
    device: str
    dtype: str
    repeats: int
    peak_rss_mb: float
    stages: list[Stage]

    def to_json(self) -> dict:
        d = asdict(self)
        for stage, obj in zip(d["stages"], self.stages, strict=True):
            stage["fps"] = obj.fps
            stage["ms_per_frame"] = 1000 * obj.seconds / obj.frames if obj.frames else None
        return d


def _median_time(work: Callable[[], object], repeats: int) -> float:
    work()  # warm-up: page cache, lazy imports, allocator
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def resolve_speed_clip(spec: str, workdir: Path) -> ClipSource:
    """The clip --speed names: a video, a folder (or quoted glob) of frames, RAW ones
    included, ``synthetic:WxHxN`` (the night street, encoded into workdir) or
    ``synthetic-raw:WxHxN`` (the same street as N DNG frames in its linear light)."""
    kind, _, size = spec.partition(":")
    if kind in ("synthetic", "synthetic-raw") and size:
        from lexp import synthetic

        try:
            w, h, n = (int(v) for v in size.lower().split("x"))
        except ValueError:
            w = h = n = 0
        # H.264 4:2:0 and RGGB mosaics want even sizes; 8K and 10,000 frames bound the
        # time and the memory.
        if not (16 <= w <= 7680 and 16 <= h <= 4320 and w % 2 == h % 2 == 0 and
                2 <= n <= 10_000):
            raise UsageError(f"--speed {spec!r} is not a synthetic clip lexp makes",
                             hint="synthetic:WxHxN (a video) or synthetic-raw:WxHxN (DNG "
                                  "frames) with even W, H from 16 to 7680x4320 and 2 to "
                                  "10000 frames, e.g. synthetic:1280x720x300")
        if kind == "synthetic":
            path = synthetic.write_video(workdir / f"synthetic_{w}x{h}x{n}.mp4",
                                         synthetic.night_street(w, h, n))
            return ClipSource(str(path), "video", (path,))
        files = tuple(synthetic.write_dng(workdir / f"IMG_{i:04d}.DNG",
                                          colour.decode(frame / 255.0, "srgb"))
                      for i, frame in enumerate(synthetic.night_street(w, h, n)))
        return ClipSource(f"synthetic_raw_{w}x{h}x{n}", "frames", files)
    path = Path(spec)
    media.refuse_special_file(path)
    if path.is_file() and not media.is_image(path):
        return ClipSource(str(path), "video", (path,))
    sources = clips_in([spec])
    if len(sources) != 1:
        raise UsageError(f"--speed {spec!r} holds {len(sources)} clips",
                         hint="time one: a video, or one folder of frames")
    return sources[0]


def _floor(source: ClipSource, frames: int) -> tuple[str, Callable[[], object]]:
    """What the speed is measured against, and the work: for a video, the bundled ffmpeg
    decoding it to rgb24 and discarding it; for frames, each file decoded alone, one
    after another, by its own library (libraw through rawpy for RAW files, with lexp's
    development, the first frame's white balance; OpenCV or libheif for the others)."""
    if source.kind == "video":
        command = [media.ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(source.paths[0]),
                   "-map", "0:v:0", "-frames:v", str(frames), "-f", "rawvideo", "-pix_fmt",
                   "rgb24", "-y", os.devnull]
        return "floor: ffmpeg decode to rgb24", lambda: subprocess.run(command, check=True)
    from lexp.media import camera_files

    files = source.paths[:frames]
    if camera_files.is_raw(files[0]):
        white = camera_files.raw_white_balance(files[0])
        return "floor: rawpy develops each file alone", \
            lambda: [camera_files.read_raw(f, white) for f in files]
    return "floor: each file decoded alone", lambda: [media.read_image(f) for f in files]


def run_speed(spec: str, methods: list[Method], *, repeats: int = 3, max_frames: int = 300,
              on_progress: ProgressCallback | None = None) -> SpeedReport:
    import resource

    from lexp import batch, jobs, stills
    from lexp.config import OutputConfig, Window

    methods = [m for m in methods if m.config is not None]
    from lexp.paths import scratch_name, sweep_leftovers

    sweep_leftovers()  # folders of runs that were killed
    with tempfile.TemporaryDirectory(prefix=scratch_name("bench")) as tmp:
        source = resolve_speed_clip(spec, Path(tmp))

        def decode() -> int:
            """Stream the frames as a render does (one reused buffer), keeping none."""
            with media.open_clip(source) as clip:
                return sum(1 for _ in clip.frames(0, max_frames, reuse_buffer=True))

        with media.open_clip(source) as clip:  # the stacking stages start from memory
            frames = [f for _, f in clip.frames(0, max_frames)]
            # RAW frames are linear light already: stacked as the render stacks them
            linear = clip.info.transfer_tag == "linear"
        n = len(frames)
        if n == 0:
            raise InputError(f"no frames in {source.name}")
        floor_name, floor_work = _floor(source, n)
        stages: list[Stage] = []
        steps = 3 + 2 * len(methods)

        def add(name: str, seconds: float, count: int) -> None:
            stages.append(Stage(name, seconds, count, None))
            if on_progress is not None:
                on_progress(len(stages), steps)

        add(floor_name, _median_time(floor_work, repeats), n)
        add("decode (lexp reader)", _median_time(decode, repeats), n)
        for m in methods:
            config = dataclasses.replace(m.config, transfer="linear") if linear else m.config
            add(f"{'integrate' if m.config.method == 'flow' else 'stack'} {m.name} "
                "(frames in memory)",
                _median_time(lambda c=config: renderers.render_clip(MemoryClip(frames), c),
                             repeats), n)
        image = run_method(methods[0], frames, None) if methods else frames[0] / 255.0
        add("encode JPEG q95", _median_time(lambda: stills.encode_image(image, "jpeg"),
                                            repeats), 0)
        for m in methods:
            job = jobs.Job(source, os.path.join(tmp, "out.jpg"), "jpeg", 8)
            cfg = dataclasses.replace(m.config, window=Window(max_frames=n))
            add(f"render {m.name} (decode → jpeg)",
                _median_time(lambda cfg=cfg, job=job: batch.render_image(
                    job, cfg, OutputConfig(), flow_cache=False), repeats), n)
    floor_fps = n / stages[0].seconds
    for s in stages:
        if s.frames:
            s.ratio_to_floor = s.fps / floor_fps
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    height, width = frames[0].shape[:2]
    return SpeedReport(Path(source.name).name, width, height, n, "cpu", "float32", repeats,
                       peak, stages)
