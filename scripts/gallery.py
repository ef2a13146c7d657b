"""Render the README's gallery: for each clip, side by side, its first frame; 8 of its
frames (every 8th of 57) stacked, which shows 8 copies of whatever moves; the flow render
of the same 8 frames, which draws the continuous trails a shutter would have seen; and
the lighten stack of all 57 (light trails), into docs/gallery/NAME.jpg.

    .venv/bin/python scripts/gallery.py            # the demo clip, and real footage
                                                   # from ../shared/clips when it is there

Only clips whose licence allows showing derived images are used (MANIFEST.md beside
them gives each licence; the attribution goes under the gallery in the README). It uses
the Python API (lexp.render) as a notebook would.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import lexp  # noqa: E402
from lexp import synthetic  # noqa: E402

SHARED = REPO.parent / "shared" / "clips"
# (file, first frame, licence): MIT and CC0 footage only.
REAL = (("street_traffic_window_360p.mp4", "144f", "MIT, cKuhn517/cvTrafficCam"),
        ("waterfall_autumn_720p.mp4", "0f", "MIT, yoyoberenguer/Long_Exposure_Effect"))
FRAMES = 57  # the window: 57 frames, of which every 8th (8 frames) for mean and flow
# (label, method, stride)
COLUMNS = (("first frame", "mean", None), ("mean of 8 frames", "mean", 8),
           ("flow from the same 8", "flow", 8), (f"lighten, all {FRAMES}", "max", 1))
TILE_WIDTH = 320


def tile(rgb: np.ndarray, label: str) -> np.ndarray:
    """``rgb`` scaled to TILE_WIDTH with ``label`` on a strip above it (uint8 RGB)."""
    h, w = rgb.shape[:2]
    height = round(h * TILE_WIDTH / w)
    small = cv2.resize(rgb, (TILE_WIDTH, height), interpolation=cv2.INTER_AREA)
    strip = np.full((22, TILE_WIDTH, 3), 24, np.uint8)
    cv2.putText(strip, label, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (235, 235, 235), 1,
                cv2.LINE_AA)
    return np.concatenate([strip, small])


def row(clip: Path, start: str) -> np.ndarray:
    tiles = []
    first = int(start.rstrip("f"))
    for label, method, stride in COLUMNS:
        if stride is None:
            image = lexp.render(str(clip), method=method, start=start, end=f"{first + 1}f")
        else:
            image = lexp.render(str(clip), method=method, start=start,
                                end=f"{first + FRAMES}f", stride=stride)
        tiles.append(tile(image.to_srgb(), label))
        print(f"{clip.name}: {label} in {image.seconds:.1f} s", file=sys.stderr)
    gap = np.full((tiles[0].shape[0], 4, 3), 255, np.uint8)
    parts = []
    for t in tiles:
        parts += [t, gap]
    return np.concatenate(parts[:-1], axis=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "gallery")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        demo = synthetic.write_video(Path(tmp) / "night_street.mp4",
                                     synthetic.night_street(640, 360, frames=FRAMES), fps=30)
        jobs = [(demo, "0f", "night_street")]
        jobs += [(SHARED / name, start, Path(name).stem) for name, start, _ in REAL
                 if (SHARED / name).is_file()]
        for clip, start, stem in jobs:
            picture = row(clip, start)
            target = args.out / f"{stem}.jpg"
            ok, data = cv2.imencode(".jpg", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR),
                                    [cv2.IMWRITE_JPEG_QUALITY, 85])
            assert ok
            target.write_bytes(data.tobytes())
            print(f"→ {target.relative_to(REPO)} ({len(data) // 1024} KB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
