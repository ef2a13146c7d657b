#!/usr/bin/env python3
"""The held-out loss of checkpoints, and of the flow render alone, on a run's validation clips.

    .venv/bin/python scripts/heldout_loss.py RUN_DIR [CKPT ...] [--harm-weight H]
        RUN_DIR: a `lexp train` run directory (its config.json names the data, the split
                 and the cases); CKPT: checkpoint files or shipped names (lexp, seed)

`lexp train` prints its own network's validation loss; this scores others on the same
samples, by the same code (``lexp.training.train.evaluate``): the flow render alone (what an
untrained blend would have to beat), the shipped checkpoint, another run's weights. The
samples come from the sample cache (building what it lacks, which can take long). Lower is
better; ``--harm-weight`` adds the charge on what a sample loses against the flow render,
as a run with that setting validates. Each checkpoint's line also gives what the protocols
score: per held-out clip, its PSNR gain over the flow render (dB, on the mean squared error
of all the clip's samples, whole frames at the work size), the median and the worst.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class FlowRenderAlone:
    """Scored by ``evaluate`` as a network is: its output is the flow render (candidate 0)."""

    def __call__(self, evidence):
        from lexp.model import encode_srgb

        return encode_srgb(evidence.candidates[:, 0])

    def eval(self):
        return self

    def train(self):
        return self


def clip_gains(network, samples) -> dict[str, float]:
    """Per clip: the PSNR (dB, sRGB, whole work-size frames) of ``network``'s output over
    that of the flow render, each from the mean squared error over the clip's samples."""
    import math

    import torch

    from lexp.model import encode_srgb
    from lexp.training import dataset

    errors: dict[str, list[float]] = {}
    network.eval()
    with torch.no_grad():
        for index, sample in enumerate(samples):
            evidence, truth = dataset.whole([(index, sample)])
            target = encode_srgb(truth)
            mse = [float(((image - target) ** 2).mean()) for image in
                   (network(evidence).float(), encode_srgb(evidence.candidates[:, 0]))]
            errors.setdefault(sample["clip"], []).append(mse)
    return {clip: 10 * math.log10(sum(m[1] for m in pairs) / max(1e-12, sum(m[0] for m in pairs)))
            for clip, pairs in errors.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("checkpoints", nargs="*")
    parser.add_argument("--harm-weight", type=float, default=0.0)
    args = parser.parse_args(argv)

    import torch

    from lexp import checkpoint
    from lexp.config import TrainConfig
    from lexp.errors import LexpError
    from lexp.model import GeneratorConfig
    from lexp.training import dataset, setup
    from lexp.training.train import evaluate

    try:
        saved = json.loads((args.run_dir / "config.json").read_text())
        config = dataclasses.replace(TrainConfig.from_dict(saved["config"]), init=None,
                                     harm_weight=args.harm_weight)
        model = GeneratorConfig.from_dict(saved["model"])
        plan = setup.plan(config)
        _, held_out = setup.load_samples(config, model, plan, main=True, world_size=1,
                                         jobs=1, emit=lambda kind, **fields: None)
    except (OSError, KeyError, ValueError, LexpError) as exc:
        print(f"error: {args.run_dir}: {exc}", file=sys.stderr)
        return 1
    if not held_out:
        print(f"error: {args.run_dir} held no clips out", file=sys.stderr)
        return 1
    loader = dataset.validation_loader(held_out)
    cpu = torch.device("cpu")
    clips = len(plan.validation_clips)
    print(f"{len(held_out)} held-out samples of {clips} clip{'' if clips == 1 else 's'}")
    print(f"flow render alone\t{evaluate(FlowRenderAlone(), loader, config, cpu):.5f}")
    for spec in args.checkpoints:
        network, _ = checkpoint.load_network(checkpoint.resolve(spec))
        gains = sorted(clip_gains(network, held_out).values())
        print(f"{spec}\t{evaluate(network, loader, config, cpu):.5f}\t"
              f"{statistics.median(gains):+.3f} dB median over flow, worst {gains[0]:+.3f} "
              f"({len(gains)} clip{'' if len(gains) == 1 else 's'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
