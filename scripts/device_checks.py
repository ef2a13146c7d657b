#!/usr/bin/env python3
"""Everything lexp checks on a GPU, in one call of a lent GPU machine (issue 25's device
targets; DESIGN.md §4: GPU numbers are measured there).

Here (once per session; needs the package registry and ../shared/clips):

    scripts/device_prep            # wheels the device image lacks into .whl/, clips linked

then one call of the device tool, with the carry list scripts/device_prep prints:

    scripts/device_checks          # installs the wheels, then runs this script

Steps (``--only`` picks some). ``$OUT`` (or ``--out``) gets three files, rewritten as each
step ends, so a call cut off at its limit still brings back what finished (the device
tool brings back at most 8): ``device_checks.json`` (every figure), ``device_checks.log``
(every command's output) and ``profile.txt``. A table is printed last:

- ``env``: torch, torchvision, the GPU, CPU cores, the ffmpeg lexp decodes with.
- ``tests``: the ``gpu``-marked tests (the torch integrator, the render's frames and sums
  kept on the device, and RAFT on CUDA, against the CPU and OpenCV paths).
- ``same-image``: ``lexp bench --quality`` (DESIGN.md §3's protocols, flow and learned) on
  the carried clips twice, the GPU hidden (``CUDA_VISIBLE_DEVICES=``) and not: per clip,
  protocol and method the PSNR on the GPU minus the PSNR on the CPU (target: within 0.1
  dB). The flows are DIS's either way (OpenCV, on the CPU, cached by the first run), so
  the difference is the integration's and the generator's.
- ``speed``: scripts/bench_render_speed.py (120 frames of real traffic at 1080p and 4K,
  ``-m mean`` as the baseline in the same run) three ways: ``--device cuda --flow
  raft-small``, ``--device cuda`` (DIS flow) and ``--device cpu``; frames a second end to
  end, start-up included (target: ≥ 30 at 1080p with RAFT-small). RAFT-small has random
  weights (no registry there, and none here to fetch the real ones from): the same
  network, the same operations and time; its flows are meaningless, and a flow render
  costs a bounded number of taps whatever the motion, so the integration's time is
  what real flows would cost within that bound.
- ``profile``: where one of those renders spends its time (1080p, RAFT-small on the GPU):
  Python's profiler, the 30 functions costliest in themselves, in ``profile.txt`` (GPU work
  shows up where the CPU waits for it), for the next change if 30 fps is not met.
- ``train``: ``lexp train`` on synthetic scenes for a few hundred steps: samples a second
  on the GPU (what a long schedule for issue 27 would cost).

Without CUDA (here, to check the script itself) every step still runs, CPU against CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CARRIED_CLIPS = REPO / ".device" / "clips"  # scripts/device_prep links ../shared/clips here
SHARED_CLIPS = REPO.parent / "shared" / "clips"
STEPS = ("env", "tests", "same-image", "speed", "profile", "train")
SAME_IMAGE_DB = 0.1  # issue 25: the GPU's image within this many dB of the CPU's
SPEED_VARIANTS = {  # name: lexp render options
    "cuda raft-small": "--device cuda --flow raft-small",
    "cuda dis": "--device cuda",
    "cpu dis": "--device cpu",
}


LOG = "device_checks.log"


def _run(cmd: list[str], out: Path, env: dict | None = None, timeout: float = 600,
         stdout: Path | None = None) -> tuple[int, str]:
    """Run CMD from the repository root; (its exit status, its output). The output is
    appended to OUT's log under the command, or with ``stdout`` given, its standard output
    goes to that file and the log gets the rest."""
    with open(out / LOG, "a") as log:
        log.write(f"\n$ {shlex.join(cmd)}\n")
        log.flush()
        try:
            proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, **(env or {})},
                                  stdout=subprocess.PIPE, text=True, timeout=timeout,
                                  stderr=subprocess.PIPE if stdout else subprocess.STDOUT)
        except subprocess.TimeoutExpired:
            log.write(f"(stopped after {timeout:.0f} s)\n")
            return 124, ""
        if stdout is not None:
            stdout.write_text(proc.stdout)
        text = proc.stderr if stdout is not None else proc.stdout
        log.write(text)
    return proc.returncode, text


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def environment(args, out: Path) -> dict:
    import torch

    from lexp import torch_env
    from lexp.media import ffmpeg_exe

    return {"torch": torch.__version__, "torchvision": torch_env.torchvision().__version__,
            "gpu": torch.cuda.get_device_name(0) if _cuda() else None,
            "cpu_cores": os.cpu_count(), "ffmpeg": ffmpeg_exe()}


def cuda_tests(args, out: Path) -> dict:
    """The gpu-marked tests; they skip, and say so, where there is no CUDA."""
    code, text = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m",
                       "gpu", "-rs", "tests"], out)
    summary = text.strip().splitlines()[-1:] or [""]
    return {"exit": code, "summary": summary[0]}


def bench_json(clips: list[Path], env: dict, out: Path, cache: Path, name: str) -> dict:
    """`lexp bench --quality` on CLIPS (flow and learned, both protocols) as JSON; CACHE is
    its lexp cache and holds the JSON as NAME."""
    result = cache / name
    cmd = [sys.executable, "-m", "lexp", "--quiet", "bench", "--methods", "flow,learned",
           "--json"] + [arg for clip in clips for arg in ("--quality", str(clip))]
    code, _ = _run(cmd, out, {"LEXP_CACHE_DIR": str(cache), **env}, timeout=900,
                   stdout=result)
    if code != 0:
        raise RuntimeError(f"lexp bench failed ({code}): see {LOG}")
    return json.loads(result.read_text())


def psnr_differences(on_cpu: dict, on_gpu: dict) -> list[dict]:
    """Per clip, protocol and method, the GPU's PSNR minus the CPU's (dB); each argument is
    `lexp bench --json`'s output."""
    key = lambda s: (s["clip"], s["protocol"], s["method"])  # noqa: E731
    cpu = {key(s): s["psnr"] for s in on_cpu["quality"]["scores"]}
    return [{"clip": s["clip"], "protocol": s["protocol"], "method": s["method"],
             "cpu": cpu[key(s)], "gpu": s["psnr"], "delta": s["psnr"] - cpu[key(s)]}
            for s in on_gpu["quality"]["scores"] if key(s) in cpu]


