#!/usr/bin/env python3
"""What the flow render's working sizes cost in quality where they act: DESIGN.md §3's
protocols on ../shared/clips scaled up to a phone size, the render with working sizes
(lexp.renderers.resolution, as shipped) against the same render at full size throughout.

    .venv/bin/python scripts/quality_at_size.py [--size 1080p] [--protocol gap-fill]
                                                [CLIP ...]

Each clip's first 64 frames are scaled with ffmpeg (Lanczos, near-lossless H.264), so
its motion grows with the size; the truth is the linear mean of the scaled dense frames,
as for the clips themselves. Prints PSNR per clip and the medians, and the time of each.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "clips"
SIZES = {"1080p": (1920, 1080), "4k": (3840, 2160)}


def main() -> int:
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "scripts"))
    from bench_render_speed import scaled

    from lexp import bench
    from lexp.errors import LexpError
    from lexp.renderers import resolution

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*")
    parser.add_argument("--size", default="1080p", choices=sorted(SIZES))
    parser.add_argument("--protocol", default="gap-fill", choices=["gap-fill", "extrapolate"])
    args = parser.parse_args()
    clips = [Path(c) for c in args.clips] or sorted(SHARED.glob("*.mp4"))
    if not clips:
        print(f"no clips given and none in {SHARED}", file=sys.stderr)
        return 2
    methods = bench.resolve_methods("flow")
    protocol = bench.PROTOCOLS[args.protocol]
    shipped = (resolution.FULL_FLOW_SIDE, resolution.MAX_STEPS_PER_PERIOD)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="lexp-quality-") as tmp:
        for clip in clips:
            copy = scaled(clip, SIZES[args.size], 64, Path(tmp))
            scores = {}
            for name, (side, steps) in (("working", shipped), ("full", (10 ** 6, 1e9))):
                resolution.FULL_FLOW_SIDE, resolution.MAX_STEPS_PER_PERIOD = side, steps
                started = time.perf_counter()
                try:
                    report = bench.run_quality([str(copy)], methods, [protocol])
                except LexpError:  # too short for the protocol
                    break
                scores[name] = (report.scores[0].psnr, time.perf_counter() - started)
            resolution.FULL_FLOW_SIDE, resolution.MAX_STEPS_PER_PERIOD = shipped
            if len(scores) < 2:
                print(f"{clip.name}: too short for {args.protocol}", flush=True)
                continue
            rows[clip.name] = scores
            (w, tw), (f, tf) = scores["working"], scores["full"]
            print(f"{clip.name:45s} working {w:7.3f} dB {tw:6.1f} s   full {f:7.3f} dB "
                  f"{tf:6.1f} s   {w - f:+.3f} dB", flush=True)
    for name in ("working", "full"):
        print(f"median {name}: {statistics.median(r[name][0] for r in rows.values()):.3f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
