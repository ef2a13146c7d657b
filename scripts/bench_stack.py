#!/usr/bin/env python3
"""Benchmarks for stacking: speed against the decode floor, memory, and accuracy.

    .venv/bin/python scripts/bench_stack.py speed    [CLIP] [--runs 7] [--methods mean,max]
    .venv/bin/python scripts/bench_stack.py memory   [CLIP] [--loops 10]
    .venv/bin/python scripts/bench_stack.py accuracy [CLIPS_DIR]

speed:    the whole ``lexp render`` process (start-up, decoding, stacking, encoding,
          writing) against the floor: the bundled ffmpeg decoding the same clip to rgb24
          and discarding it. Runs alternate (floor, lexp, floor, ...) so that machine
          noise hits both alike; medians are compared. ratio = floor time / lexp time
          (1.0 = as fast as decoding alone).
memory:   peak RSS of ``lexp render`` on a clip looped LOOPS times (remuxed, no
          re-encode) against the same clip once, per method.
accuracy: per clip, the mean render (before 8-bit quantisation) against a float64
          reference decoded by the other decoder (the ffmpeg pipe); the largest
          difference, in 1/255 steps of the encoded image.

Default clip: ../shared/clips/waterfall_autumn_720p.mp4 (the issue's benchmark clip).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "clips"
DEFAULT_CLIP = SHARED / "waterfall_autumn_720p.mp4"


def run_measured(cmd: list[str]) -> tuple[float, int, int]:
    """(wall seconds, peak RSS in MiB, exit code) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    err = proc.stderr.read().decode()
    proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"command failed ({code}): {' '.join(cmd)}\n{err}")
    return wall, usage.ru_maxrss // 1024, code


def lexp_cmd(clip: Path, out: Path, method: str) -> list[str]:
    return [sys.executable, "-m", "lexp", "-q", "render", str(clip), "-o", str(out),
            "--method", method, "--overwrite"]


def floor_cmd(clip: Path) -> list[str]:
    from lexp.media import ffmpeg_exe

    return [ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(clip), "-map", "0:v:0",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-y", "/dev/null"]


def speed(args) -> None:
    clip = Path(args.clip)
    methods = args.methods.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.jpg"
        run_measured(floor_cmd(clip))  # warm the page cache and the binaries
        run_measured(lexp_cmd(clip, out, methods[0]))
        floors: list[float] = []
        times: dict[str, list[float]] = {m: [] for m in methods}
        for _ in range(args.runs):
            for method in methods:
                floors.append(run_measured(floor_cmd(clip))[0])
                times[method].append(run_measured(lexp_cmd(clip, out, method))[0])
    floor = statistics.median(floors)
    print(f"clip: {clip.name}   runs: {args.runs} each, interleaved   cpus: {os.cpu_count()}")
    print(f"{'what':28s} {'median s':>9s} {'min s':>7s} {'ratio':>6s}")
    print(f"{'ffmpeg decode to rgb24':28s} {floor:9.3f} {min(floors):7.3f} {1.0:6.2f}")
    for method, ts in times.items():
        med = statistics.median(ts)
        print(f"{'lexp render --method ' + method:28s} {med:9.3f} {min(ts):7.3f} "
              f"{floor / med:6.2f}")


def memory(args) -> None:
    from lexp.media import ffmpeg_exe

    clip = Path(args.clip)
    with tempfile.TemporaryDirectory() as tmp:
        looped = Path(tmp) / f"looped{clip.suffix}"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-stream_loop", str(args.loops - 1),
                        "-i", str(clip), "-c", "copy", "-y", str(looped)], check=True)
        from lexp import media

        counts = []
        for path in (clip, looped):
            with media.open_clip(media.ClipSource(str(path), "video", (path,))) as c:
                counts.append(sum(1 for _ in c.frames(reuse_buffer=True)))
        out = Path(tmp) / "out.jpg"
        print(f"clip: {clip.name}: {counts[0]} frames; looped: {counts[1]} frames")
        print(f"{'method':8s} {'short MiB':>10s} {'long MiB':>9s} {'long/short':>10s}")
        for method in args.methods.split(","):
            short = run_measured(lexp_cmd(clip, out, method))[1]
            long = run_measured(lexp_cmd(looped, out, method))[1]
            print(f"{method:8s} {short:10d} {long:9d} {long / short:10.2f}")


def accuracy(args) -> None:
    import numpy as np

    from lexp import colour, media, renderers
    from lexp.config import RenderConfig

    clips = sorted(Path(args.clips).glob("*.mp4"))
    worst_all = 0.0
    print(f"{'clip':42s} {'frames':>6s} {'max |diff| (1/255)':>19s}")
    for path in clips:
        total, n = None, 0
        with media.VideoClip(str(path), path.name) as clip:
            for _, frame in clip.frames(reuse_buffer=True):
                linear = colour.decode(frame / 255.0, "srgb")
                total = linear if total is None else total + linear
                n += 1
        want = colour.encode(total / n, "srgb").astype(np.float64)
        with media.open_clip(media.ClipSource(str(path), "video", (path,))) as clip:
            stacked = renderers.stack_clip(clip, RenderConfig())
        got = renderers.finish(stacked.linear, RenderConfig()).astype(np.float64)
        worst = float(np.abs(got - want).max() * 255)
        worst_all = max(worst_all, worst)
        print(f"{path.name:42s} {n:6d} {worst:19.5f}")
    print(f"worst over {len(clips)} clips: {worst_all:.5f} / 255 (target: < 0.5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("speed")
    p.add_argument("clip", nargs="?", default=str(DEFAULT_CLIP))
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--methods", default="mean,max")
    p = sub.add_parser("memory")
    p.add_argument("clip", nargs="?", default=str(DEFAULT_CLIP))
    p.add_argument("--loops", type=int, default=10)
    p.add_argument("--methods", default="mean,max,min,median")
    p = sub.add_parser("accuracy")
    p.add_argument("clips", nargs="?", default=str(SHARED))
    args = parser.parse_args()
    {"speed": speed, "memory": memory, "accuracy": accuracy}[args.what](args)


if __name__ == "__main__":
    main()
