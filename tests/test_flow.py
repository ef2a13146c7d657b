"""Optical flow on synthetic pairs whose motion is known exactly."""

import cv2
import numpy as np
import pytest
import torch

from lexp import flow
from lexp.errors import UsageError

H, W = 240, 320


@pytest.fixture(scope="module")
def texture() -> np.ndarray:
    """A smooth random texture, uint8 RGB (something for flow to lock on to)."""
    rng = np.random.default_rng(0)
    grey = cv2.GaussianBlur(rng.random((2 * H, 2 * W)).astype(np.float32), (0, 0), 2.0)
    grey = cv2.resize(grey, (W, H), interpolation=cv2.INTER_AREA)
    grey = (grey - grey.min()) / (grey.max() - grey.min())
    tint = np.float32([1.0, 0.8, 0.6])
    return np.rint(grey[..., None] * tint * 255).astype(np.uint8)


def moved(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return cv2.warpAffine(image, matrix, (W, H), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REFLECT)


def true_flow(matrix: np.ndarray) -> np.ndarray:
    """Where an affine warp sends each pixel: (2, H, W)."""
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    nx = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]
    ny = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]
    return np.stack([nx - xs, ny - ys])


SHIFT = np.float64([[1, 0, 1.3], [0, 1, -0.7]])  # a sub-pixel translation
ROTATION = cv2.getRotationMatrix2D((W / 2, H / 2), 1.5, 1.0)  # up to ~5 px at the corners


@pytest.mark.parametrize("name", ["dis", "dis-fast", "dis-ultrafast", "farneback"])
@pytest.mark.parametrize("motion", [SHIFT, ROTATION], ids=["shift", "rotation"])
def test_endpoint_error_under_a_quarter_pixel(texture, name, motion):
    estimate = flow.make_estimator(name).pair(texture, moved(texture, motion))
    assert estimate.shape == (2, H, W) and estimate.dtype == np.float32
    assert flow.endpoint_error(estimate, true_flow(motion), margin=16) < 0.25


def test_sign_convention(texture):
    right = np.float64([[1, 0, 3.0], [0, 1, 0.0]])  # content moves 3 px to the right
    estimate = flow.make_estimator("dis").pair(texture, moved(texture, right))
    assert np.median(estimate[0]) == pytest.approx(3.0, abs=0.1)
    assert np.median(estimate[1]) == pytest.approx(0.0, abs=0.1)


def test_half_scale_reports_full_frame_pixels(texture):
    motion = np.float64([[1, 0, 4.0], [0, 1, 2.0]])
    estimate = flow.make_estimator("dis", scale=0.5).pair(texture, moved(texture, motion))
    assert flow.endpoint_error(estimate, true_flow(motion), margin=24) < 0.25


def test_warping_the_next_frame_back_recovers_this_one(texture):
    b = moved(texture, SHIFT)
    estimate = flow.make_estimator("dis").pair(texture, b)
    back = flow.warp_backward(b, estimate)
    error = np.abs(back.astype(int) - texture.astype(int))[16:-16, 16:-16].mean()
    plain = np.abs(b.astype(int) - texture.astype(int))[16:-16, 16:-16].mean()
    assert error < 0.2 * plain  # 2.6 against 18.4 levels; the wrong sign gives 25.6


def test_bad_parameters():
    with pytest.raises(UsageError):
        flow.make_estimator("raft-tiny")
    with pytest.raises(UsageError):
        flow.make_estimator("dis", scale=0)
    with pytest.raises(UsageError):
        flow.DISFlow("slow")
    assert flow.make_estimator("dis-fast").key() == {"estimator": "dis", "scale": 1.0,
                                                    "preset": "fast"}


def read_flo(path) -> np.ndarray:
    """OpenCV's reader, the reference: (2, H, W) float32."""
    return cv2.readOpticalFlow(str(path)).transpose(2, 0, 1)


def test_flo_files_round_trip(tmp_path):
    f = np.random.default_rng(1).normal(0, 5, (2, 7, 9)).astype(np.float32)
    path = tmp_path / "a.flo"
    path.write_bytes(flow.flo_bytes(f))
    assert path.read_bytes()[:4] == b"PIEH" and path.stat().st_size == 12 + 7 * 9 * 8
    assert np.array_equal(read_flo(path), f)


def test_colours_are_torchvisions():
    from lexp.torch_env import torchvision

    f = np.random.default_rng(2).normal(0, 4, (2, 16, 16)).astype(np.float32)
    ours = flow.flow_to_rgb(f).astype(int)
    theirs = torchvision().utils.flow_to_image(torch.from_numpy(f))
    theirs = theirs.permute(1, 2, 0).numpy().astype(int)
    assert np.abs(ours - theirs).max() <= 1  # they floor where we round


def test_colour_coding():
    still = flow.flow_to_rgb(np.zeros((2, 4, 4), np.float32))
    assert (still == 255).all()  # no motion: white
    right = np.zeros((2, 4, 4), np.float32)
    right[0] = 5
    r, g, b = flow.flow_to_rgb(right)[0, 0].astype(int)
    assert r > 200 and g < 60 and b < 60  # rightwards is red on the Middlebury wheel
    noise = np.full((2, 4, 4), 0.05, np.float32)
    assert flow.flow_to_rgb(noise).min() > 230  # sub-pixel jitter stays near white


