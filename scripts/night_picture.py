#!/usr/bin/env python3
"""Render the README's night picture (docs/gallery/night_sky.jpg): the synthetic night
(lexp.synthetic.NightSky: 24 frames of a sky turning 0.6° a frame about a pole above the
frame, a dark signal with hot pixels, vignetting, a plane in frame 7 and two cloud-lit
frames, with 6 darks and 6 flats) as a plain lighten blend, and calibrated: darks
subtracted, the flat divided, hot pixels repaired, the cloud-lit frames rejected, the
plane masked, the gaps filled along the flow into continuous arcs, and the still ground
and sky the frames' median. Both +3 EV, side by side. Through the Python API, as a notebook would.

    .venv/bin/python scripts/night_picture.py [--out docs/gallery/night_sky.jpg]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import lexp  # noqa: E402
from lexp import synthetic  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "gallery" / "night_sky.jpg")
    args = parser.parse_args()
    sky = synthetic.NightSky(width=480, height=320, frames=24, degrees_per_frame=0.6)
    with tempfile.TemporaryDirectory(prefix="lexp-night-") as tmp:
        root = sky.write(tmp)
        plain = lexp.render(root / "lights", method="max", gap_fill=False, ev=3, cache=False)
        calibrated = lexp.render(root / "lights", method="max", ev=3, cache=False,
                                 dark=str(root / "darks"), flat=str(root / "flats"),
                                 hot_pixels=True, reject="bright,streaks",
                                 keep_sharp="median")
    gap = np.full((sky.height, 8, 3), 255, np.uint8)
    picture = np.hstack([plain.to_srgb(), gap, calibrated.to_srgb()])
    from PIL import Image

    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(args.out, quality=90)
    print(f"{args.out}: {calibrated.details.summary()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
