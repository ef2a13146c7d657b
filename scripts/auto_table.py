#!/usr/bin/env python3
"""What ``auto`` chooses on real clips, and whether it should have (issue 45).

For every clip (default: ../shared/clips/*.mp4, whole, at its native size and rate):
auto's choice, its reason and its time; then the plain mean and the flow render, and the
PSNR of the mean against the flow render, over the moving region (DESIGN.md §3: where the
flow render differs from the first frame by more than 2/255) and in their worst
neighbourhoods (``lexp.metrics.local_psnr``). The rule auto follows: the mean where the
worst neighbourhoods are within ``lexp.renderers.auto.INVISIBLE_DB`` (one 8-bit code
value RMS: the copies blend invisibly), the flow render otherwise. A row is "right" when
auto's choice is the rule's on the measured dB.

    .venv/bin/python scripts/auto_table.py                 # every clip
    .venv/bin/python scripts/auto_table.py --max-frames 120 clip.mp4 ...

The flow render here uses the regular integration (within 0.2 dB of --exact, see
scripts/quality_guard.py), with the flow cache in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", help="clips (default: ../shared/clips/*.mp4)")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--choices-only", action="store_true",
                        help="only what auto chooses and why, and how long choosing takes "
                             "(no renders)")
    args = parser.parse_args()
    clips = [Path(c) for c in args.clips] or sorted((REPO.parent / "shared" / "clips")
                                                   .glob("*.mp4"))
    if not clips:
        print("no clips (../shared/clips is absent)", file=sys.stderr)
        return 1
    # One cache for every run of the script: a second run reads the flows again.
    os.environ.setdefault("LEXP_CACHE_DIR", str(Path(tempfile.gettempdir()) / "lexp-auto-table"))

    import lexp
    from lexp import metrics, synthetic  # noqa: F401 (synthetic: same import cost as a render)
    from lexp.renderers.auto import INVISIBLE_DB

    if args.choices_only:
        return choices(clips, args.max_frames)

    print("| clip | auto | why | auto s | mean s | flow s | mean vs flow, moving (dB) | "
          "worst 0.1 % (dB) | rule | right |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for clip in clips:
        options = {"max_frames": args.max_frames} if args.max_frames else {}
        started = time.perf_counter()
        auto = lexp.render(str(clip), **options)
        auto_s = time.perf_counter() - started
        started = time.perf_counter()
        mean = lexp.render(str(clip), method="mean", **options)
        mean_s = time.perf_counter() - started
        started = time.perf_counter()
        flow = auto if auto.method == "flow" else lexp.render(str(clip), method="flow", **options)
        flow_s = auto_s if auto.method == "flow" else time.perf_counter() - started
        first = lexp.render(str(clip), method="mean", max_frames=1)
        moving = metrics.moving_mask(flow.encoded(), first.encoded())
        db = metrics.psnr(mean.encoded(), flow.encoded(), moving)
        worst = metrics.local_psnr(mean.encoded(), flow.encoded())
        rule = "mean" if not worst < INVISIBLE_DB else "flow"
        print(f"| {clip.name} | {auto.method} | {auto.details.auto} | {auto_s:.1f} | "
              f"{mean_s:.1f} | {flow_s:.1f} | {db:.2f} | {worst:.2f} | {rule} | "
              f"{'yes' if rule == auto.method else '**no**'} |", flush=True)
    return 0


def choices(clips: list[Path], max_frames: int | None) -> int:
    """auto's choice for each clip, its reason, and the seconds choosing took."""
    from lexp import inputs, media
    from lexp.config import RenderConfig, Window
    from lexp.renderers.auto import choose_auto
    from lexp.renderers.dispatch import for_clip

    print("| clip | auto | why | choosing s |")
    print("|---|---|---|---|")
    for clip in clips:
        source = inputs.resolve_inputs([str(clip)])[0]
        started = time.perf_counter()
        with media.open_clip(source) as opened:
            config = for_clip(RenderConfig(method="auto",
                                           window=Window(max_frames=max_frames)), opened.info)
            _, method, why, _ = choose_auto(opened, config, source=source)
        print(f"| {clip.name} | {method} | {why} | {time.perf_counter() - started:.1f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
