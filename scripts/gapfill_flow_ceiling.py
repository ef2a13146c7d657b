#!/usr/bin/env python3
"""How far better optical flow alone could take the gap-fill protocol (DESIGN.md §3).

    .venv/bin/python scripts/gapfill_flow_ceiling.py [CLIPS_DIR]   (default ../shared/clips)

For every clip of at least 57 frames, the 8 key frames 0, 8, …, 56 are integrated with
``lexp.renderers.flow.interval_sum`` (as ``lexp render -m flow`` does, paths bent by the
neighbouring intervals) twice:

- ``keyframes``: DIS (medium) between consecutive key frames — what lexp sees;
- ``chained``: DIS between every pair of *dense* neighbours, chained over the 8 frames in
  between. Flow over one frame period is far easier than over eight, so this stands in
  for a much better two-frame estimator (one that tracks what DIS loses at 8 frames).
  It is still a smooth path through the key frames: the motion in between is not
  known, only where it ends.

and a third way that no method has, for scale:

- ``oracle``: each missing frame is rebuilt from its two key frames, warped with DIS flows
  computed *from the missing frame itself* and blended by time. This is frame
  interpolation that knows where everything was at every instant.

Each is scored by PSNR against the truth (the linear mean of frames 0…56, sRGB). If the
chained column is not much better than the keyframes one while the oracle is, a better
flow estimator will not close the gap to a target: what is left is the motion between
key frames that the key frames do not show (shake, swaying, churning water). Takes
~12 min on 2 cores.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
KEYS = list(range(0, 57, 8))


def chained_flow(estimator, frames: list[np.ndarray], start: int, end: int) -> np.ndarray:
    """(2, H, W) flow from frame ``start`` to ``end``: one-period flows, each sampled where
    the path so far has got to, summed."""
    import cv2

    h, w = frames[0].shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    total = np.zeros((2, h, w), np.float32)
    step = 1 if end > start else -1
    for k in range(start, end, step):
        flow = estimator.pair(frames[k], frames[k + step])
        total += np.stack([cv2.remap(c, xs + total[0], ys + total[1], cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE) for c in flow])
    return total


def gapfill(frames: list[np.ndarray], flows) -> np.ndarray:
    """The flow render of the 8 key frames (linear H×W×3); ``flows(i, j)`` gives i→j."""
    from functools import cache

    from lexp import colour
    from lexp.renderers import interpolate

    flows = cache(flows)
    lut = colour.decode_lut("srgb").astype(np.float32)
    linear = [lut[frames[i]] for i in KEYS]
    total = np.zeros(linear[0].shape, np.float64)
    for k, (i, j) in enumerate(zip(KEYS, KEYS[1:], strict=False)):
        before = (flows(i, KEYS[k - 1]), i - KEYS[k - 1]) if k > 0 else None
        after = (flows(j, KEYS[k + 2]), KEYS[k + 2] - j) if k + 2 < len(KEYS) else None

        def bends(backward, i=i, j=j, before=before, after=after):
            return interpolate.path_bends(flows(i, j), backward, j - i, before, after)

        total += interpolate.interval_sum(linear[k], linear[k + 1], flows(i, j), j - i,
                                          lambda i=i, j=j: flows(j, i), bends)[0]
    total += (linear[0] + linear[-1]) / 2  # the half periods before and after the ends
    return (total / (KEYS[-1] + 1)).astype(np.float32)


def oracle(frames: list[np.ndarray], estimator) -> np.ndarray:
    """Linear H×W×3 mean of frames 0…56, each missing one rebuilt from its two key frames
    with flows computed from the missing frame itself (which no method has)."""
    import cv2

    from lexp import colour

    lut = colour.decode_lut("srgb").astype(np.float32)
    h, w = frames[0].shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))

    def fetch(frame: int, key: int) -> np.ndarray:  # key frame seen from ``frame``
        flow = estimator.pair(frames[frame], frames[key])
        return cv2.remap(lut[frames[key]], xs + flow[0], ys + flow[1], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)

    total = np.zeros((h, w, 3), np.float64)
    for frame in range(KEYS[-1] + 1):
        if frame % 8 == 0:
            total += lut[frames[frame]]
            continue
        start = frame - frame % 8
        s = (frame - start) / 8
        total += (1 - s) * fetch(frame, start) + s * fetch(frame, start + 8)
    return (total / (KEYS[-1] + 1)).astype(np.float32)


def clip_scores(frames: list[np.ndarray], estimator) -> tuple[float, float, float]:
    """(keyframes, chained, oracle) PSNR in dB of one clip's first 57 frames."""
    from lexp import colour, metrics

    lut = colour.decode_lut("srgb")
    truth = colour.encode(np.mean([lut[f] for f in frames], axis=0), "srgb")
    keyframes = gapfill(frames, lambda i, j: estimator.pair(frames[i], frames[j]))
    chained = gapfill(frames, lambda i, j: chained_flow(estimator, frames, i, j))
    return tuple(metrics.psnr(np.clip(colour.encode(image, "srgb"), 0, 1), truth)
                 for image in (keyframes, chained, oracle(frames, estimator)))


def main() -> int:
    from lexp import flow, media

    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "clips"
    if not folder.is_dir():
        print(f"no clips at {folder}", file=sys.stderr)
        return 2
    estimator = flow.make_estimator("dis")
    rows = {}
    columns = ("keyframes", "chained", "oracle")
    print(f"{'clip':40} " + " ".join(f"{c:>10}" for c in columns))
    for path in sorted(p for p in folder.iterdir() if media.is_video(p)):
        clip = media.open_video(str(path), path.name)
        frames = [f for _, f in clip.frames(0, KEYS[-1] + 1)]
        if len(frames) < KEYS[-1] + 1:
            continue
        rows[path.name] = clip_scores(frames, estimator)
        print(f"{path.name:40} " + " ".join(f"{v:10.2f}" for v in rows[path.name]),
              flush=True)
    if rows:
        print(f"{'median':40} " + " ".join(
            f"{statistics.median(r[c] for r in rows.values()):10.2f}"
            for c in range(len(columns))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
