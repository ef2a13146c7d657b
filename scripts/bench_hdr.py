#!/usr/bin/env python3
"""How faithfully `lexp render` blends an HLG HDR clip (docs/design.md, "Linear light").

    .venv/bin/python scripts/bench_hdr.py [--lexp "python -m lexp"]

Writes, in a temporary folder, a synthetic HLG clip with known signal values: a dusk
scene below white and a headlight at HLG's peak (3.8× reference white) crossing it in 24
frames, as lossless 10-bit HEVC tagged BT.2020 / arib-std-b67 as a phone tags it. The
truth is the mean of the frames' *scene light* (BT.2100 HLG undone exactly, in float),
converted to sRGB primaries, tone-mapped with lexp's soft shoulder and encoded as sRGB.
Renders the clip with `-m mean` through both decoders (OpenCV's, and the ffmpeg pipe
with LEXP_DECODER=ffmpeg) and prints each one's PSNR against the truth and the level of
the headlight's trail (8-bit code, mean over the trail). ``--lexp`` runs another lexp
(e.g. an older checkout: ``--lexp "env PYTHONPATH=/tmp/old python -m lexp"``).
Takes ~10 s.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lexp import colour, media  # noqa: E402

SIZE, FRAMES = (320, 180), 24
TRAIL = (slice(126, 134), slice(60, 260))  # rows, columns of the headlight's path


def scene_signals() -> list[np.ndarray]:
    """The clip's frames as HLG signal values in [0, 1], H×W×3 BT.2020 RGB."""
    width, height = SIZE
    yy, xx = np.mgrid[0:height, 0:width]
    frames = []
    for i in range(FRAMES):
        signal = np.empty((height, width, 3))
        signal[...] = (0.35, 0.38, 0.45)  # dusk sky
        signal[120:] = (0.30, 0.28, 0.25)  # street
        lamp = np.exp(-(((xx - 20 - 11 * i) / 6.0) ** 2 + ((yy - 130) / 4.0) ** 2))
        frames.append(np.maximum(signal, lamp[..., None] * np.array([1.0, 0.95, 0.8])))
    return frames


def write_clip(frames: list[np.ndarray], folder: Path) -> Path:
    import cv2

    for i, signal in enumerate(frames):
        codes = np.round(signal * 65535).astype(np.uint16)
        cv2.imwrite(str(folder / f"{i:03d}.png"), codes[..., ::-1])
    clip = folder / "headlight_hlg.mp4"
    subprocess.run(
        [media.ffmpeg_exe(), "-v", "error", "-y", "-framerate", "24",
         "-i", str(folder / "%03d.png"),
         "-vf", "scale=out_color_matrix=bt2020:out_range=tv,format=yuv420p10le",
         "-colorspace", "bt2020nc", "-color_primaries", "bt2020", "-color_trc", "arib-std-b67",
         "-c:v", "libx265", "-x265-params", "log-level=error:lossless=1:colorprim=bt2020:"
         "transfer=arib-std-b67:colormatrix=bt2020nc", str(clip)], check=True)
    return clip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lexp", default=f"{shlex.quote(sys.executable)} -m lexp")
    args = parser.parse_args()
    import cv2

    frames = scene_signals()
    linear = np.mean([colour.decode(f, "hlg") for f in frames], axis=0).astype(np.float32)
    truth = colour.encode(colour.tone_map(colour.to_output_primaries(linear, "hlg"), "soft"),
                          "srgb")
    truth = np.round(truth.astype(np.float64) * 255)
    print(f"truth: headlight trail level {truth[TRAIL].mean():.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(frames, Path(tmp))
        for decoder in ("opencv", "ffmpeg"):
            out = Path(tmp) / f"{decoder}.png"
            env = {**os.environ, "LEXP_DECODER": "ffmpeg" if decoder == "ffmpeg" else ""}
            # cwd: not the checkout, whose lexp/ would shadow another one on PYTHONPATH
            subprocess.run([*shlex.split(args.lexp), "-q", "render", str(clip), "-o", str(out),
                            "-m", "mean", "--overwrite"], check=True, env=env, cwd=tmp)
            got = cv2.imread(str(out))[..., ::-1].astype(np.float64)
            psnr = 10 * np.log10(255 ** 2 / np.mean((got - truth) ** 2))
            print(f"{decoder:>6}: {psnr:.2f} dB, headlight trail level {got[TRAIL].mean():.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
