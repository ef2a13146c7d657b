"""scripts/device_checks.py, the one call a lent GPU machine gets: its plumbing runs here,
CPU against CPU, so the call there does not fail on a script error."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "device_checks.py"


@pytest.fixture(scope="module")
def checks():
    spec = importlib.util.spec_from_file_location("device_checks_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bench(scores: list[tuple[str, str, str, float]]) -> dict:
    return {"quality": {"scores": [{"clip": c, "protocol": p, "method": m, "psnr": v}
                                   for c, p, m, v in scores]}}


def test_differences_pair_scores_and_the_table_fails_past_a_tenth_of_a_db(checks):
    cpu = _bench([("a.mp4", "gap-fill", "flow", 30.0), ("a.mp4", "extrapolate", "flow", 25.0),
                  ("b.mp4", "extrapolate", "learned", 22.0)])
    gpu = _bench([("b.mp4", "extrapolate", "learned", 21.85),  # another order
                  ("a.mp4", "extrapolate", "flow", 25.04), ("a.mp4", "gap-fill", "flow", 30.0)])
    rows = checks.psnr_differences(cpu, gpu)
    assert {(r["clip"], r["protocol"], r["method"]): round(r["delta"], 3) for r in rows} == {
        ("a.mp4", "gap-fill", "flow"): 0.0, ("a.mp4", "extrapolate", "flow"): 0.04,
        ("b.mp4", "extrapolate", "learned"): -0.15}
    worst = max(rows, key=lambda r: abs(r["delta"]))
    line = checks.table({"same-image": {"worst": worst, "scores": 3,
                                        "pass": abs(worst["delta"]) <= checks.SAME_IMAGE_DB}})
    assert "0.150 dB (b.mp4, extrapolate, learned)" in line and "FAIL" in line


def test_same_image_runs_end_to_end_here(clips, tmp_path):
    """Without CUDA both benches run on the CPU: the same scores to the bit, a PASS, and the
    results file written."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--only", "env,same-image", "--out",
                           str(out), "--clips", str(clips["street"])],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((out / "device_checks.json").read_text())
    same = results["same-image"]
    methods = {row["method"] for row in same["rows"]}
    assert same["scores"] == len(same["rows"]) >= 2 and methods == {"flow", "learned"}
    assert same["pass"]
    assert all(row["delta"] == 0 for row in same["rows"])
    assert "same image: worst |GPU - CPU| 0.000 dB" in proc.stdout.splitlines()[-1]
    assert results["env"]["cpu_cores"] >= 1


def test_an_unknown_step_is_a_usage_error():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--only", "tests,warp-drive"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "warp-drive" in proc.stderr


def test_the_gpus_render_run_here_is_the_cpus(clips):
    """scripts/same_image_on_cpu.py: the torch path (on_device, as a GPU runs it) forced
    onto the CPU, against the numpy one, through the whole quality bench."""
    script = SCRIPT.parent / "same_image_on_cpu.py"
    proc = subprocess.run([sys.executable, str(script), str(clips["street"]), "--methods",
                           "flow", "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["rows"] and result["torch_renders"] >= len(result["rows"])
    assert result["pass"] and abs(result["worst"]["delta"]) <= 0.1
    assert result["seconds"]["torch"] > 0
