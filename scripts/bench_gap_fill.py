#!/usr/bin/env python3
"""The sparse gap filling of ``-m max`` against its exact form, the dense one (issue 45).

For each clip and stride: the lighten blend over the instants between frames rendered
with an instant every ``lexp.renderers.trails.GAP_STEP_PX`` px where motion runs one way
(the default) and with an instant every pixel (GAP_STEP_PX = 1), in one run; prints the
PSNR of the first against the second and both times. Flows come from lexp's cache (the
first render of a clip fills it: run twice for warm figures).

    .venv/bin/python scripts/bench_gap_fill.py ../shared/clips/street_traffic_window_360p.mp4
    .venv/bin/python scripts/bench_gap_fill.py --strides 4,8,16 demo/night_street.mp4
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+")
    parser.add_argument("--strides", default="1", help="comma-separated, e.g. 1,4,8,16")
    args = parser.parse_args()

    import numpy as np

    import lexp
    from lexp import metrics
    from lexp.renderers import trails

    sparse_step = trails.GAP_STEP_PX
    for clip in args.clips:
        for stride in (int(s) for s in args.strides.split(",")):
            got = {}
            for step in (1, sparse_step):  # dense first: it fills the flow cache
                trails.GAP_STEP_PX = step
                started = time.perf_counter()
                image = lexp.render(clip, method="max", gap_fill=True, stride=stride)
                got[step] = (image.to_srgb().astype(np.float64) / 255,
                             time.perf_counter() - started)
            trails.GAP_STEP_PX = sparse_step
            db = metrics.psnr(got[sparse_step][0], got[1][0])
            print(f"{Path(clip).name} stride {stride}: sparse vs dense {db:.1f} dB; "
                  f"dense {got[1][1]:.1f} s, sparse {got[sparse_step][1]:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
