#!/usr/bin/env python3
"""A followed exposure's memory stays flat however long it runs (issue 42): the peak
resident memory of ``lexp render - --follow`` fed N and 10·N frames of a synthetic
stream (ffmpeg's testsrc2, lossless FFV1 in Matroska, piped), with its wall time, in one
run.

    .venv/bin/python scripts/bench_follow.py [--frames 500] [--size 320x180]
                                             [--methods mean,max]

Each cell is one wrapper process that pipes the stream into one lexp process and reads
the kernel's ru_maxrss of its children (lexp, and the ffmpeg processes on both ends:
lexp's is the largest), so cells do not share a peak.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CELL = r"""
import resource, subprocess, sys
ffmpeg, frames, size, method, out = sys.argv[1:6]
source = subprocess.Popen([ffmpeg, "-v", "error", "-f", "lavfi", "-i",
                           f"testsrc2=size={size}:rate=30", "-frames:v", frames, "-c:v",
                           "ffv1", "-f", "matroska", "-"], stdout=subprocess.PIPE)
lexp = subprocess.run([sys.executable, "-m", "lexp", "-q", "render", "-", "--follow",
                       "-m", method, "-o", out, "--preview-every", "100f", "--overwrite"],
                      stdin=source.stdout, check=True)
source.wait()
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--size", default="320x180", help="WIDTHxHEIGHT")
    parser.add_argument("--methods", default="mean,max")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from lexp.media import ffmpeg_exe

    print(f"| method | frames | wall s | peak MB | peak vs {args.frames} frames |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="lexp-bench-follow-") as tmp:
        for method in args.methods.split(","):
            base = None
            for frames in (args.frames, 10 * args.frames):
                started = time.perf_counter()
                peak_kb = int(subprocess.run(
                    [sys.executable, "-c", CELL, ffmpeg_exe(), str(frames), args.size, method,
                     str(Path(tmp) / f"{method}.png")], cwd=REPO, check=True,
                    capture_output=True, text=True).stdout.split()[-1])
                wall = time.perf_counter() - started
                base = base or peak_kb
                print(f"| {method} | {frames} | {wall:.1f} | {peak_kb / 1024:.1f} | "
                      f"{peak_kb / base:.3f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
