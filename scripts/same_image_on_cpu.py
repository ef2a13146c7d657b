#!/usr/bin/env python3
"""The GPU's flow render, run on this CPU, against the CPU's own: issue 25's same-image
check without a GPU.

On a GPU the flow render keeps its frames, instants, path bends and sums on the device as
torch tensors and integrates each interval whole (lexp/renderers/on_device.py,
interpolate_torch.py); on the CPU it uses numpy and OpenCV, tile by tile. This runs
``lexp bench --quality`` (DESIGN.md §3's protocols) both ways here — the torch way by
handing every render a TorchIntegrator on the CPU, the code a CUDA render runs — and
prints, per clip, protocol and method, the torch path's PSNR minus the numpy path's, and
whether the worst is within 0.1 dB (what scripts/device_checks asks of a GPU).

    .venv/bin/python scripts/same_image_on_cpu.py                  # ../shared/clips
    .venv/bin/python scripts/same_image_on_cpu.py CLIP... --methods flow --json

Both runs share one lexp cache (a temporary one), so the flows are estimated once: the
difference is the integration's and the composing's. The torch way is 2–4× slower on
a CPU than OpenCV's (which is why the CPU keeps OpenCV).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_CLIPS = REPO.parent / "shared" / "clips"
TORCH_RENDERS = "torch renders:"


def lexp_through_torch(args: list[str]) -> None:
    """Run ``lexp ARGS`` with every flow render's frames and sums kept by torch on the CPU."""
    sys.path.insert(0, str(REPO))
    import torch

    from lexp.cli import main
    from lexp.renderers import interpolate_torch

    integrator = interpolate_torch.TorchIntegrator(torch.device("cpu"))
    interpolate_torch.integrator_for = lambda _spec: integrator
    made, keep = [], integrator.frames
    integrator.frames = lambda lut, exact=False: made.append(1) or keep(lut, exact)
    sys.argv = ["lexp", *args]
    try:
        main()
    finally:  # proof that the renders went the torch way
        print(f"{TORCH_RENDERS} {len(made)}", file=sys.stderr)


def bench(clips: list[Path], methods: str, cache: str, torch_path: bool) -> tuple[dict, int]:
    """(``lexp bench --json``'s output, how many flow renders took the torch path)."""
    args = ["--quiet", "bench", "--methods", methods, "--json"]
    args += [arg for clip in clips for arg in ("--quality", str(clip))]
    cmd = [sys.executable, __file__, "--lexp", *args] if torch_path else \
        [sys.executable, "-m", "lexp", *args]
    proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, "LEXP_CACHE_DIR": cache},
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"lexp bench failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    said = [line for line in proc.stderr.splitlines() if line.startswith(TORCH_RENDERS)]
    return json.loads(proc.stdout), int(said[-1].split()[-1]) if said else 0


def main() -> int:
    if sys.argv[1:2] == ["--lexp"]:
        lexp_through_torch(sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", type=Path, nargs="*", help="clips (../shared/clips)")
    parser.add_argument("--methods", default="flow,learned")
    parser.add_argument("--json", action="store_true", help="the figures as JSON")
    args = parser.parse_args()
    clips = args.clips or sorted(SHARED_CLIPS.glob("*.mp4"))
    if not clips:
        sys.exit("no clips: name some, or run where ../shared/clips is")
    sys.path.insert(0, str(REPO / "scripts"))
    import device_checks as checks  # its pairing of scores and its 0.1 dB test
    with tempfile.TemporaryDirectory(prefix="lexp-same-cpu-") as cache:
        times, results = {}, {}
        for name in ("numpy", "torch"):
            started = time.perf_counter()
            results[name] = bench(clips, args.methods, cache, torch_path=name == "torch")
            times[name] = time.perf_counter() - started
    rows = checks.psnr_differences(results["numpy"][0], results["torch"][0])
    through_torch = results["torch"][1]
    if not rows or not through_torch:
        sys.exit(f"nothing to compare: {len(rows)} scores, {through_torch} torch renders")
    worst = max(rows, key=lambda r: abs(r["delta"]))
    passed = abs(worst["delta"]) <= checks.SAME_IMAGE_DB
    if args.json:
        print(json.dumps({"seconds": times, "torch_renders": through_torch, "worst": worst,
                          "pass": passed, "rows": rows}, indent=2))
        return 0
    for row in rows:
        print(f"{row['clip'][:40]:40} {row['protocol']:11} {row['method']:7} "
              f"numpy {row['cpu']:7.3f}  torch {row['gpu']:7.3f}  {row['delta']:+.3f} dB")
    print(f"worst |torch − numpy| {abs(worst['delta']):.3f} dB ({worst['clip']}, "
          f"{worst['protocol']}, {worst['method']}) over {len(rows)} scores: "
          f"{'PASS' if passed else 'FAIL'} (≤ {checks.SAME_IMAGE_DB} dB; "
          f"{through_torch} renders the torch way); "
          f"numpy {times['numpy']:.0f} s, torch {times['torch']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