def same_image(args, out: Path) -> dict:
    clips = args.clips or sorted(CARRIED_CLIPS.glob("*.mp4")) or sorted(
        SHARED_CLIPS.glob("*.mp4"))
    if not clips:
        return {"skipped": "no clips: run scripts/device_prep here and carry them"}
    with tempfile.TemporaryDirectory(prefix="lexp-same-") as cache:
        started = time.perf_counter()
        on_cpu = bench_json(clips, {"CUDA_VISIBLE_DEVICES": ""}, out, Path(cache), "cpu.json")
        cpu_s = time.perf_counter() - started
        on_gpu = bench_json(clips, {}, out, Path(cache), "gpu.json")
        gpu_s = time.perf_counter() - started - cpu_s
    rows = psnr_differences(on_cpu, on_gpu)
    worst = max(rows, key=lambda r: abs(r["delta"]))
    return {"clips": len(clips), "scores": len(rows), "cpu_s": cpu_s, "gpu_s": gpu_s,
            "worst": worst, "pass": abs(worst["delta"]) <= SAME_IMAGE_DB, "rows": rows}


def _random_raft(tmp: Path) -> dict:
    """A lexp cache in TMP holding RAFT-small with random weights, named by a registry with
    no pinned sha256; the environment that points lexp at both."""
    import torch

    from lexp import torch_env

    cache, registry, source = tmp / "cache", tmp / "registry.json", tmp / "raft_random.pth"
    cache.mkdir()
    torch.manual_seed(0)
    torch.save(torch_env.torchvision().models.optical_flow.raft_small(weights=None)
               .state_dict(), source)
    registry.write_text(json.dumps([{
        "name": "raft-small", "filename": "raft_small_random.pth", "url": "http://127.0.0.1:9/",
        "sha256": None, "size": 0, "licence": "random weights", "used_by": "device checks"}]))
    env = {"LEXP_CACHE_DIR": str(cache), "LEXP_REGISTRY": str(registry)}
    script = ("import sys, pathlib; from lexp import weights; "
              "weights.import_file('raft-small', pathlib.Path(sys.argv[1]))")
    code = subprocess.run([sys.executable, "-c", script, str(source)], cwd=REPO,
                          env={**os.environ, **env}).returncode
    if code != 0:
        raise RuntimeError("could not import the random RAFT-small weights")
    return env


