"""What a training run learns from and toward: the cases it trains on (``--case``;
extrapolate alone by default, the only case ``-m learned`` acts on), the weights it starts
from (``--init``: fine-tuning a checkpoint, whose training data stays named in the result),
the charge on doing worse than the flow render (``--harm-weight``) and the loss itself
(``--loss psnr``: the dB lost against the flow render)."""

from __future__ import annotations

import json

import pytest
import torch

from lexp import checkpoint
from lexp.config import TRAIN_CASES, TrainConfig
from lexp.errors import UsageError
from lexp.training import samples as data
from lexp.training import train

from .conftest import run_lexp


def _run(tmp_path, run, **settings):
    """A tiny run (64-px work size); returns (summary, the data-done event)."""
    events = []
    config = TrainConfig(run_dir=str(tmp_path / run), eval_every=1, batch=2, crop=32,
                         work_size=64, val_fraction=0.34,
                         **{"data": ("synthetic:3",), "steps": 1, **settings})
    summary = train.train(config, on_event=lambda kind, **f: events.append((kind, f)))
    return summary, next(f for kind, f in events if kind == "data-done")


def test_the_cases_named_are_the_cases_of_the_samples():
    assert tuple(data.CASES) == TRAIN_CASES
    assert TrainConfig().cases == ("extrapolate",)


def test_a_run_trains_on_the_cases_it_names(tmp_path, monkeypatch):
    monkeypatch.setenv("LEXP_CACHE_DIR", str(tmp_path / "cache"))
    counts = {}
    for cases in (("extrapolate",), ("gap-fill",), TRAIN_CASES):
        summary, done = _run(tmp_path, "-".join(cases), cases=cases)
        counts[cases] = (summary["training_samples"], summary["validation_samples"])
        assert done["training_samples"] == summary["training_samples"]
    ahead, gap, both = counts.values()
    assert min(*ahead, *gap) > 0
    assert both == (ahead[0] + gap[0], ahead[1] + gap[1])  # one cache, filtered by case


def test_fine_tuning_starts_from_the_checkpoint_and_names_its_data(tmp_path, monkeypatch):
    monkeypatch.setenv("LEXP_CACHE_DIR", str(tmp_path / "cache"))
    first, _ = _run(tmp_path, "first", steps=2)
    # A step of a vanishing rate, no decay: the fine-tuned weights are the first run's.
    tuned, _ = _run(tmp_path, "tuned", data=("synthetic:2",), init=first["model"], lr=1e-12,
                    weight_decay=0.0)
    fresh, _ = _run(tmp_path, "fresh", data=("synthetic:2",), lr=1e-12, weight_decay=0.0)
    start = checkpoint.read(first["model"])
    after = checkpoint.read(tuned["model"])
    assert all(torch.allclose(start["state"][k], after["state"][k], atol=1e-6)
               for k in start["state"])
    fresh_state = checkpoint.read(fresh["model"])["state"]
    assert not all(torch.allclose(start["state"][k], fresh_state[k], atol=1e-6)
                   for k in start["state"])
    # Every clip behind the weights is named: the measurement's refusal relies on it.
    assert checkpoint.trained_on_data(after) == ["synthetic:2", "synthetic:3"]
    assert after["train"]["init"] == first["model"]


def test_init_must_match_the_architecture(tmp_path):
    with pytest.raises(UsageError, match="seed generator at 320 px"):
        train.setup.plan(TrainConfig(init="seed"))


def test_train_cli_takes_cases_and_init(tmp_path):
    proc = run_lexp("train", "--data", "synthetic:2", "--case", "gap-fill", "--case",
                    "extrapolate", "--init", "lexp", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)["config"]
    assert plan["cases"] == ["gap-fill", "extrapolate"] and plan["init"] == "lexp"
    assert json.loads(run_lexp("train", "--data", "synthetic:2", "--dry-run").stdout
                      )["config"]["cases"] == ["extrapolate"]
    for args, code, words in ((("--case", "both"), 2, "unknown --case 'both'"),
                              (("--init", "seed"), 2, "add --arch seed"),
                              (("--init", str(tmp_path / "none.pt")), 1, "no such checkpoint"),
                              (("--init", str(tmp_path)), 1, "is a folder, not a checkpoint")):
        proc = run_lexp("train", "--data", "synthetic:2", *args, "--dry-run")
        assert proc.returncode == code and words in proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_harm_weight_charges_only_what_a_sample_loses_against_the_flow_render():
    from lexp.training.losses import reconstruction_loss, sample_losses

    torch.manual_seed(0)
    target = torch.rand(4, 3, 32, 32)
    out = (target + 0.1 * torch.randn_like(target)).clamp(0, 1)
    plain = reconstruction_loss(out, target, 0.2)
    # No charge where the output equals the baseline or beats it; all of it on top where
    # the baseline is perfect.
    assert torch.isclose(reconstruction_loss(out, target, 0.2, out, 3.0), plain)
    worse = (target + 0.3 * torch.randn_like(target)).clamp(0, 1)
    assert torch.isclose(reconstruction_loss(out, target, 0.2, worse, 3.0), plain)
    assert torch.isclose(reconstruction_loss(out, target, 0.2, target, 3.0), 4 * plain)
    # Per sample: one sample worse than its baseline is charged, the others not.
    baseline = torch.cat([target[:1], worse[1:]])
    losses = sample_losses(out, target, 0.2)
    assert torch.isclose(reconstruction_loss(out, target, 0.2, baseline, 2.0),
                         losses.mean() + 2.0 * losses[0] / 4)
    # The gradient reaches the output through the charge, never the baseline.
    out.requires_grad_(True)
    reconstruction_loss(out, target, 0.2, target, 1.0).backward()
    assert out.grad.abs().sum() > 0


