#!/usr/bin/env python3
"""The default render's speed at the sizes phones film: mean vs flow at 720p, 1080p and
4K on the same content, with each run's peak memory, in one run.

    .venv/bin/python scripts/bench_render_speed.py [--frames 120] [--sizes 720p,1080p,4k]
                                                   [--methods mean,flow] [--clip CLIP]
                                                   [--render-args "--device cuda"]
                                                   [--json PATH]

The content is ../shared/clips/street_traffic_window_360p.mp4 (real traffic; the
synthetic night street when ../shared/clips is absent, or --clip), scaled with ffmpeg
to each size, so motion grows with the size as it would on a phone (about 8 px a frame
at 360p is 25 at 1080p). Each cell is one ``lexp render`` process (``-m METHOD
--max-frames FRAMES``, an empty flow cache each time): its wall time, and its peak
resident memory (the kernel's ru_maxrss for that process alone). Ratios are to -m mean
at the same size, measured in this run, and frames a second (FRAMES / wall time, start-up
included). ``--render-args`` go to every render (a GPU: ``--device cuda --flow
raft-small``: RAFT's weights are taken from lexp's cache, the flows never are).
``--json PATH`` also writes the cells there (scripts/device_checks.py reads them).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from lexp import paths  # noqa: E402

SHARED_CLIP = REPO.parent / "shared" / "clips" / "street_traffic_window_360p.mp4"
SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}


def source_clip(given: str | None, workdir: Path, frames: int) -> Path:
    if given:
        return Path(given)
    if SHARED_CLIP.is_file():
        return SHARED_CLIP
    out = workdir / "night_street.mp4"
    subprocess.run([sys.executable, "-m", "lexp.synthetic", str(out), "--frames",
                    str(frames), "--size", "640x360"], check=True, cwd=REPO)
    return out


def scaled(clip: Path, size: tuple[int, int], frames: int, workdir: Path) -> Path:
    """The first FRAMES frames of CLIP at SIZE (Lanczos), near-lossless H.264."""
    from lexp.media import ffmpeg_exe

    out = workdir / f"{clip.stem}_{size[0]}x{size[1]}.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(clip), "-frames:v",
                    str(frames), "-vf", f"scale={size[0]}:{size[1]}:flags=lanczos",
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "16",
                    "-pix_fmt", "yuv420p", str(out)], check=True)
    return out


def timed_render(clip: Path, method: str, frames: int, workdir: Path,
                 extra: list[str]) -> tuple[float, float]:
    """(seconds, peak MB) of one ``lexp render`` process."""
    cache = Path(tempfile.mkdtemp(dir=workdir, prefix="cache-"))
    weights = paths.cache_dir() / "weights"  # RAFT's, when downloaded: flows start empty
    if weights.is_dir():  # copied: lexp refuses links out of its cache
        shutil.copytree(weights, cache / "weights")
    cmd = [sys.executable, "-m", "lexp", "--quiet", "render", str(clip), "-m", method,
           "--max-frames", str(frames), "-o", str(workdir / f"out-{method}.jpg"),
           "--overwrite", "--cache-dir", str(cache), *extra]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode})")
    return seconds, usage.ru_maxrss / 1024  # KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--sizes", default="720p,1080p,4k")
    parser.add_argument("--methods", default="mean,flow")
    parser.add_argument("--clip", help="the content (default: the shared street clip)")
    parser.add_argument("--render-args", default="", help="more lexp render options")
    parser.add_argument("--json", type=Path, help="also write the cells to this file")
    args = parser.parse_args()
    sizes = [s.strip().lower() for s in args.sizes.split(",")]
    methods = [m.strip() for m in args.methods.split(",")]
    with tempfile.TemporaryDirectory(prefix="lexp-speed-") as tmp:
        workdir = Path(tmp)
        clip = source_clip(args.clip, workdir, args.frames)
        print(f"content: {clip.name}, {args.frames} frames; machine: {os.cpu_count()} "
              "CPU cores", flush=True)
        rows = {}
        for size in sizes:
            copy = scaled(clip, SIZES[size], args.frames, workdir)
            rows[size] = {m: timed_render(copy, m, args.frames, workdir,
                                          shlex.split(args.render_args)) for m in methods}
            cells = "  ".join(f"{m} {s:7.2f} s ({args.frames / s:5.1f} fps) {mb:6.0f} MB"
                              for m, (s, mb) in rows[size].items())
            base = rows[size][methods[0]][0]
            ratios = "  ".join(f"{m}/{methods[0]} {rows[size][m][0] / base:6.1f}×"
                               for m in methods[1:])
            print(f"{size:>6}  {cells}  {ratios}", flush=True)
        if {"1080p", "4k"} <= set(rows):
            for m in methods:
                print(f"{m}: 4k/1080p {rows['4k'][m][0] / rows['1080p'][m][0]:.2f}×")
    if args.json:
        args.json.write_text(json.dumps({
            "content": clip.name, "frames": args.frames, "render_args": args.render_args,
            "cells": [{"size": size, "method": m, "seconds": s, "fps": args.frames / s,
                       "peak_mb": mb} for size, row in rows.items()
                      for m, (s, mb) in row.items()]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
