#!/usr/bin/env python3
"""Optical flow speed: pairs/s per estimator and resolution, and what the cache saves.

    .venv/bin/python scripts/bench_flow.py [--frames 120] [--runs 3]

pairs/s: ``lexp.flow.clip_flows`` over a real clip at each resolution, decoding included,
no cache; 640×360 is ../shared/clips/street_traffic_window_360p.mp4, 1280×720 is
waterfall_autumn_720p.mp4 (synthetic night-street clips of those sizes when
../shared/clips is absent). Median of RUNS.

cache: the whole ``lexp flow CLIP`` process with DIS medium on the 720p clip, cold (an
empty cache) and warm (the cache it filled); median of RUNS, each cold run in a fresh
cache folder.
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
CLIPS = {"640x360": "street_traffic_window_360p.mp4", "1280x720": "waterfall_autumn_720p.mp4"}
ESTIMATORS = ("dis-ultrafast", "dis-fast", "dis", "farneback")


def clip_for(size: str, frames: int, workdir: Path) -> Path:
    real = SHARED / CLIPS[size]
    if real.is_file():
        return real
    from lexp import synthetic

    w, h = (int(v) for v in size.split("x"))
    return synthetic.write_video(workdir / f"{size}.mp4", synthetic.night_street(w, h, frames))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from lexp import flow
    from lexp.config import RenderConfig, Window
    from lexp.media import ClipSource

    config = RenderConfig(window=Window(max_frames=args.frames))
    with tempfile.TemporaryDirectory(prefix="lexp-flow-bench-") as tmp:
        workdir = Path(tmp)
        print(f"pairs/s, decoding included, {args.frames} frames, median of {args.runs} "
              f"(cpus: {os.cpu_count()})")
        print(f"{'estimator':15s} " + " ".join(f"{s:>10s}" for s in CLIPS))
        paths = {size: clip_for(size, args.frames, workdir) for size in CLIPS}
        for name in ESTIMATORS:
            cells = []
            for path in paths.values():
                est = flow.make_estimator(name)
                rates = []
                for _ in range(args.runs):
                    run = flow.clip_flows(ClipSource(str(path), "video", (path,)), est, config)
                    rates.append(run.pairs / run.seconds)
                cells.append(f"{statistics.median(rates):10.1f}")
            label = "dis-medium" if name == "dis" else name
            print(f"{label:15s} " + " ".join(cells))

        clip = paths["1280x720"]
        cold, warm = [], []
        for n in range(args.runs):
            env = {**os.environ, "LEXP_CACHE_DIR": str(workdir / f"cache{n}")}
            cmd = [sys.executable, "-m", "lexp", "-q", "flow", str(clip), "--method", "dis"]
            for bucket in (cold, warm):
                started = time.perf_counter()
                subprocess.run(cmd, check=True, env=env)
                bucket.append(time.perf_counter() - started)
        c, w = statistics.median(cold), statistics.median(warm)
        print(f"\nlexp flow {clip.name} (dis-medium, whole process): cold {c:.2f} s, "
              f"warm {w:.2f} s: {c / w:.1f}x faster with the cache")


if __name__ == "__main__":
    main()
