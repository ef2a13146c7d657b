#!/usr/bin/env python3
"""Every fast path of the flow render against the exact render (DESIGN.md §3): the
shipped render (``-m flow``) and the reference (``--exact``: flow and every instant at
full size, a pixel of trail apart) on each case, scored against the truth.

    .venv/bin/python scripts/quality_guard.py [--sizes native,1080p] [--strides 4,8,16,32]
                                              [--protocols gap-fill,extrapolate]
                                              [--no-clips] [--no-synthetic] [--json PATH]
                                              [CLIP ...]

Cases:
- every clip of ../shared/clips (or those named) × size (native; scaled to 1080p with
  ffmpeg, Lanczos, near-lossless, so the motion grows with the size) × stride;
- synthetic worst cases made here: crisp-edged rectangles on a smooth ground moving
  10–60 px an interval at 0°, 30°, 60° and 90°, and a star field turning about a pole
  off the frame, each drawn every period at a pixel or two of motion, so the truth is
  a continuous blur.

Protocols at stride s (the clip's frames are the truth's):
- gap-fill: inputs every s-th frame from 0, eight of them (or as many as fit, at least
  three); the truth is the linear mean of every frame from the first input to the last;
- extrapolate: inputs 0, s, … 4s; the exposure is twice that window (at most the clip),
  and the truth its linear mean.

Each row: PSNR of the fast and the exact render against the truth, their difference
(fast − exact), the fast render against the exact one, and each one's time. The guard
holds when every difference is ≥ −0.2 dB and their median ≥ −0.05 dB (exit 0; else 1).
The exact render is slow by design (minutes a case at 1080p and stride 32 on 2 cores):
pick cases with the options.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "clips"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

WORST_DB, MEDIAN_DB = -0.2, -0.05  # the guard: fast − exact, every case and the median
SIZES = {"1080p": (1920, 1080)}


@dataclasses.dataclass
class Row:
    case: str
    size: str
    stride: int
    protocol: str
    fast_db: float
    exact_db: float
    fast_vs_exact_db: float
    fast_s: float
    exact_s: float

    @property
    def delta(self) -> float:
        return self.fast_db - self.exact_db


def protocol_inputs(protocol: str, count: int, stride: int) -> tuple[list[int], int] | None:
    """(input indices, truth end (exclusive)) for a clip of ``count`` frames, or None
    when it is too short."""
    if protocol == "gap-fill":
        inputs = min(8, (count - 1) // stride + 1)
        if inputs < 3:
            return None
        indices = [i * stride for i in range(inputs)]
        return indices, indices[-1] + 1
    window = 4 * stride + 1
    if count < window + 1:
        return None
    return [i * stride for i in range(5)], min(count, 2 * window)


def score_case(name: str, size: str, frames: list[np.ndarray], fps: float | None,
               strides: list[int], protocols: list[str]) -> list[Row]:
    from lexp import bench, colour, metrics

    lut = colour.decode_lut("srgb")
    fast, exact = bench.METHODS["flow"], bench.METHODS["flow-exact"]
    rows = []
    for stride in strides:
        for protocol in protocols:
            plan = protocol_inputs(protocol, len(frames), stride)
            if plan is None:
                continue
            indices, end = plan
            truth = colour.encode(np.mean([lut[f] for f in frames[:end]], axis=0,
                                          dtype=np.float64), "srgb")
            exposure = end if protocol == "extrapolate" else None
            images, times = [], []
            for method in (fast, exact):
                started = time.perf_counter()
                images.append(bench.run_method(method, frames[:end], fps, indices, exposure))
                times.append(time.perf_counter() - started)
            row = Row(name, size, stride, protocol, metrics.psnr(images[0], truth),
                      metrics.psnr(images[1], truth), metrics.psnr(images[0], images[1]),
                      *times)
            print(f"{name:44.44} {size:>7} {stride:>3} {protocol:>11} "
                  f"{row.fast_db:7.2f} {row.exact_db:7.2f} {row.delta:+6.2f} "
                  f"{row.fast_vs_exact_db:7.2f} {row.fast_s:7.1f} {row.exact_s:7.1f}",
                  flush=True)
            rows.append(row)
    return rows


def clip_frames(path: Path, size: str, count: int, workdir: Path):
    from bench_render_speed import scaled

    from lexp import media

    source = path if size == "native" else scaled(path, SIZES[size], count, workdir)
    with media.open_clip(media.ClipSource(str(source), "video", (Path(source),))) as clip:
        return [f.copy() for _, f in clip.frames(0, count)], clip.info.fps


# ---------------------------------------------------------------- synthetic cases

def _supersampled(draw, size: tuple[int, int], factor: int = 4) -> np.ndarray:
    """``draw(canvas, factor)`` on a canvas ``factor`` times larger, averaged down by
    area: crisp edges, anti-aliased as a camera's would be."""
    import cv2

    w, h = size
    canvas = np.zeros((h * factor, w * factor, 3), np.float32)
    draw(canvas, factor)
    small = cv2.resize(canvas, size, interpolation=cv2.INTER_AREA)
    return np.clip(small * 255 + 0.5, 0, 255).astype(np.uint8)


