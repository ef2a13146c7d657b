"""Where the generator earns its place: a checkpoint carries what it measured against the
flow render on clips it never trained on; ``-m learned`` keeps the flow render where that
was a loss, ``auto`` picks the generator past a clip's end only where it was a gain, and
bench always scores the network itself. Also: fewer training windows per clip."""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest

import lexp
from lexp import checkpoint, synthetic
from lexp.model import GeneratorConfig
from lexp.training import sample_cache
from lexp.training import samples as data

from .conftest import REPO

SHIPPED = checkpoint.shipped_dir() / checkpoint.SHIPPED["lexp"]


def _measured(tmp_path, gain: float | None, worst: float | None = None):
    """A copy of the shipped checkpoint, with an extrapolation gain recorded (or none)."""
    path = tmp_path / f"g{gain}_{worst}.pt"
    shutil.copyfile(SHIPPED, path)
    worst = gain if worst is None else worst
    record = {"extrapolate": {"gain_median_db": gain, "gain_worst_db": worst,
                              "worst_clip": "x.mp4", "clips": {}}}
    if gain is not None:
        checkpoint.record_measurement(path, record)
    else:  # as a training run writes it: no measurement at all
        data_ = checkpoint.read(path)
        data_["scores"] = {"val_loss": 0.1}
        checkpoint.save(path, data_)
    return path


@pytest.fixture(scope="module")
def street():
    return list(synthetic.night_street(160, 90, frames=12))


def _render(frames, method, ckpt=None, **kw):
    return lexp.render(frames, fps=20, method=method, end="5f", exposure="64f",
                       flow="dis", checkpoint=ckpt and str(ckpt), cache=False, **kw)


def test_the_measurement_is_kept_in_the_checkpoint(tmp_path):
    path = _measured(tmp_path, 0.61, -0.1)
    assert checkpoint.measured(path) == checkpoint.Measured(0.61, -0.1)
    assert checkpoint.measured(path).earned()
    assert not checkpoint.Measured(0.61, -0.31).earned()  # one clip lost too much
    assert not checkpoint.Measured(0.0, 0.0).earned()
    assert checkpoint.measured(path, "gap-fill") is None
    assert checkpoint.read(path)["scores"]["validation"]["extrapolate"]["worst_clip"] == "x.mp4"
    assert checkpoint.measured(_measured(tmp_path, None)) is None
    broken = tmp_path / "broken.pt"  # a record that is not a number is no record
    shutil.copyfile(SHIPPED, broken)
    checkpoint.record_measurement(broken, {"extrapolate": {"gain_median_db": "high"}})
    assert checkpoint.measured(broken) is None
    for junk in ([1, 2], {"validation": [0.5]}, {"validation": {"extrapolate": 0.5}},
                 {"validation": {"extrapolate": {"gain_median_db": True}}}):
        data_ = checkpoint.read(SHIPPED)
        data_["scores"] = junk
        checkpoint.save(broken, data_)
        assert checkpoint.measured(broken) is None, junk
    # The network is untouched by recording.
    before, _ = checkpoint.load_network(SHIPPED)
    after, _ = checkpoint.load_network(path)
    for (name, a), b in zip(before.state_dict().items(), after.state_dict().values(),
                            strict=True):
        assert np.array_equal(a.numpy(), b.numpy()), name


def test_learned_keeps_the_flow_render_where_it_measured_worse(tmp_path, street):
    flow = _render(street, "flow")
    losing = _render(street, "learned", _measured(tmp_path, -0.2))
    assert losing.method == "learned"
    assert np.array_equal(losing.linear, flow.linear)
    assert "measured -0.20 dB" in losing.details.generator.fallback
    assert losing.details.generator.blend is None
    assert any("flow render kept" in part for part in losing.details.summary())
    winning = _render(street, "learned", _measured(tmp_path, 0.6))
    assert winning.details.generator.fallback is None
    assert winning.details.generator.blend is not None
    assert not np.array_equal(winning.linear, flow.linear)
    # Unmeasured weights (a fresh training run's) are the user's choice: used.
    fresh = _render(street, "learned", _measured(tmp_path, None))
    assert fresh.details.generator.fallback is None
    assert np.array_equal(fresh.linear, winning.linear)


def test_between_real_frames_there_is_nothing_to_fall_back_from(tmp_path, street):
    image = lexp.render(street, fps=20, method="learned", flow="dis", cache=False,
                        checkpoint=str(_measured(tmp_path, -0.2)))
    assert image.details.generator.fallback is None  # the flow render, as always there


