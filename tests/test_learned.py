"""The learned generator: networks, training data, the training loop, checkpoints, DDP and
``lexp render -m learned``. Everything runs on tiny synthetic scenes at a 64-px work size."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from lexp import checkpoint, colour
from lexp.config import TrainConfig
from lexp.errors import InputError
from lexp.model import Evidence, GeneratorConfig, build, encode_srgb
from lexp.training import dataset, sample_cache, train
from lexp.training import samples as data
from lexp.training.losses import reconstruction_loss

from .conftest import REPO, assert_clean_failure, ctrl_c_reaches_it, run_lexp

SMALL = GeneratorConfig(work_size=64)


def random_evidence(n=2, t=5, h=20, w=30, k=5) -> Evidence:
    g = torch.Generator().manual_seed(0)
    return Evidence(torch.rand(n, t, 3, h, w, generator=g), torch.randn(n, t, 2, h, w, generator=g),
                    torch.rand(n, k, 3, h, w, generator=g), torch.tensor([[2.5, 0.0]] * n))


def test_shapes_and_the_untrained_lexp_model_is_the_flow_render():
    ev = random_evidence(h=21, w=31)  # odd sizes: padded inside, cropped back
    lexp_net = build(GeneratorConfig())
    weights = lexp_net.weights(ev)
    assert weights.shape == (2, 5, 21, 31)
    assert torch.allclose(weights.sum(1), torch.ones(2, 21, 31), atol=1e-5)
    out = lexp_net(ev)
    assert out.shape == (2, 3, 21, 31)
    # Zero last layer, bias on candidate 0: it starts as the physics (weight 0.93).
    assert weights[:, 0].min() > 0.93
    blend = (weights[:, :, None] * ev.candidates).sum(1)
    assert (blend - ev.candidates[:, 0]).abs().max() < 0.07
    seed_net = build(GeneratorConfig(arch="seed", seed_steps=3))
    seed_out = seed_net(ev)
    assert seed_out.shape == (2, 3, 21, 31) and 0 <= seed_out.min() and seed_out.max() <= 1


@pytest.fixture(scope="module")
def synthetic_samples():
    sources = data.find_sources(["synthetic:3"])
    return [s for source in sources for s in sample_cache.clip_samples(source, SMALL)]


def test_samples_hold_what_the_protocols_ask(synthetic_samples):
    cases = {s["case"] for s in synthetic_samples}
    assert cases == {"extrapolate", "gap-fill"}
    for s in synthetic_samples:
        t = 5 if s["case"] == "extrapolate" else 8
        assert s["frames"].shape == (t, 3, 36, 64) and s["flows"].shape == (t, 2, 36, 64)
        assert s["candidates"].shape == (5, 3, 36, 64) and s["truth"].shape == (3, 36, 64)
        covered = 5 if s["case"] == "extrapolate" else 57
        truth_frames = 64 if s["case"] == "extrapolate" else 57
        assert s["context"][0] == pytest.approx(math.log(truth_frames / covered), abs=1e-5)
    # The flow of a drifting scene is not zero; the first frame's is.
    drift = next(s for s in synthetic_samples if s["clip"].startswith("synthetic-drift"))
    assert np.abs(drift["flows"][0]).max() == 0 and np.abs(drift["flows"][1:]).mean() > 0.1


def test_sample_cache_is_reused_and_older_versions_are_pruned(tmp_path):
    old = [tmp_path / "0274c9722553d1b5cb15ffa098d6b4a8.npz", tmp_path / "v1-abc.npz"]
    for path in old:
        path.write_bytes(b"samples of an older lexp")
    keep = tmp_path / "notes.txt"
    keep.write_text("not a cache entry")
    source = data.find_sources(["synthetic:1"])[0]
    first = sample_cache.clip_samples(source, SMALL, cache_root=tmp_path)
    entries = sorted(p.name for p in tmp_path.glob("*.npz"))
    assert len(entries) == 1 and entries[0].startswith(f"v{data.DATA_VERSION}-")
    assert keep.exists() and not any(path.exists() for path in old)
    again = sample_cache.clip_samples(source, SMALL, cache_root=tmp_path)
    assert len(again) == len(first)
    assert all(np.array_equal(a["truth"], b["truth"].astype(a["truth"].dtype))
               for a, b in zip(first, again, strict=True))


def test_the_sample_cache_drops_what_was_used_longest_ago_past_its_size(tmp_path):
    now = time.time()

    def entry(name, megabytes, hours_ago):
        path = tmp_path / f"v{data.DATA_VERSION}-{name}.npz"
        path.write_bytes(b"x" * (megabytes << 20))
        os.utime(path, (now - hours_ago * 3600, now - hours_ago * 3600))
        return path

    ours = entry("ours", 5, 100)  # the running job's: kept, however old and large
    oldest, old, newer = entry("oldest", 3, 50), entry("old", 3, 40), entry("newer", 3, 30)
    in_use = entry("in-use", 3, 0.1)  # read minutes ago, by another run perhaps
    deleted = sample_cache.prune_least_recent(tmp_path, keep={ours}, max_bytes=12 << 20)
    assert deleted == (2, 6 << 20)  # 17 MB → 11 MB: the two used longest ago
    assert [p.exists() for p in (ours, oldest, old, newer, in_use)] == [True, False, False,
                                                                        True, True]
    # Over the limit with only recent and kept entries left: nothing more goes.
    assert sample_cache.prune_least_recent(tmp_path, keep={ours}, max_bytes=0) == (1, 3 << 20)
    assert ours.exists() and in_use.exists() and not newer.exists()


def test_reading_cached_samples_marks_the_entry_used(tmp_path, monkeypatch):
    monkeypatch.setattr(sample_cache, "_recent", sample_cache._RecentSamples())
    source = data.find_sources(["synthetic:1"])[0]
    sample_cache.clip_samples(source, SMALL, cache_root=tmp_path)
    entry = next(tmp_path.glob("*.npz"))
    long_ago = time.time() - 86400
    os.utime(entry, (long_ago, long_ago))
    stored = sample_cache.clip_samples(source, SMALL, cache_root=tmp_path)  # opened
    assert entry.stat().st_mtime > long_ago + 3600
    os.utime(entry, (long_ago, long_ago))
    stored[0]["truth"]  # read by a batch
    assert entry.stat().st_mtime > long_ago + 3600
    os.utime(entry, (long_ago, long_ago))
    sample_cache.mark_in_use([*stored, {"clip": "in memory, from no entry"}])  # training's
    assert entry.stat().st_mtime > long_ago + 3600


def test_training_prunes_other_data_from_the_cache_and_says_so(tmp_path):
    cache = tmp_path / "cache" / "train-data"
    cache.mkdir(parents=True)
    other = cache / f"v{data.DATA_VERSION}-another-dataset.npz"
    with other.open("wb") as f:  # 21 GiB, sparse: over the 20-GiB limit on no disk
        f.truncate(21 << 30)
    long_ago = time.time() - 86400
    os.utime(other, (long_ago, long_ago))
    proc = run_lexp("train", "--data", "synthetic:2", "--steps", "1", "--work-size", "64",
                    "--crop", "32", "--batch", "2", "--run-dir", str(tmp_path / "run"),
                    env={"LEXP_CACHE_DIR": str(tmp_path / "cache")}, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "deleted the cached samples of 1 clip unused the longest (21.0 GiB) to keep the " \
        "cache within 20 GiB" in proc.stderr
    assert not other.exists() and len(list(cache.glob("*.npz"))) == 2  # the run's own kept


def test_cached_samples_are_read_when_a_batch_needs_them(tmp_path, synthetic_samples,
                                                         monkeypatch):
    monkeypatch.setattr(sample_cache, "_recent", sample_cache._RecentSamples())
    source = data.find_sources(["synthetic:1"])[0]
    stored = sample_cache.clip_samples(source, SMALL, cache_root=tmp_path)
    built = [s for s in synthetic_samples if s["clip"] == source.name]
    assert all(isinstance(s, sample_cache.StoredSample) for s in stored)
    assert len(stored) == len(built) and not sample_cache._recent.arrays  # nothing read yet
    for a, b in zip(stored, built, strict=True):
        assert (a["case"], a["clip"]) == (b["case"], b["clip"])
        assert all(np.array_equal(a[k], b[k]) and a.shapes[k] == b[k].shape
                   for k in data.ARRAYS)
    # The same batches, and the same validation passes, as from samples in memory.
    for x, y in [*zip(dataset.training_loader(stored, 3, 24, seed=4),
                      dataset.training_loader(built, 3, 24, seed=4), strict=True),
                 *zip(dataset.validation_loader(stored), dataset.validation_loader(built),
                      strict=True)]:
        assert all(torch.equal(u, v) for u, v in zip([*x[0].__dict__.values(), x[1]],
                                                    [*y[0].__dict__.values(), y[1]],
                                                    strict=True))
    # A damaged entry is built again, not a crash in the middle of training.
    entry = next(tmp_path.glob("*.npz"))
    entry.write_bytes(entry.read_bytes()[:5000])
    again = sample_cache.clip_samples(source, SMALL, cache_root=tmp_path)
    assert not sample_cache._recent.arrays and not sample_cache._recent.entries  # none old
    assert np.array_equal(again[-1]["truth"], built[-1]["truth"])


def test_cache_entries_keep_only_what_cannot_be_derived(tmp_path, monkeypatch):
    monkeypatch.setattr(sample_cache, "_recent", sample_cache._RecentSamples())
    # The network sees 5 of the 8 gap-fill frames: their mean is not the render's mean.
    config = GeneratorConfig(work_size=64, max_frames=5)
    source = data.find_sources(["synthetic:1"])[0]
    built = sample_cache.clip_samples(source, config)
    stored = sample_cache.clip_samples(source, config, cache_root=tmp_path)
    assert all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype
               for a, b in zip(stored, built, strict=True) for k in data.ARRAYS)
    entry = np.load(stored[0].path)
    cases = [s["case"] for s in built]
    gap, ahead = cases.index("gap-fill"), cases.index("extrapolate")
    assert f"{gap}/mean" in entry.files and f"{ahead}/mean" not in entry.files
    assert entry[f"{ahead}/frames"].dtype == np.uint8 and f"{ahead}/candidates" not in entry.files
    in_memory = sum(b[k].nbytes for b in built for k in data.ARRAYS)
    assert stored[0].path.stat().st_size < 0.62 * in_memory


def test_a_cache_entry_removed_during_training_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(sample_cache, "_recent", sample_cache._RecentSamples())
    stored = sample_cache.clip_samples(data.find_sources(["synthetic:1"])[0], SMALL,
                               cache_root=tmp_path)
    stored[0].path.write_bytes(b"half an archive")  # rewritten by another lexp, say
    with pytest.raises(InputError, match="synthetic-lights-0 .* changed during the run"):
        stored[0]["truth"]
    stored[0].path.unlink()  # or pruned
    with pytest.raises(InputError, match="changed during the run"):
        stored[1]["frames"]
    assert not sample_cache._recent.entries


def test_samples_kept_in_memory_stay_within_the_budget(tmp_path, monkeypatch):
    stored = sample_cache.clip_samples(data.find_sources(["synthetic:1"])[0], SMALL,
                               cache_root=tmp_path)
    size = sum(stored[0][k].nbytes for k in data.ARRAYS)
    recent = sample_cache._RecentSamples()
    recent.budget = int(2.5 * size)
    monkeypatch.setattr(sample_cache, "_recent", recent)
    for sample in stored:
        sample["truth"]
        assert recent.bytes <= recent.budget and len(recent.arrays) <= 2
    first = stored[0]["frames"]  # read again from disk: the same
    assert np.array_equal(first, data._SRGB16[np.load(stored[0].path)["0/frames"]])
    assert 0 < sample_cache.memory_budget() < 2 ** 50


def test_samples_built_by_several_processes_are_the_same(tmp_path, synthetic_samples):
    sources = data.find_sources(["synthetic:3"])
    heard = []
    built = sample_cache.build_samples(sources, SMALL, tmp_path, jobs=2,
                               on_source=lambda source, count: heard.append((source, count)))
    assert sorted(heard, key=lambda h: h[0].name) == sorted(
        [(s, 20) for s in sources], key=lambda h: h[0].name)  # each once, as it is ready
    flat = [sample for samples in built for sample in samples]
    assert [s["clip"] for s in flat] == [s["clip"] for s in synthetic_samples]
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(flat, synthetic_samples, strict=True)
               for k in data.ARRAYS)
    assert len(list(tmp_path.glob("*.npz"))) == 3 and not list(tmp_path.glob(".lexp-tmp-*"))


def test_interrupting_the_sample_builders_leaves_no_half_entries(tmp_path):
    cache = tmp_path / "cache"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lexp", "train", "--data", "synthetic:6", "--jobs", "2",
         "--run-dir", str(tmp_path / "r"), "--steps", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
        env={**os.environ, "LEXP_CACHE_DIR": str(cache), "NO_COLOR": "1"},
        preexec_fn=ctrl_c_reaches_it)
    entries = cache / "train-data"
    for _ in range(300):  # until the builders are writing (at most 30 s)
        if entries.is_dir() and any(entries.iterdir()):
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    err = err.decode()
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert not list(entries.glob(".lexp-tmp-*"))
    for entry in entries.glob("*.npz"):  # whatever was finished is whole
        assert sample_cache.stored_samples(entry, "x")


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_clip_that_cannot_be_read_is_skipped_not_fatal(tmp_path, jobs):
    junk = tmp_path / "clips"
    junk.mkdir()
    (junk / "broken.mp4").write_bytes(os.urandom(4000))
    env = {"LEXP_CACHE_DIR": str(tmp_path / "cache")}
    proc = run_lexp("train", "--data", str(junk), "--data", "synthetic:2", "--jobs", jobs,
                    "--run-dir", str(tmp_path / "r"), "--steps", "1", "--work-size", "64",
                    env=env)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "broken.mp4" in warnings[0]
    # Each scene gives 10 samples of each case; the run trains on extrapolate alone.
    assert "training data: 10 samples from 1 clip, validation: 10 from 1 clip (" in proc.stderr
    assert proc.stderr.count("1 clip skipped") == 1
    assert (tmp_path / "r" / "model.pt").is_file()
    # Nothing readable at all: the reason, once, as an error.
    proc = run_lexp("train", "--data", str(junk / "broken.mp4"), "--jobs", jobs,
                    "--run-dir", str(tmp_path / "r2"), "--steps", "1", env=env)
    assert_clean_failure(proc)
    assert "broken.mp4" in proc.stderr and "warning:" not in proc.stderr


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_cache_that_cannot_be_written_stops_training_with_one_line(tmp_path, jobs):
    """A full disk or a misplaced cache is not a bad clip: no clip is skipped for it."""
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache should be")
    proc = run_lexp("train", "--data", "synthetic:2", "--jobs", jobs, "--run-dir",
                    str(tmp_path / "r"), "--steps", "1", "--work-size", "64",
                    env={"LEXP_CACHE_DIR": str(not_a_folder)})
    assert_clean_failure(proc)
    assert "cannot cache the training samples" in proc.stderr and "warning:" not in proc.stderr
    assert "LEXP_CACHE_DIR" in proc.stderr
    assert not (tmp_path / "r" / "model.pt").exists()


def test_a_run_dir_that_cannot_be_used_fails_before_any_sample_is_built(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    cache = tmp_path / "cache"
    for run_dir, code, says in [(tmp_path / "file", 2, "is a file"),
                                (tmp_path / "file" / "run", 1, "cannot use --run-dir")]:
        proc = run_lexp("train", "--data", "synthetic:1", "--run-dir", str(run_dir),
                        "--steps", "1", "--work-size", "64", env={"LEXP_CACHE_DIR": str(cache)})
        assert_clean_failure(proc, code)
        assert says in proc.stderr
    assert not (cache / "train-data").exists()


def test_clips_are_held_out_among_those_that_give_samples(tmp_path, monkeypatch):
    """A held-out clip that cannot be read would leave nothing to validate on: the split
    is made among the clips that gave samples."""
    junk = tmp_path / "clips"
    junk.mkdir()
    sources = data.find_sources(["synthetic:2"])
    # A broken clip whose name the split would hold out, beside the two good ones.
    name = next(f"broken{i}" for i in range(100) if data.split_by_clip(
        [data.Source(f"broken{i}", "video", None), *sources], 0.2)[1][0].name == f"broken{i}")
    (junk / f"{name}.mp4").write_bytes(os.urandom(4000))
    events = []
    config = TrainConfig(data=(str(junk), "synthetic:2"), run_dir=str(tmp_path / "r"),
                         steps=1, work_size=64)
    monkeypatch.setenv("LEXP_CACHE_DIR", str(tmp_path / "cache"))
    train.train(config, on_event=lambda kind, **f: events.append((kind, f)))
    done = next(f for kind, f in events if kind == "data-done")
    assert done["skipped"] == 1 and done["validation_samples"] > 0
    assert done["validation_clips"] and name not in done["validation_clips"]
    recorded = json.loads((tmp_path / "r" / "config.json").read_text())  # the split used
    assert recorded["validation_clips"] == done["validation_clips"]


def test_training_data_is_told_clip_by_clip_or_in_tenths(capsys):
    from lexp.cli import _TrainingDataReport
    from lexp.cli.show import Reporter

    few = _TrainingDataReport(Reporter())
    for i in range(3):
        few.clip(f"c{i}", 4, i + 1, 3)
    few.finish(2, 8, ["c0"], 4, 0)
    assert capsys.readouterr().err.splitlines() == [
        "c0: 4 samples", "c1: 4 samples", "c2: 4 samples",
        "training data: 8 samples from 2 clips, validation: 4 from 1 clip (c0)"]
    many = _TrainingDataReport(Reporter())  # Sky Timelapse has tens of thousands
    for i in range(200):  # and one of 201 cannot be read
        many.clip(f"c{i}", 2, i + 1, 201)
    many.finish(180, 360, [f"c{i}" for i in range(20)], 40, 1)
    lines = capsys.readouterr().err.splitlines()
    assert lines[:-1] == [f"training data: {k}/201 clips" for k in range(20, 201, 20)]
    assert lines[-1].endswith("validation: 40 from 20 clips; 1 clip skipped")
    quiet = _TrainingDataReport(Reporter(quiet=True))
    quiet.clip("c", 2, 1, 201)
    quiet.close()
    assert capsys.readouterr().err == ""


def test_a_few_steps_reduce_the_loss(synthetic_samples):
    torch.manual_seed(0)
    network = build(SMALL)
    optimiser = torch.optim.AdamW(network.parameters(), lr=5e-3)
    evidence, _ = next(iter(dataset.training_loader(synthetic_samples, 6, 32, seed=0)))
    # A truth the flow render misses: the widest blur. The network must learn to pick it.
    target = encode_srgb(evidence.candidates[:, 4])
    losses = []
    for _ in range(30):
        out = network(evidence)
        loss = reconstruction_loss(out, target, 0.2)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_flips_negate_the_flow(synthetic_samples):
    sample = dict(next(s for s in synthetic_samples if s["case"] == "extrapolate"))
    flows = np.zeros_like(sample["flows"])
    flows[1:, 0], flows[1:, 1] = 1.5, -0.5  # everything moves right and up
    frames = sample["frames"].copy()
    frames[:, :, :, :32] = 0  # the left half dark: a left-right flip shows on the right
    sample.update(flows=flows, frames=frames)
    loader = dataset.training_loader([sample], 1, 64, seed=3)
    seen = set()
    for epoch in range(12):  # one sample: an epoch is one batch, flipped as its seed says
        dataset.set_epoch(loader, epoch)
        [(ev, _)] = list(loader)
        fx, fy = float(ev.flows[0, 1, 0, 0, 0]), float(ev.flows[0, 1, 1, 0, 0])
        mirrored = bool(ev.frames[0, 0, :, :, -1].abs().max() == 0)  # dark half on the right
        assert abs(fx) == 1.5 and abs(fy) == 0.5
        assert (fx < 0) == mirrored
        seen.add((fx < 0, fy > 0))
    assert len(seen) == 4  # every combination of flips happened


def test_checkpoint_round_trip(tmp_path):
    network = build(SMALL)
    with torch.no_grad():
        for p in network.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "g.pt"
    checkpoint.save(path, checkpoint.export_payload(SMALL, network.state_dict()))
    loaded, config = checkpoint.load_network(path)
    assert config == SMALL
    ev = random_evidence()
    with torch.no_grad():
        assert torch.equal(network.eval()(ev), loaded(ev))


def test_damaged_and_foreign_checkpoints_are_clear_errors(tmp_path, clips):
    good = tmp_path / "good.pt"
    checkpoint.save(good, checkpoint.export_payload(SMALL, build(SMALL).state_dict()))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:2000])
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint\n" * 10)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    for bad in (truncated, junk, foreign, tmp_path / "missing.pt"):
        proc = run_lexp("render", str(clips["street"]), "-m", "learned", "--checkpoint",
                        str(bad), "-o", str(tmp_path / "out.jpg"))
        assert_clean_failure(proc)
        assert bad.name in proc.stderr
        assert not (tmp_path / "out.jpg").exists()


def _train(tmp_path, steps, resume=False, run="run", on_event=None, data=("synthetic:3",)):
    config = TrainConfig(data=data, run_dir=str(tmp_path / run), steps=steps,
                         eval_every=2, batch=2, crop=32, work_size=64, val_fraction=0.34)
    return train.train(config, resume=resume, on_event=on_event)


def _interrupt_at_step_2(kind, **fields):
    if kind == "eval" and fields["step"] == 2:  # last.pt of step 2 is written: Ctrl-C now
        raise KeyboardInterrupt


def test_training_writes_a_run_and_resume_continues_it(tmp_path, monkeypatch):
    monkeypatch.setenv("LEXP_CACHE_DIR", str(tmp_path / "cache"))
    straight = _train(tmp_path, 4, run="straight")
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, 4, run="split", on_event=_interrupt_at_step_2)
    resumed = _train(tmp_path, 4, resume=True, run="split")
    assert straight["steps"] == resumed["steps"] == 4
    a = checkpoint.read(tmp_path / "straight" / "last.pt")["state"]
    b = checkpoint.read(tmp_path / "split" / "last.pt")["state"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same run, bit for bit
    lines = [json.loads(x) for x in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "val_loss" in r] == [2, 4]
    assert checkpoint.load_network(tmp_path / "straight" / "model.pt")[1] == SMALL
    # A run directory is never overwritten by a fresh run.
    with pytest.raises(Exception, match="already holds a run"):
        _train(tmp_path, 2, run="straight")
    # Nor resumed on other data: its best loss was measured on its own validation clips.
    with pytest.raises(Exception, match="was trained on --data synthetic:3, not synthetic:4"):
        _train(tmp_path, 6, resume=True, run="straight", data=("synthetic:4",))


def test_validation_holds_out_whole_clips():
    sources = data.find_sources(["synthetic:10"])
    training, validation = data.split_by_clip(sources, 0.2)
    assert len(validation) == 2 and not {s.name for s in training} & {s.name for s in validation}
    again = data.split_by_clip(list(reversed(sources)), 0.2)[1]
    assert {s.name for s in again} == {s.name for s in validation}


def test_sky_timelapse_layout_is_found(tmp_path):
    import cv2

    frame = np.zeros((32, 48, 3), np.uint8)
    for video in ("v1", "v2"):
        clip = tmp_path / "sky_train" / video / f"{video}_1"
        clip.mkdir(parents=True)
        for i in range(data.MIN_FRAMES):
            cv2.imwrite(str(clip / f"{video}_1_{i:04d}.jpg"), frame + i)
    (tmp_path / "sky_train" / "v1" / "notes.txt").write_text("not a frame")
    sources = data.find_sources([str(tmp_path / "sky_train")])
    assert [(s.name, s.kind) for s in sources] == [("v1/v1_1", "frames"), ("v2/v2_1", "frames")]
    frames, _ = data.read_frames(sources[0], 64, 100)
    assert len(frames) == data.MIN_FRAMES and frames[0].shape == (32, 48, 3)


def test_a_short_clip_gives_shorter_extrapolate_samples(tmp_path):
    # Under 64 frames: one window of every frame (and its reversal); under MIN_FRAMES: none.
    assert list(data.windows(32)) == [("extrapolate", 0, 32, 1, False),
                                      ("extrapolate", 0, 32, 1, True)]
    assert list(data.windows(data.MIN_FRAMES - 1)) == []
    # 100 frames: full 64-frame windows at speed 1, one of 50 at speed 2.
    assert ("extrapolate", 0, 50, 2, False) in data.windows(100)
    assert ("extrapolate", 32, 64, 1, True) in data.windows(100)
    import cv2

    clip = tmp_path / "sky_train" / "v1" / "v1_1"
    clip.mkdir(parents=True)
    frames = data.synthetic_scene("drift", 0, frames=32, size=64)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(clip / f"{i:04d}.png"), frame[..., ::-1])
    samples = sample_cache.clip_samples(data.find_sources([str(clip)])[0], SMALL)
    assert [s["case"] for s in samples] == ["extrapolate", "extrapolate"]
    lut = colour.decode_lut("srgb")
    truth = np.mean([lut[f] for f in frames], axis=0).transpose(2, 0, 1)
    for sample in samples:  # forwards and backwards: the same frames, the same mean
        assert np.abs(sample["truth"] - truth).max() < 2e-3
        assert sample["context"][0] == pytest.approx(math.log(32 / 5), abs=1e-5)
    assert np.abs(samples[0]["frames"][0] - samples[1]["frames"][0]).max() > 0.01


def test_training_on_clips_too_short_says_how_long_they_must_be(tmp_path, clips):
    env_cache = {"LEXP_CACHE_DIR": str(tmp_path / "cache")}
    proc = run_lexp("train", "--data", str(clips["square"]), "--run-dir", str(tmp_path / "r"),
                    "--steps", "2", "--work-size", "64", env=env_cache)
    lines = proc.stderr.strip().splitlines()  # progress (the clip gave 0 samples), then why
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert lines[-1].startswith("error:") and f"at least {data.MIN_FRAMES} frames" in lines[-1]
    assert not (tmp_path / "r" / "model.pt").exists()


def test_train_cli_dry_run_and_bad_input(tmp_path):
    proc = run_lexp("train", "--data", "synthetic:4", "--dry-run", "--run-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["preset"] == "cpu" and plan["batch"] == 8 and plan["model"]["arch"] == "lexp"
    assert len(plan["validation_clips"]) == 1
    assert_clean_failure(run_lexp("train", "--data", str(tmp_path / "nothing"), "--dry-run"))
    proc = run_lexp("train", "--data", "synthetic:2", "--arch", "gan")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_two_process_ddp_run(tmp_path):
    env = {**os.environ, "LEXP_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", "29517", "-m", "lexp", "train", "--data", "synthetic:3",
           "--run-dir", str(tmp_path / "ddp"), "--steps", "4", "--eval-every", "2",
           "--batch", "2", "--crop", "32", "--work-size", "64", "--val-fraction", "0.34"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = checkpoint.read(tmp_path / "ddp" / "last.pt")
    assert state["step"] == 4 and state["scheduler"]["last_epoch"] == 4
    assert (tmp_path / "ddp" / "model.pt").is_file()


def test_render_learned_with_the_shipped_checkpoint(tmp_path, clips):
    out = tmp_path / "long.jpg"
    proc = run_lexp("render", str(clips["street"]), "-m", "learned", "--end", "5f",
                    "--exposure", "64f", "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["method"] == "learned" and out.is_file()
    assert "learned" in proc.stderr
    assert_clean_failure(run_lexp("render", str(clips["street"]), "--checkpoint", "seed",
                                  "-m", "mean", "-o", str(tmp_path / "x.jpg")), code=2)
    assert_clean_failure(run_lexp("render", str(clips["street"]), "-m", "learned", "--video",
                                  str(tmp_path / "v.mp4"), "-o", str(tmp_path / "y.jpg")),
                         code=2)
    assert not (tmp_path / "x.jpg").exists() and not (tmp_path / "y.jpg").exists()