def _speed_clip(args) -> Path | None:
    """The content of the speed steps: --speed-clip, else the carried street clip (which
    bench_render_speed.py finds only beside the repository), else None (its own)."""
    clip = args.speed_clip or CARRIED_CLIPS / "street_traffic_window_360p.mp4"
    return clip if clip.is_file() else None


def render_speed(args, out: Path) -> dict:
    results = {}
    clip = _speed_clip(args)
    with tempfile.TemporaryDirectory(prefix="lexp-speed-") as tmp:
        env = _random_raft(Path(tmp))
        for name, render_args in SPEED_VARIANTS.items():
            if "cuda" in render_args and not _cuda():
                results[name] = {"skipped": "no CUDA device"}
                continue
            sizes = args.sizes if "cuda" in render_args else args.sizes.split(",")[0]
            cells = Path(tmp) / f"speed_{name.replace(' ', '_')}.json"
            cmd = [sys.executable, "scripts/bench_render_speed.py", "--frames",
                   str(args.frames), "--sizes", sizes, "--render-args", render_args,
                   "--json", str(cells)] + (["--clip", str(clip)] if clip else [])
            code, _ = _run(cmd, out, env)
            results[name] = json.loads(cells.read_text()) if code == 0 else {"exit": code}
    return results


def render_profile(args, out: Path) -> dict:
    import pstats

    import bench_render_speed  # beside this script

    device = "cuda" if _cuda() else "cpu"
    with tempfile.TemporaryDirectory(prefix="lexp-profile-") as tmp:
        tmp = Path(tmp)
        env = _random_raft(tmp)
        clip = _speed_clip(args)
        source = bench_render_speed.source_clip(str(clip) if clip else None, tmp,
                                                args.frames)
        scaled = bench_render_speed.scaled(source, bench_render_speed.SIZES["1080p"],
                                           args.frames, tmp)
        code, _ = _run([sys.executable, "-m", "cProfile", "-o", str(tmp / "prof"), "-m",
                        "lexp", "--quiet", "render", str(scaled), "-m", "flow", "--device",
                        device, "--flow", "raft-small", "--max-frames", str(args.frames),
                        "-o", str(tmp / "out.jpg"), "--overwrite"], out, env)
        if code != 0:
            return {"exit": code}
        with open(out / "profile.txt", "w") as report:
            stats = pstats.Stats(str(tmp / "prof"), stream=report)
            stats.sort_stats("tottime").print_stats(30)
    return {"device": device, "frames": args.frames, "profiled_s": stats.total_tt,
            "report": "profile.txt"}