def test_psnr_loss_is_the_db_lost_against_the_flow_render_sample_by_sample():
    from lexp.training.losses import PSNR_FLOOR, psnr_lost, reconstruction_loss

    torch.manual_seed(0)
    target = torch.rand(3, 3, 24, 24)
    noise = torch.randn_like(target)
    baseline = target + 0.1 * noise
    # Half the error everywhere: a quarter of the squared error, 6.02 dB gained (the
    # floor, far below these errors, takes a hair of it).
    out = torch.stack([target[0] + 0.05 * noise[0], baseline[1], target[2] + 0.2 * noise[2]])
    lost = psnr_lost(out, target, baseline)
    mse = (0.1 * noise).pow(2).flatten(1).mean(1)
    assert torch.allclose(lost[0], 10 * torch.log10((mse[0] / 4 + PSNR_FLOOR) /
                                                    (mse[0] + PSNR_FLOOR)))
    assert -6.03 < float(lost[0]) < -5.9 and float(lost[1]) == 0.0
    assert 5.9 < float(lost[2]) < 6.03
    # The batch's loss: every sample weighs the same in dB; the harm charge adds what
    # the worse ones lose, and the sample left as the flow render costs nothing.
    assert torch.isclose(reconstruction_loss(out, target, 0.2, baseline, 0.0, "psnr"),
                         lost.mean())
    assert torch.isclose(reconstruction_loss(out, target, 0.2, baseline, 2.0, "psnr"),
                         lost.mean() + 2.0 * lost[2] / 3)
    # A perfect output saturates at the floor instead of running to minus infinity.
    assert torch.isfinite(psnr_lost(target, target, baseline)).all()
    # Gradients reach the output, never the baseline.
    out.requires_grad_(True)
    baseline.requires_grad_(True)
    reconstruction_loss(out, target, 0.0, baseline, 1.0, "psnr").backward()
    assert out.grad.abs().sum() > 0 and baseline.grad is None


def test_a_run_trains_and_validates_on_the_psnr_loss(tmp_path, monkeypatch):
    monkeypatch.setenv("LEXP_CACHE_DIR", str(tmp_path / "cache"))
    summary, _ = _run(tmp_path, "run", loss="psnr")
    # Validation scores the held-out clip in dB against the flow render: an untrained
    # blend is the flow render at weight 0.93, a small loss either way, not Charbonnier's.
    assert abs(summary["best_val_loss"]) < 3.0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["config"]["loss"] == "psnr"


def test_train_cli_takes_the_loss():
    proc = run_lexp("train", "--data", "synthetic:2", "--loss", "psnr", "--dry-run")
    assert proc.returncode == 0 and json.loads(proc.stdout)["config"]["loss"] == "psnr"
    proc = run_lexp("train", "--data", "synthetic:2", "--dry-run")
    assert json.loads(proc.stdout)["config"]["loss"] == "charbonnier"
    proc = run_lexp("train", "--data", "synthetic:2", "--loss", "l2", "--dry-run")
    assert proc.returncode == 2 and "unknown --loss 'l2' (hint: charbonnier or psnr)" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_train_cli_takes_harm_weight():
    proc = run_lexp("train", "--data", "synthetic:2", "--harm-weight", "2", "--dry-run")
    assert proc.returncode == 0 and json.loads(proc.stdout)["config"]["harm_weight"] == 2.0
    proc = run_lexp("train", "--data", "synthetic:2", "--harm-weight", "-1", "--dry-run")
    assert proc.returncode == 2 and "--harm-weight -1.0 must be a number ≥ 0" in proc.stderr


def test_heldout_loss_script_scores_the_flow_render_and_checkpoints(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    from .conftest import REPO

    monkeypatch.setenv("LEXP_CACHE_DIR", str(tmp_path / "cache"))
    summary, _ = _run(tmp_path, "run", steps=2)
    script = [sys.executable, str(REPO / "scripts" / "heldout_loss.py")]
    proc = subprocess.run([*script, str(tmp_path / "run"), summary["model"]],
                          capture_output=True, text=True, env=os.environ, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{summary['validation_samples']} held-out samples of 1 clip"
    flow_alone, network = (float(line.split("\t")[1]) for line in lines[1:3])
    # The run's own number for its best weights, by the same code on the same samples.
    assert abs(network - summary["best_val_loss"]) < 1e-4 and flow_alone > 0
    # And what the protocols score: its per-clip gain over the flow render, in dB.
    gains = lines[2].split("\t")[2]
    assert gains.endswith("(1 clip)") and "dB median over flow, worst" in gains
    assert abs(float(gains.split()[0])) < 10
    proc = subprocess.run([*script, str(tmp_path / "nothing")], capture_output=True,
                          text=True, env=os.environ, timeout=120)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
