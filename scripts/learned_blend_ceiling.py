#!/usr/bin/env python3
"""How far the lexp generator's design could go on the extrapolate protocol (DESIGN.md §3).

    .venv/bin/python scripts/learned_blend_ceiling.py [CLIP ...]
        (default: the `validation` clips of ../shared/clips/SPLITS.md)

The shipped generator (``lexp.model.LexpGenerator``) never paints pixels: per pixel it
blends K candidate exposures (the flow render, the linear mean of the inputs, the flow
render blurred at three scales). For each clip this runs the extrapolate protocol (the
first 5 frames, a 64-frame exposure) at full resolution through the real render path,
keeps the candidates, and scores against the truth (the linear mean of frames 0…63, or
of the whole clip when it is shorter, as `lexp bench` does):

- each candidate alone, and the shipped checkpoint's blend (what `lexp bench` reports);
- an *oracle*: for every block of the frame, the candidate that is closest to the truth
  there, chosen by looking at the truth. Blocks are a fixed fraction of the frame's long
  side (1/80 is 16 px on a 1280-px frame, 4 px at the generator's 320-px work size, about
  the finest detail its blend weights have); at 1/1, one candidate for the whole frame
  (what a per-scene choice could gain, with no choice between regions).

No network that sees only the 5 frames can beat the oracle's choice at its own block size
by choosing; one that blends can do a little better, not much. So if the oracle's median
gain over the flow render is below a target at the block sizes the network works at,
training (longer, on a GPU, on more clips) will not reach that target with these
candidates. Takes ~1 min on 2 cores.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLIPS = REPO.parent / "shared" / "clips"
BLOCKS = (160, 80, 40, 20, 1)  # oracle block side = the frame's long side / this (1: one
#                                choice for the whole frame, the best candidate alone)


def validation_clips() -> list[Path]:
    """The clips listed under `validation:` in ../shared/clips/SPLITS.md."""
    names, section = [], None
    for line in (CLIPS / "SPLITS.md").read_text().splitlines():
        if line.strip().endswith(":") and not line.startswith("-"):
            section = line.strip()[:-1]
        elif line.startswith("- ") and section == "validation":
            names.append(line[2:].strip())
    return [CLIPS / name for name in names]


def block_oracle(errors: np.ndarray, side: int) -> float:
    """PSNR in dB of choosing, per side×side block, the candidate with the least squared
    error there. ``errors``: K×H×W squared errors (mean over channels)."""
    import cv2

    if side >= max(errors.shape[1:]):  # one block: the candidate best over the whole frame
        return float(10 * np.log10(1.0 / errors.mean(axis=(1, 2)).min()))
    summed = np.stack([cv2.blur(e, (side, side), borderType=cv2.BORDER_REFLECT)
                       for e in errors])
    # Blocks, not a sliding window: the choice is constant over each block.
    _, h, w = errors.shape
    ys, xs = np.arange(h) // side * side + side // 2, np.arange(w) // side * side + side // 2
    choice = summed[:, np.minimum(ys, h - 1)[:, None], np.minimum(xs, w - 1)[None, :]].argmin(0)
    chosen = np.take_along_axis(errors, choice[None], 0)[0]
    return float(10 * np.log10(1.0 / chosen.mean()))


def clip_scores(path: Path, network, model_config) -> dict[str, float]:
    """PSNR in dB of every candidate, the shipped blend (``network``, from
    ``lexp.checkpoint.load_network``) and the block oracles on one clip."""
    from lexp import colour, flow, media, metrics, renderers
    from lexp.bench import PROTOCOLS
    from lexp.config import RenderConfig, TimeSpec, Window
    from lexp.media import MemoryClip
    from lexp.renderers import learned
    from lexp.renderers.flow import render_flow

    protocol = PROTOCOLS["extrapolate"]  # as `lexp bench` runs it
    clip = media.open_video(str(path), path.name)
    frames = [f for _, f in clip.frames(0, protocol.frames_needed)]
    inputs = protocol.inputs(len(frames))
    if inputs is None:
        raise ValueError(f"{path.name}: {len(frames)} frames is too short")
    frames = frames[:protocol.truth_end(len(frames))]  # a clip shorter than 64: all of it
    lut = colour.decode_lut("srgb")
    truth = colour.encode(np.mean([lut[f] for f in frames], axis=0), "srgb")

    kept: dict[str, object] = {}

    class Keeper(learned.Learner):  # the shipped blend, keeping its candidates
        def refine(self, flow_render, periods):
            kept["candidates"] = self.full_candidates(flow_render)
            kept["blend"] = super().refine(flow_render, periods)
            return kept["blend"]

    config = RenderConfig(method="learned", flow="dis",
                          window=Window(end=TimeSpec(float(len(inputs)), "f")),
                          exposure=TimeSpec(float(len(frames)), "f"))
    render_flow(MemoryClip([frames[i] for i in inputs], clip.info.fps), config,
                flow.make_estimator("dis"), learner=Keeper(network, model_config, "cpu"))
    names = ["flow", "mean"] + [f"blur{s:g}" for s in model_config.blur_sigmas]
    encoded = [renderers.finish(c, config) for c in kept["candidates"]]
    scores = {name: metrics.psnr(image, truth) for name, image in
              zip(names, encoded, strict=True)}
    scores["shipped"] = metrics.psnr(renderers.finish(kept["blend"], config), truth)
    errors = np.stack([((image - truth) ** 2).mean(2) for image in encoded]).astype(np.float32)
    long_side = max(truth.shape[:2])
    for fraction in BLOCKS:
        scores[f"oracle 1/{fraction}"] = block_oracle(errors, max(1, round(long_side / fraction)))
    return scores


def main() -> int:
    paths = [Path(p) for p in sys.argv[1:]] or (
        validation_clips() if (CLIPS / "SPLITS.md").is_file() else [])
    if not paths:
        print(f"no clips given and no {CLIPS / 'SPLITS.md'}", file=sys.stderr)
        return 2
    from lexp import checkpoint

    network, model_config = checkpoint.load_network(checkpoint.resolve(None))
    rows = {}
    for path in paths:
        rows[path.name] = clip_scores(path, network, model_config)
        if len(rows) == 1:
            columns = list(rows[path.name])
            print(f"{'clip':36}" + "".join(f"{c:>13}" for c in columns))
        print(f"{path.name[:36]:36}" + "".join(f"{rows[path.name][c]:13.2f}" for c in columns),
              flush=True)
    medians = {c: statistics.median(r[c] for r in rows.values()) for c in columns}
    print(f"{'median':36}" + "".join(f"{medians[c]:13.2f}" for c in columns))
    print(f"{'median gain over flow':36}"
          + "".join(f"{medians[c] - medians['flow']:+13.2f}" for c in columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
