"""Real footage from ../shared/clips (skipped when the folder is absent)."""

import json

import cv2
import numpy as np
import pytest

from lexp import colour, media, renderers
from lexp.config import RenderConfig
from lexp.media import ClipSource, VideoClip
from tests.conftest import decode_rgb, needs_real_clips, real_clips, run_lexp

pytestmark = needs_real_clips


def test_every_real_clip_renders(tmp_path):
    clips = real_clips()
    proc = run_lexp("render", *map(str, clips), "-o", f"{tmp_path}/", "--json", "-m", "mean",
                    timeout=600)
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert len(results) == len(clips) and all(r["status"] == "ok" for r in results)
    for r in results:
        img = cv2.imread(r["output"])
        assert img is not None and img.std() > 1  # a real picture, not a blank
        assert r["frames"] >= 40
        assert "warnings" not in r  # no clip looks truncated


def test_stdin_gives_the_same_image_as_the_path(tmp_path):
    # The same frames through the pipe as from the file (auto's judging of a piped clip
    # is tested in test_auto; the smallest clip, the shaken park, takes it 30 s to steady).
    clip = min(real_clips(), key=lambda p: p.stat().st_size)
    by_path = tmp_path / "path.png"
    assert run_lexp("render", str(clip), "-o", str(by_path), "-m", "mean").returncode == 0
    proc = run_lexp("render", "-", "-o", "-", "--format", "png", "-m", "mean",
                    stdin=clip.read_bytes())
    assert proc.returncode == 0, proc.stderr
    piped = cv2.imdecode(np.frombuffer(proc.stdout, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(cv2.cvtColor(piped, cv2.COLOR_BGR2RGB), decode_rgb(by_path))


@pytest.mark.parametrize("name", ["trees_wind_walker_244p.mp4", "street_traffic_window_360p.mp4"])
def test_mean_matches_a_float64_reference(name):
    path = next((p for p in real_clips() if p.name == name), None)
    if path is None:
        pytest.skip(f"{name} is not in ../shared/clips")
    # The reference decodes with the other decoder (the ffmpeg pipe) and sums in float64.
    total, n = None, 0
    with VideoClip(str(path), name) as clip:
        for _, frame in clip.frames(reuse_buffer=True):
            linear = colour.decode(frame / 255.0, "srgb")
            total = linear if total is None else total + linear
            n += 1
    want = colour.encode(total / n, "srgb").astype(np.float64)
    with media.open_clip(ClipSource(str(path), "video", (path,))) as clip:
        stacked = renderers.stack_clip(clip, RenderConfig())
    got = renderers.finish(stacked.linear, RenderConfig()).astype(np.float64)
    assert stacked.frames_used == n
    assert np.abs(got - want).max() * 255 < 0.5


@pytest.mark.slow
@pytest.mark.parametrize("name", ["trees_wind_walker_244p.mp4", "street_traffic_window_360p.mp4"])
def test_flow_never_loses_to_the_linear_mean_on_real_footage(name):
    """The robustness half of the flow-render targets, on two clips (DESIGN.md §3)."""
    from lexp import bench

    path = next((p for p in real_clips() if p.name == name), None)
    if path is None:
        pytest.skip(f"{name} is not in ../shared/clips")
    report = bench.run_quality([str(path)], bench.resolve_methods("mean,flow"),
                               list(bench.PROTOCOLS.values()))
    scores = {(s.protocol, s.method): s.psnr for s in report.scores}
    assert scores[("gap-fill", "flow")] >= scores[("gap-fill", "mean")] - 0.3
    assert scores[("extrapolate", "flow")] >= scores[("extrapolate", "mean")] - 1.0