def training_speed(args, out: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="lexp-train-") as tmp:
        run_dir = Path(tmp) / "run"
        code, _ = _run([sys.executable, "-m", "lexp", "train", "--data", "synthetic:8",
                        "--steps", str(args.train_steps), "--eval-every",
                        str(args.train_steps), "--run-dir", str(run_dir)], out,
                       {"LEXP_CACHE_DIR": str(Path(tmp) / "cache")})
        if code != 0:
            return {"exit": code}
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
        config = json.loads((run_dir / "config.json").read_text())
    rates = [r["samples_per_s"] for r in rows if "samples_per_s" in r]
    return {"steps": args.train_steps, "device": config["device"], "batch": config["batch"],
            "crop": config["crop"], "samples_per_s": statistics.median(rates[len(rates) // 4:])}


def table(results: dict) -> str:
    """The lines printed last: one per finding."""
    lines = [f"{step}: {result['error']}" for step, result in results.items()
             if "error" in result]
    env = results.get("env", {})
    if "torch" in env:
        lines.append(f"env: torch {env['torch']}, torchvision {env['torchvision']}, "
                     f"{env['gpu'] or 'no GPU'}, {env['cpu_cores']} cores")
    if "tests" in results:
        lines.append(f"tests -m gpu: {results['tests'].get('summary')}")
    same = results.get("same-image", {})
    if "worst" in same:
        w = same["worst"]
        lines.append(f"same image: worst |GPU - CPU| {abs(w['delta']):.3f} dB ({w['clip']}, "
                     f"{w['protocol']}, {w['method']}) over {same['scores']} scores: "
                     f"{'PASS' if same['pass'] else 'FAIL'} (≤ {SAME_IMAGE_DB} dB)")
    elif same:
        lines.append(f"same image: {same}")
    for name, speed in results.get("speed", {}).items():
        if not isinstance(speed, dict):  # the step's own seconds
            continue
        for cell in speed.get("cells", []):
            lines.append(f"speed {name}: {cell['size']} {cell['method']} "
                         f"{cell['seconds']:.2f} s, {cell['fps']:.1f} fps, "
                         f"{cell['peak_mb']:.0f} MB")
        if "cells" not in speed:
            lines.append(f"speed {name}: {speed}")
    profile = results.get("profile", {})
    if "report" in profile:
        lines.append(f"profile: 1080p, {profile['frames']} frames on {profile['device']} in "
                     f"{profile['profiled_s']:.1f} s; the costliest functions in "
                     f"{profile['report']}")
    train = results.get("train", {})
    if "samples_per_s" in train:
        lines.append(f"train: {train['samples_per_s']:.1f} samples/s on {train['device']} "
                     f"(batch {train['batch']}, crop {train['crop']})")
    elif train:
        lines.append(f"train: {train}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(STEPS), help="steps, comma-separated")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "device-out")))
    parser.add_argument("--clips", type=Path, nargs="*", help="same-image's clips "
                        "(default: .device/clips, else ../shared/clips)")
    parser.add_argument("--sizes", default="1080p,4k", help="speed on the GPU")
    parser.add_argument("--frames", type=int, default=120, help="speed: frames rendered")
    parser.add_argument("--speed-clip", type=Path, help="speed's content (default: the "
                        "carried street clip, else bench_render_speed.py's)")
    parser.add_argument("--train-steps", type=int, default=200)
    args = parser.parse_args()
    steps = {"env": environment, "tests": cuda_tests, "same-image": same_image,
             "speed": render_speed, "profile": render_profile, "train": training_speed}
    chosen = [s.strip() for s in args.only.split(",")]
    unknown = set(chosen) - set(steps)
    if unknown:
        parser.error(f"unknown steps {sorted(unknown)}: choose among {', '.join(STEPS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / LOG).write_text("")
    results: dict = {}
    for name in chosen:
        started = time.perf_counter()
        try:
            results[name] = steps[name](args, args.out)
        except Exception as err:  # one failed step must not lose the others' figures
            results[name] = {"error": f"{type(err).__name__}: {err}"}
        results[name]["seconds"] = round(time.perf_counter() - started, 1)
        (args.out / "device_checks.json").write_text(json.dumps(results, indent=1))
        print(f"[{name} done in {results[name]['seconds']} s]", flush=True)
    print(table(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