def test_bench_scores_the_network_itself(tmp_path, street):
    from lexp import bench

    ckpt = _measured(tmp_path, -0.2)
    (learned,) = bench.resolve_methods("learned", str(ckpt))
    flow = bench.METHODS["flow"]
    indices = list(range(5))
    mine = bench.run_method(learned, street, 20.0, indices, 64)
    physics = bench.run_method(flow, street, 20.0, indices, 64)
    assert np.abs(mine - physics).max() > 1e-3


def test_auto_extrapolates_with_the_generator_only_where_it_measured_better(tmp_path, street):
    better = _render(street, "auto", _measured(tmp_path, 0.6))
    assert better.method == "learned" and "+0.60 dB over flow" in better.details.auto.figures
    for gain, worst in ((-0.2, None), (None, None), (0.6, -0.5)):
        image = _render(street, "auto", _measured(tmp_path, gain, worst))
        assert image.method == "flow" and "their motion is continued" in image.details.auto.words
    # Within the clip auto never reaches for the generator.
    within = lexp.render(street, fps=20, method="auto", flow="dis", cache=False,
                         checkpoint=str(_measured(tmp_path, 0.6)))
    assert within.method in ("flow", "mean")


def test_fewer_windows_per_clip_are_spread_over_it(tmp_path):
    every = list(data.windows(384))
    assert len(every) == 64
    few = list(data.windows(384, per_case=3))
    assert [w[0] for w in few] == ["extrapolate"] * 3 + ["gap-fill"] * 3
    for case in ("extrapolate", "gap-fill"):
        mine = [w for w in every if w[0] == case]
        chosen = [w for w in few if w[0] == case]
        assert chosen == [mine[0], mine[round((len(mine) - 1) / 2)], mine[-1]]
        assert {w[3] for w in chosen} == {1, 2}  # both speeds are still seen
    assert list(data.windows(384, per_case=100)) == every
    assert len(list(data.windows(40, per_case=1))) == 1  # a short clip: its one window
    # Fewer windows are other samples: a cache entry of their own.
    source = data.find_sources(["synthetic:1"])[0]
    config = GeneratorConfig(work_size=64)
    assert sample_cache.entry_path(source, config, tmp_path) != \
        sample_cache.entry_path(source, config, tmp_path, 3)
    assert len(sample_cache.clip_samples(source, config, per_case=2)) == 4


def _script():
    spec = importlib.util.spec_from_file_location("measure_checkpoint",
                                                  REPO / "scripts" / "measure_checkpoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_measure_script_records_and_refuses_training_clips(tmp_path, street, capsys):
    script = _script()
    clip = synthetic.write_video(tmp_path / "held_out.mp4", iter(street), fps=20)
    (tmp_path / "SPLITS.md").write_text("train:\n- a.mp4\n\nvalidation:\n- held_out.mp4\n"
                                        "- b.mp4\n\nmore\n")
    assert script.validation_clips(tmp_path) == [tmp_path / "held_out.mp4", tmp_path / "b.mp4"]
    ckpt = tmp_path / "g.pt"
    shutil.copyfile(SHIPPED, ckpt)
    assert script.main([str(ckpt), "--clips", str(clip), "--record"]) == 0
    record = checkpoint.read(ckpt)["scores"]["validation"]
    assert set(record) == {"extrapolate"}  # 12 frames: too short for gap-fill
    entry = record["extrapolate"]
    scores = entry["clips"]["held_out.mp4"]
    assert entry["gain_median_db"] == pytest.approx(scores["learned"] - scores["flow"], abs=2e-3)
    assert checkpoint.measured(ckpt).median_db == entry["gain_median_db"]
    assert "median gain" in capsys.readouterr().out
    # A checkpoint trained on the clip is refused, and nothing is recorded.
    trained = checkpoint.read(ckpt)
    trained["train"] = {"data": [str(tmp_path)]}
    trained["scores"] = {}
    checkpoint.save(ckpt, trained)
    assert script.main([str(ckpt), "--clips", str(clip), "--record"]) == 1
    assert "was trained on held_out.mp4" in capsys.readouterr().err
    assert checkpoint.measured(ckpt) is None


def test_train_takes_windows_per_clip(tmp_path):
    import json

    from .conftest import run_lexp

    proc = run_lexp("train", "--data", "synthetic:2", "--windows-per-clip", "3", "--dry-run",
                    "--run-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["config"]["windows_per_clip"] == 3
    proc = run_lexp("train", "--data", "synthetic:2", "--windows-per-clip", "0", "--dry-run")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