def moving_rectangles(speed: float, angle_deg: float, periods: int, size=(320, 240),
                      seed: int = 0) -> list[np.ndarray]:
    """Crisp rectangles on a smooth ground, the whole picture moving ``speed``/``periods``
    px a period at ``angle_deg`` (0 = right, 90 = down), as a pan or a sky of clouds
    does: 8 strides of ``periods`` periods."""
    import cv2

    rng = np.random.default_rng(seed)
    w, h = size
    margin = int(speed * 9) + 8
    boxes = [(rng.uniform(-margin, w + margin), rng.uniform(-margin, h + margin),
              rng.uniform(2, 28), rng.uniform(2, 28), rng.random(3)) for _ in range(90)]
    step = (speed / periods * math.cos(math.radians(angle_deg)),
            speed / periods * math.sin(math.radians(angle_deg)))

    def frame(t: int) -> np.ndarray:
        def draw(canvas, f):
            yy, xx = np.mgrid[0:canvas.shape[0], 0:canvas.shape[1]].astype(np.float32) / f
            xx -= np.float32(step[0] * t)  # the ground moves with the rectangles: a pan
            yy -= np.float32(step[1] * t)
            canvas[...] = np.stack([0.35 + 0.15 * np.sin(xx / 37 + yy / 53),
                                    0.30 + 0.10 * np.cos(xx / 41 - yy / 29),
                                    0.25 + 0.05 * np.sin(yy / 17)], -1)
            for x, y, bw, bh, colour in boxes:
                x0, y0 = (x + step[0] * t) * f, (y + step[1] * t) * f
                cv2.rectangle(canvas, (round(x0), round(y0)),
                              (round(x0 + bw * f), round(y0 + bh * f)),
                              [float(c) for c in colour], -1)
        return _supersampled(draw, size)

    return [frame(t) for t in range(periods * 8 + 1)]


def turning_stars(degrees_per_interval: float, periods: int, size=(320, 240),
                  seed: int = 1) -> list[np.ndarray]:
    """Stars 1–3 px across on a dark sky turning about a pole above the frame."""
    import cv2

    rng = np.random.default_rng(seed)
    w, h = size
    pole = (w * 0.5, -h * 0.6)
    radius = rng.uniform(h * 0.6, h * 1.9, 400)
    phase = rng.uniform(math.pi * 0.15, math.pi * 0.85, 400)
    spot = rng.uniform(0.4, 1.4, 400)
    bright = rng.uniform(0.3, 1.0, 400)
    step = math.radians(degrees_per_interval) / periods

    def frame(t: int) -> np.ndarray:
        def draw(canvas, f):
            canvas[...] = (0.02, 0.03, 0.06)
            for r, p, s, b in zip(radius, phase, spot, bright, strict=True):
                x, y = pole[0] + r * math.cos(p + step * t), pole[1] + r * math.sin(p + step * t)
                cv2.circle(canvas, (round(x * f), round(y * f)), max(1, round(s * f)),
                           (float(b), float(b), float(b * 0.9)), -1)
        return _supersampled(draw, size)

    return [frame(t) for t in range(periods * 8 + 1)]