def test_lexp_flow_cli_cache_and_exports(clips, tmp_path):
    import json

    from tests.conftest import run_lexp

    env = {"LEXP_CACHE_DIR": str(tmp_path / "cache")}
    args = ["flow", str(clips["square"]), "--json"]
    first = run_lexp(*args, "--export-flo", str(tmp_path / "flo"), "--export-video",
                     str(tmp_path / "flow.mp4"), env=env)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["pairs"] == 11
    assert summary["cache"] == {"hits": 0, "misses": 11, "damaged": 0}
    assert 2.5 < summary["max_motion_px"] < 6  # the square moves (3, 1) px a frame
    assert "(dis-medium, chosen by auto)" in first.stderr
    flos = sorted((tmp_path / "flo").iterdir())
    assert len(flos) == 11 and read_flo(flos[0]).shape == (2, 64, 96)
    assert (tmp_path / "flow.mp4").stat().st_size > 0
    again = json.loads(run_lexp(*args, env=env).stdout)
    assert again["cache"] == {"hits": 11, "misses": 0, "damaged": 0}
    both = json.loads(run_lexp(*args, "--backward", env=env).stdout)
    assert both["pairs"] == 22 and both["cache"]["misses"] == 11
    uncached = json.loads(run_lexp(*args, "--no-cache", "-m", "farneback", env=env).stdout)
    assert uncached["method"] == "farneback" and uncached["cache"]["hits"] == 0


def test_lexp_flow_bad_input(clips, tmp_path):
    from tests.conftest import assert_clean_failure, run_lexp

    env = {"LEXP_CACHE_DIR": str(tmp_path / "cache")}
    one = run_lexp("flow", str(clips["one_frame"]), env=env)
    assert_clean_failure(one)
    assert "at least two frames" in one.stderr
    assert_clean_failure(run_lexp("flow", str(tmp_path / "missing.mp4"), env=env))
    assert run_lexp("flow", str(clips["square"]), "--scale", "0", env=env).returncode == 2


def test_a_cache_that_cannot_be_written_costs_time_not_the_result(clips, tmp_path):
    """A full disk, a read-only home, LEXP_CACHE_DIR naming a file: flow and render still
    work, and say once that nothing was kept."""
    from tests.conftest import decode_rgb, run_lexp

    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache should be")
    env = {"LEXP_CACHE_DIR": str(not_a_folder)}
    proc = run_lexp("flow", str(clips["square"]), env=env)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "cannot be written" in warnings[0], proc.stderr
    out = tmp_path / "out.png"
    proc = run_lexp("render", str(clips["square"]), "-m", "flow", "-o", str(out), env=env)
    assert proc.returncode == 0 and "internal error" not in proc.stderr, proc.stderr
    assert proc.stderr.count("cannot be written") == 1 and decode_rgb(out).shape[:2] == (64, 96)
    assert not_a_folder.read_text() == "a file where the cache should be"


def test_a_damaged_cache_file_is_detected_recomputed_and_reported(clips, tmp_path):
    import json

    from tests.conftest import run_lexp

    env = {"LEXP_CACHE_DIR": str(tmp_path / "cache")}
    assert run_lexp("flow", str(clips["square"]), env=env).returncode == 0
    entries = sorted((tmp_path / "cache" / "flow").glob("??/*/flow.npy"))
    data = entries[0].read_bytes()
    entries[0].write_bytes(data[:-3] + bytes(3))  # bit rot
    entries[1].write_bytes(data[: len(data) // 3])  # truncated
    proc = run_lexp("flow", str(clips["square"]), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["cache"] == {"hits": 9, "misses": 2, "damaged": 2}
    assert "2 damaged flow cache entries" in proc.stderr
    fixed = json.loads(run_lexp("flow", str(clips["square"]), "--json", env=env).stdout)
    assert fixed["cache"] == {"hits": 11, "misses": 0, "damaged": 0}


def test_cache_survives_kill_9_and_concurrent_runs(tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from lexp import synthetic
    from lexp.flow.cache import FlowCache

    clip = synthetic.write_video(tmp_path / "c.mp4", synthetic.night_street(320, 180, 90))
    cmd = [sys.executable, "-m", "lexp", "flow", str(clip), "--json"]
    for n, delay in enumerate((0.35, 0.45, 0.55)):  # kill -9 at moments inside the fill
        root = tmp_path / f"cache{n}"
        env = {**os.environ, "LEXP_CACHE_DIR": str(root)}
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        cache = FlowCache(root)
        for _, _, folder in cache.entries():
            assert cache.get(folder.name) is not None  # every committed entry is whole
        assert cache.damaged == 0
        cache.sweep_staging(older_than=0)  # what a killed writer left, prune() sweeps
        assert not list(root.glob("flow/??/.*"))
    env = {**os.environ, "LEXP_CACHE_DIR": str(tmp_path / "cache0")}  # a half-filled cache
    runs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            for _ in range(2)]
    outs = [(p.wait(timeout=120), p.stdout.read()) for p in runs]
    assert all(code == 0 for code, _ in outs), outs
    assert all(json.loads(out)["cache"]["damaged"] == 0 for _, out in outs)
    assert len(FlowCache(tmp_path / "cache0").entries()) == 89  # one per pair, none twice
