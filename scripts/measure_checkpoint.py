"""Measure a generator checkpoint against the flow render on clips it never trained on,
and (``--record``) write the result into the checkpoint, where renders read it.

    .venv/bin/python scripts/measure_checkpoint.py runs/g1/model.pt            # print
    .venv/bin/python scripts/measure_checkpoint.py runs/g1/model.pt --record   # and keep

The clips are the ``validation`` list of ../shared/clips/SPLITS.md (or ``--clips``); the
protocols are ../shared/DESIGN.md §3's (``lexp bench``'s code, the network scored itself:
no fallback). Per protocol the record holds each clip's PSNR for the flow render and the
generator, and the median and worst gain (dB). ``-m learned`` keeps the flow render
where the median gain is not above 0, and ``-m auto`` picks the generator past a clip's
end only where it is and no clip lost more than 0.3 dB (``lexp.checkpoint.measured``).

Refuses a checkpoint whose training data named one of the clips (a file of that name, or
a folder holding one): a score on training clips says nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

SHARED_CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "clips"
PROTOCOLS = ("extrapolate", "gap-fill")


def validation_clips(folder: Path) -> list[Path]:
    """The ``validation:`` list of ``folder``/SPLITS.md."""
    lines = (folder / "SPLITS.md").read_text().splitlines()
    start = lines.index("validation:") + 1
    names = []
    for line in lines[start:]:
        if not line.startswith("- "):
            break
        names.append(line[2:].strip())
    return [folder / name for name in names]


def trained_on(checkpoint_data: dict, clips: list[Path]) -> list[str]:
    """The clips among ``clips`` that the checkpoint's training data named."""
    from lexp.checkpoint import trained_on_data

    names = {clip.name for clip in clips}
    seen = set()
    for spec in trained_on_data(checkpoint_data):
        path = Path(spec).expanduser()
        if path.name in names:
            seen.add(path.name)
        elif path.is_dir():
            seen |= {p.name for p in path.rglob("*") if p.name in names}
    return sorted(seen)


def measure(checkpoint: Path, clips: list[Path]) -> dict:
    """protocol -> its record (see the module docstring)."""
    from lexp import bench

    methods = bench.resolve_methods("flow,learned", str(checkpoint))
    report = bench.run_quality([str(c) for c in clips], methods,
                               [bench.PROTOCOLS[p] for p in PROTOCOLS])
    out = {}
    for protocol in PROTOCOLS:
        per_clip: dict[str, dict] = {}
        for score in report.scores:
            if score.protocol == protocol:
                per_clip.setdefault(score.clip, {})[score.method] = round(float(score.psnr), 3)
        gains = {clip: s["learned"] - s["flow"] for clip, s in per_clip.items()}
        if not gains:
            continue
        worst = min(gains, key=gains.get)
        out[protocol] = {"clips": per_clip,
                         "gain_median_db": round(statistics.median(gains.values()), 3),
                         "gain_worst_db": round(gains[worst], 3), "worst_clip": worst}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--clips", type=Path, nargs="+",
                        help="clips never trained on (default: SPLITS.md's validation)")
    parser.add_argument("--record", action="store_true",
                        help="write the measurement into the checkpoint")
    parser.add_argument("--json", action="store_true", help="print the record as JSON")
    args = parser.parse_args(argv)

    from lexp import checkpoint
    from lexp.errors import LexpError

    try:
        data = checkpoint.read(args.checkpoint)
        clips = args.clips or validation_clips(SHARED_CLIPS)
        overlap = trained_on(data, clips)
        if overlap:
            print(f"{args.checkpoint} was trained on {', '.join(overlap)}: measure it on "
                  "clips it never saw", file=sys.stderr)
            return 1
        started = time.perf_counter()
        record = measure(args.checkpoint, clips)
        if args.record:
            checkpoint.record_measurement(args.checkpoint, record)
    except (LexpError, OSError, ValueError) as err:
        print(f"error: {getattr(err, 'message', err)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    for protocol, entry in record.items():
        print(f"{protocol}: median gain {entry['gain_median_db']:+.3f} dB, worst "
              f"{entry['gain_worst_db']:+.3f} ({entry['worst_clip']})")
        for clip, scores in entry["clips"].items():
            print(f"  {clip:44s} flow {scores['flow']:7.3f}  learned {scores['learned']:7.3f}"
                  f"  {scores['learned'] - scores['flow']:+.3f}")
    print(f"({time.perf_counter() - started:.0f} s{'; recorded' if args.record else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