def synthetic_cases() -> list[tuple[str, list[np.ndarray], int]]:
    """(name, dense frames, the stride that makes an interval the named motion)."""
    cases = []
    for speed in (10, 30, 60):
        periods = max(4, math.ceil(speed / 1.5))  # ~1.5 px a period: a continuous truth
        for angle in (0, 30, 60, 90):
            cases.append((f"synthetic rectangles {speed} px at {angle}°",
                          moving_rectangles(speed, angle, periods), periods))
    for degrees in (4, 12):  # about 8 and 25 px an interval at the frame's bottom
        periods = 8 if degrees == 4 else 16
        cases.append((f"synthetic stars {degrees}° an interval", turning_stars(degrees, periods),
                      periods))
    return cases


# ---------------------------------------------------------------- the guard

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path)
    parser.add_argument("--sizes", default="native,1080p")
    parser.add_argument("--strides", default="4,8,16,32")
    parser.add_argument("--protocols", default="gap-fill,extrapolate")
    parser.add_argument("--no-clips", action="store_true", help="synthetic cases only")
    parser.add_argument("--no-synthetic", action="store_true", help="clips only")
    parser.add_argument("--json", type=Path, help="also write the rows there")
    args = parser.parse_args()
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    strides = [int(s) for s in args.strides.split(",")]
    protocols = [p.strip() for p in args.protocols.split(",")]
    unknown = [s for s in sizes if s != "native" and s not in SIZES]
    if unknown or not set(protocols) <= {"gap-fill", "extrapolate"}:
        parser.error("sizes: native, 1080p; protocols: gap-fill, extrapolate")
    clips = [] if args.no_clips else (args.clips or sorted(SHARED.glob("*.mp4")))
    print(f"{'case':44} {'size':>7} {'s':>3} {'protocol':>11} {'fast':>7} {'exact':>7} "
          f"{'Δ dB':>6} {'f/e dB':>7} {'fast s':>7} {'exact s':>7}", flush=True)
    rows: list[Row] = []
    if not args.no_synthetic:
        for name, frames, stride in synthetic_cases():
            rows += score_case(name, "320×240", frames, 30.0, [stride], protocols)
    with tempfile.TemporaryDirectory(prefix="lexp-guard-") as tmp:
        need = 32 * 7 + 1
        for clip in clips:
            for size in sizes:
                frames, fps = clip_frames(clip, size, need, Path(tmp))
                rows += score_case(clip.name, size, frames, fps, strides, protocols)
                del frames
    if not rows:
        print("no case could be scored", file=sys.stderr)
        return 2
    deltas = [r.delta for r in rows]
    worst = min(rows, key=lambda r: r.delta)
    median = statistics.median(deltas)
    holds = worst.delta >= WORST_DB and median >= MEDIAN_DB
    print(f"\n{len(rows)} cases: fast − exact median {median:+.3f} dB, worst {worst.delta:+.3f} "
          f"({worst.case}, {worst.size}, stride {worst.stride}, {worst.protocol}); "
          f"time fast {sum(r.fast_s for r in rows):.0f} s, exact "
          f"{sum(r.exact_s for r in rows):.0f} s")
    print(f"guard (every case ≥ {WORST_DB} dB, median ≥ {MEDIAN_DB} dB): "
          f"{'holds' if holds else 'FAILS'}")
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(r) | {"delta": r.delta}
                                         for r in rows], indent=1))
    return 0 if holds else 1


if __name__ == "__main__":
    sys.exit(main())
