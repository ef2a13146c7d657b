#!/usr/bin/env python3
"""Optical flow speed: pairs/s per estimator and resolution, and what the cache saves.

    .venv/bin/python scripts/bench_flow.py [--frames 120] [--raft-frames 9] [--runs 3]
                                           [--device auto] [--skip-cache]

pairs/s: ``lexp.flow.clip_flows`` over a real clip at each resolution, decoding included,
no cache; RAFT over the first RAFT_FRAMES frames only (it is ~100× slower on a CPU), on
DEVICE, with the real weights when they are in the lexp cache, else with randomly
initialised weights of the same architecture (the speed is the same; the output is
not meaningful, and the report says so). 640×360 is
../shared/clips/street_traffic_window_360p.mp4, 1280×720 is waterfall_autumn_720p.mp4
(synthetic night-street clips of those sizes when ../shared/clips is absent). Median
of RUNS.

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
ESTIMATORS = ("dis-ultrafast", "dis-fast", "dis", "farneback", "raft-small", "raft-large")


def raft_cache(name: str, workdir: Path) -> tuple[Path | None, str]:
    """(lexp cache holding weights for ``name``, what they are): the user's own cache when
    it has the real weights, else a scratch cache with random weights of that shape."""
    import json

    from lexp import weights

    if weights.is_cached(weights.get(name)):
        return None, "real weights"
    import torch

    from lexp import torch_env

    builder = getattr(torch_env.torchvision().models.optical_flow, name.replace("-", "_"))
    path = workdir / f"{name}-random.pth"
    torch.save(builder(weights=None).state_dict(), path)
    registry = workdir / f"{name}-registry.json"
    registry.write_text(json.dumps([{"name": name, "filename": path.name, "url": "",
                                     "sha256": None, "size": 0, "licence": "-", "used_by": "-"}]))
    os.environ["LEXP_REGISTRY"] = str(registry)
    cache = workdir / f"{name}-cache"
    weights.import_file(name, path, cache=cache)
    return cache, "random weights (speed only)"


def clip_for(size: str, frames: int, workdir: Path) -> Path:
    real = SHARED / CLIPS[size]
    if real.is_file():
        return real
    from lexp import synthetic

    w, h = (int(v) for v in size.split("x"))
    return synthetic.write_video(workdir / f"{size}.mp4", synthetic.night_street(w, h, frames))


def first_two_frames(path: Path) -> list:
    from lexp import media

    with media.open_clip(media.ClipSource(str(path), "video", (path,)), None) as clip:
        return [frame for _, frame in clip.frames(0, 2, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--raft-frames", type=int, default=9)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="auto", help="for RAFT")
    parser.add_argument("--only", help="comma-separated estimators (default: all)")
    parser.add_argument("--skip-cache", action="store_true", help="skip the cache timing")
    args = parser.parse_args()

    from lexp import flow
    from lexp.config import RenderConfig, Window
    from lexp.media import ClipSource

    config = RenderConfig(window=Window(max_frames=args.frames))
    raft_config = RenderConfig(window=Window(max_frames=args.raft_frames))
    names = args.only.split(",") if args.only else ESTIMATORS
    with tempfile.TemporaryDirectory(prefix="lexp-flow-bench-") as tmp:
        workdir = Path(tmp)
        print(f"pairs/s, decoding included, {args.frames} frames, median of {args.runs} "
              f"(cpus: {os.cpu_count()})")
        print(f"{'estimator':15s} " + " ".join(f"{s:>10s}" for s in CLIPS))
        paths = {size: clip_for(size, args.frames, workdir) for size in CLIPS}
        for name in names:
            cells, note, window = [], "", config
            cache = None
            if name.startswith("raft"):
                cache, what = raft_cache(name, workdir)
                window = raft_config
            for path in paths.values():
                est = flow.make_estimator(name, device=args.device, cache=cache)
                if name.startswith("raft"):
                    est.pair(*first_two_frames(path))  # loads torch and the model
                    note = f"  ({what}, {est.device}, {args.raft_frames} frames, warmed up)"
                rates = []
                for _ in range(args.runs):
                    run = flow.clip_flows(ClipSource(str(path), "video", (path,)), est, window)
                    rates.append(run.pairs / run.seconds)
                cells.append(f"{statistics.median(rates):10.2f}")
            label = "dis-medium" if name == "dis" else name
            print(f"{label:15s} " + " ".join(cells) + note, flush=True)
        if args.skip_cache:
            return

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
