"""Does --align make a handheld clip's static background sharper? Measured, per clip.

For each clip, the product renders the mean with and without ``--align`` (similarity,
crop). Both are compared on the aligned result's crop, over the **static region**: the
pixels that move less than 0.5 px per frame once the camera's motion is removed (DIS
flow between consecutive aligned frames, as keep-sharp measures it). Two figures:

- sharpness: the variance of the Laplacian of the grey image (higher = sharper);
- PSNR against the reference frame (the first, which alignment keeps still): a
  steady camera's long exposure of a static scene *is* that frame, less its noise.

Usage: python scripts/bench_align.py [CLIPS ...] (default: the two handheld clips in
../shared/clips). Prints a table; ``--csv`` prints CSV.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from lexp import metrics, renderers
from lexp.config import RenderConfig
from lexp.media import ClipSource, open_clip
from lexp.renderers.align import Aligner
from lexp.renderers.sharp import MotionMeter

CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "clips"
DEFAULT = ["handheld_shaky_park_360p.mp4", "pine_branch_wind_handheld_720p.mp4"]


def rendered(path: Path, config: RenderConfig):
    source = ClipSource(str(path), "video", (path,))
    started = time.perf_counter()
    with open_clip(source) as clip:
        result = renderers.render_clip(clip, config)
    return result, time.perf_counter() - started


def static_region(path: Path, box) -> tuple[np.ndarray, np.ndarray]:
    """(static mask, the reference frame), both cropped to ``box`` (x, y, w, h)."""
    aligner, meter, reference = Aligner(), MotionMeter(), None
    with open_clip(ClipSource(str(path), "video", (path,))) as clip:
        for index, frame in clip.frames():
            warped = aligner.warp(index, frame)
            if warped is None:
                continue
            if reference is None:
                reference = warped.copy()
            meter.add(float(index), warped)
    x, y, w, h = box
    motion = meter.per_period(reference.shape[:2])[y:y + h, x:x + w]
    return motion < 0.5, reference[y:y + h, x:x + w]


def sharpness(encoded: np.ndarray, mask: np.ndarray) -> float:
    grey = cv2.cvtColor((encoded * 255).astype(np.float32), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_32F)[mask].var())


def measure(path: Path) -> dict:
    plain_cfg, aligned_cfg = RenderConfig(method="mean"), RenderConfig(method="mean",
                                                                      align="similarity")
    plain, t_plain = rendered(path, plain_cfg)
    aligned, t_aligned = rendered(path, aligned_cfg)
    info = aligned.details.align.to_dict()
    box = info["crop"] or (0, 0, plain.linear.shape[1], plain.linear.shape[0])
    x, y, w, h = box
    mask, reference = static_region(path, box)
    truth = reference.astype(np.float32) / 255.0  # encoded, as the renders are compared
    images = {"plain": plain.linear[y:y + h, x:x + w], "aligned": aligned.linear}
    row = {"clip": path.name, "frames": aligned.frames_used, "skipped": len(info["skipped"]),
           "max_shift_px": info["max_shift_px"], "crop": f"{w}x{h}",
           "static_%": round(100 * float(mask.mean()), 1)}
    for name, linear in images.items():
        encoded = renderers.finish(linear, plain_cfg)
        row[f"sharpness_{name}"] = round(sharpness(encoded, mask), 1)
        row[f"psnr_{name}"] = round(metrics.psnr(encoded, truth, mask), 2)
    row["seconds_plain"], row["seconds_aligned"] = round(t_plain, 2), round(t_aligned, 2)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path)
    parser.add_argument("--csv", action="store_true")
    args = parser.parse_args(argv)
    paths = args.clips or [CLIPS / name for name in DEFAULT]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        print(f"error: no such clip: {missing[0]}", file=sys.stderr)
        return 1
    rows = [measure(p) for p in paths]
    keys = list(rows[0])
    if args.csv:
        print(",".join(keys))
        for row in rows:
            print(",".join(str(row[k]) for k in keys))
    else:
        for row in rows:
            print("  ".join(f"{k}={row[k]}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
