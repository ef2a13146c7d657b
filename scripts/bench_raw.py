#!/usr/bin/env python3
"""How long a RAW burst takes to render against developing its frames alone (issue 41).

Writes N synthetic DNGs (``lexp.synthetic.write_dng``: a textured field drifting a few
pixels a frame) into a temporary folder, then, in one run: develops them one after
another with rawpy (lexp's settings, the first frame's white balance), renders the
folder with ``-m mean`` through the API (auto's drift check included) and again with
``align=False`` (without it), and prints the times and ratios, with the peak memory of
the render in a child process for N and 4N frames.

    .venv/bin/python scripts/bench_raw.py                 # 30 frames of 3000x2000
    .venv/bin/python scripts/bench_raw.py --frames 60 --size 6000x4000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--size", default="3000x2000", help="WIDTHxHEIGHT (even)")
    parser.add_argument("--memory", action="store_true",
                        help="also the render's peak memory at N and 4N frames")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    import numpy as np

    import lexp
    from lexp import synthetic
    from lexp.media.camera_files import raw_white_balance, read_raw

    with tempfile.TemporaryDirectory(prefix="lexp-bench-raw-") as tmp:
        folder = Path(tmp)
        base = np.random.default_rng(0).random((height, width, 3)) * 0.8
        count = args.frames * (4 if args.memory else 1)
        for i in range(count):
            synthetic.write_dng(folder / f"IMG_{i:04d}.DNG", np.roll(base, 5 * i, axis=1))
        files = sorted(folder.glob("*.DNG"))[:args.frames]
        burst = folder / "burst"
        burst.mkdir()
        for f in files:
            f.rename(burst / f.name)
        white = raw_white_balance(burst / files[0].name)
        started = time.perf_counter()
        for f in sorted(burst.iterdir()):
            read_raw(f, white)
        alone = time.perf_counter() - started
        started = time.perf_counter()
        lexp.render(burst, method="mean", cache=False)
        render = time.perf_counter() - started
        started = time.perf_counter()
        lexp.render(burst, method="mean", cache=False, align=False)
        steady = time.perf_counter() - started
        print(f"{args.frames} RAW frames of {width}x{height}: developing alone {alone:.2f} s; "
              f"render {render:.2f} s ({render / alone:.2f}x); without the drift check "
              f"{steady:.2f} s ({steady / alone:.2f}x)")
        if args.memory:
            big = folder / "big"
            big.mkdir()
            for f in sorted(folder.glob("*.DNG")):
                f.rename(big / f.name)
            for f in sorted(burst.iterdir()):
                f.rename(big / f.name)
            for name, where in ((f"{args.frames} frames", burst), (f"{count} frames", big)):
                if where == burst:  # the burst's files went to big: link the first N back
                    for f in sorted(big.iterdir())[:args.frames]:
                        (burst / f.name).symlink_to(f)
                print(f"peak memory, {name}: {_peak_mb(where):.0f} MB")
    return 0


def _peak_mb(folder: Path) -> float:
    """The peak resident memory of a `lexp render -m mean` of ``folder``, in MB."""
    code = (f"import resource, lexp; lexp.render({str(folder)!r}, method='mean', "
            "cache=False, align=False); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    return int(out.stdout.split()[-1]) / 1024


if __name__ == "__main__":
    sys.exit(main())
