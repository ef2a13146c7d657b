"""A long exposure that builds up as frames arrive (issue 42): ``lexp render DIR
--follow`` and ``lexp render - --follow``, previews, checkpoints and resuming.

The frames are the synthetic street (lexp.synthetic), written as PNG by a separate
writer process the way cameras and copy tools write: slowly, some in two halves with a
pause between, some under a temporary name then renamed, some out of name order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from lexp import follow, follow_state, synthetic
from lexp.config import RenderConfig
from lexp.errors import UsageError
from lexp.follow_options import Every, FollowOptions, Until
from lexp.media import ClipSource
from tests.conftest import assert_clean_failure, run_lexp

WRITER = r'''
import os, sys, time
from pathlib import Path
import cv2
from lexp import synthetic
folder, count, pause = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
frames = list(synthetic.night_street(160, 90, count))
order = list(range(count))
for i in range(0, count - 1, 7) if sys.argv[4] == "shuffled" else ():
    order[i], order[i + 1] = order[i + 1], order[i]  # every 7th pair out of name order
for n, i in enumerate(order):
    data = cv2.imencode(".png", cv2.cvtColor(frames[i], cv2.COLOR_RGB2BGR))[1].tobytes()
    name = folder / f"frame_{i:03d}.png"
    if n % 3 == 0:  # a copy that stalls half-way, longer than two looks
        with open(name, "wb") as f:
            f.write(data[: len(data) // 2]); f.flush(); time.sleep(4 * pause)
            f.write(data[len(data) // 2:])
    elif n % 3 == 1:  # written under a temporary name, then renamed
        (folder / f".{name.name}.part").write_bytes(data)
        os.rename(folder / f".{name.name}.part", name)
    else:
        name.write_bytes(data)
    time.sleep(pause)
'''

POLL = "0.05"


def start_writer(folder: Path, count: int, pause: float = 0.05,
                 order: str = "shuffled") -> subprocess.Popen:
    """A writer of ``count`` frames, ``pause`` s apart, some out of name order
    (``shuffled``) or none (``ordered``)."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(count),
                             str(pause), order])
    STARTED.append(proc)
    return proc


STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_process_left():
    """A test that fails mid-way must not leave a follower (which never ends on its own)
    or a writer running."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def start_follow(folder: Path, out: Path, *args: str) -> subprocess.Popen:
    # SIGINT as a terminal gives it: a test run in the background (``cmd &`` in a script)
    # would pass its ignored SIGINT on, and lexp keeps an ignored SIGINT ignored.
    proc = subprocess.Popen([sys.executable, "-m", "lexp", "render", str(folder), "--follow",
                             "-o", str(out), "--poll", POLL, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    STARTED.append(proc)
    return proc


def frames_in_checkpoint(out: Path) -> int:
    try:
        with np.load(follow_state.checkpoint_path(out)) as data:
            return len(json.loads(str(data["header"]))["names"])
    except (OSError, ValueError, KeyError):
        return 0


def street_folder(tmp_path: Path, frames: int) -> Path:
    """A folder of ``frames`` PNG frames of the synthetic street, already written."""
    folder = tmp_path / "shots"
    folder.mkdir()
    for i, frame in enumerate(synthetic.night_street(160, 90, frames)):
        cv2.imwrite(str(folder / f"f{i}.png"), frame)
    return folder


def wait_for_checkpoint(out: Path, frames: int, timeout: float) -> None:
    """Until the checkpoint beside ``out`` holds ``frames`` frames (or ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while frames_in_checkpoint(out) < frames and time.monotonic() < deadline:
        time.sleep(0.05)


def read16(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.int64)


@pytest.mark.parametrize("method", ["mean", "max", "flow"])
def test_killed_and_run_again_it_ends_as_the_batch_render_of_the_same_frames(tmp_path,
                                                                            method):
    """SIGKILL mid-run, the same command again: the exposure resumes from its checkpoint
    and ends equal to the batch render of every frame (to 1/1000), no frame lost or
    counted twice; its trail video (mean) holds one frame per frame, none twice, the
    last one the picture."""
    folder, out = tmp_path / "shots", tmp_path / "night.png"
    video = tmp_path / "night.mp4"
    folder.mkdir()
    count = 24
    # (the flow render follows the frames as they come: an intervalometer's, in order)
    writer = start_writer(folder, count, order="ordered" if method == "flow" else "shuffled")
    args = ("-m", method, "--preview-every", "1f", "--until", f"{count}f", "--bit-depth",
            "16", "--json", *(["--video", str(video)] if method == "mean" else []))
    first = start_follow(folder, out, *args)
    wait_for_checkpoint(out, 8, timeout=60)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert 8 <= frames_in_checkpoint(out) < count
    second = start_follow(folder, out, *args)
    stdout, stderr = second.communicate(timeout=120)
    writer.wait(timeout=60)
    assert second.returncode == 0, stderr
    record = json.loads(stdout)
    assert record["frames"] == count and record["resumed"] >= 8
    assert "resumed from" in stderr
    with np.load(follow_state.checkpoint_path(out)) as data:
        names = json.loads(str(data["header"]))["names"]
    assert sorted(names) == sorted(p.name for p in folder.iterdir())  # each once
    batch = tmp_path / "batch.png"
    proc = run_lexp("render", str(folder), "-o", str(batch), "-m", method, "--bit-depth",
                    "16", *(["--no-gap-fill"] if method == "max" else []))
    assert proc.returncode == 0, proc.stderr
    assert np.abs(read16(out) - read16(batch)).max() <= 65535 // 1000
    if method == "mean":
        from lexp.media import ClipSource, open_clip

        with open_clip(ClipSource(str(video), "video", (video,))) as clip:
            shown = [frame for _, frame in clip.frames()]
        assert len(shown) == count
        picture = read16(out) / 257.0
        assert np.abs(shown[-1][..., ::-1] - picture).mean() < 3  # H.264's loss apart


def test_a_frame_of_another_size_is_skipped_and_the_night_goes_on(tmp_path):
    folder, out = street_folder(tmp_path, 4), tmp_path / "out.jpg"
    assert run_lexp("render", str(folder), "-o", str(folder / "earlier.jpg"), "-m",
                    "mean").returncode == 0  # another run's picture, in the folder
    cv2.imwrite(str(folder / "f2b.png"), np.zeros((50, 60, 3), np.uint8))
    proc = run_lexp("render", str(folder), "--follow", "-o", str(out), "-m", "mean",
                    "--idle", "0.5", "--poll", POLL, "--json")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["frames"] == 4 and "no new frame" in record["ended"]
    assert "f2b.png is 60x50, but the clip's frames are 160x90; skipped" in proc.stderr
    assert "earlier.jpg: lexp wrote it" in proc.stderr


def test_ctrl_c_ends_it_with_every_frame_seen(tmp_path):
    folder, out = street_folder(tmp_path, 5), tmp_path / "out.jpg"
    run = start_follow(folder, out, "-m", "max", "--json", "--preview-every", "1f")
    wait_for_checkpoint(out, 5, timeout=30)
    run.send_signal(signal.SIGINT)
    stdout, stderr = run.communicate(timeout=30)
    assert run.returncode == 0, stderr
    record = json.loads(stdout)
    assert record["frames"] == 5 and "stopped" in record["ended"]
    assert out.exists()


def test_a_second_run_on_one_output_is_refused_and_a_changed_command_line_named(tmp_path):
    folder, out = street_folder(tmp_path, 3), tmp_path / "out.jpg"
    run = start_follow(folder, out, "-m", "max", "--preview-every", "1f")
    wait_for_checkpoint(out, 3, timeout=30)
    second = run_lexp("render", str(folder), "--follow", "-o", str(out), "-m", "max")
    assert_clean_failure(second, 1)
    assert "another lexp run is writing" in second.stderr
    run.send_signal(signal.SIGTERM)
    run.communicate(timeout=30)
    changed = run_lexp("render", str(folder), "--follow", "-o", str(out), "-m", "mean",
                       "--idle", "0.2")
    assert_clean_failure(changed, 2)
    assert "made with method max, this run has method mean" in changed.stderr
    fresh = run_lexp("render", str(folder), "--follow", "-o", str(out), "-m", "mean",
                     "--idle", "0.2", "--poll", POLL, "--overwrite", "--json")
    assert fresh.returncode == 0, fresh.stderr
    assert json.loads(fresh.stdout)["resumed"] == 0


@pytest.mark.parametrize("method", ["mean", "flow"])
def test_a_stream_on_stdin_is_followed_frame_by_frame(tmp_path, method):
    """A webcam-like stream (matroska from ffmpeg) on stdin: previews while it plays, and
    the end of the stream gives the same image as the batch render of it (the flow
    render's too, traced a frame at a time); an MP4 on stdin, readable only once it has
    ended, is refused."""
    from lexp.media.ffmpeg import ffmpeg_exe

    clip = synthetic.write_video(tmp_path / "clip.mp4", synthetic.night_street(160, 90, 30))
    stream = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(clip), "-c", "copy",
                             "-f", "matroska", "-"], capture_output=True, check=True).stdout
    out = tmp_path / "live.png"
    proc = run_lexp("render", "-", "--follow", "-o", str(out), "-m", method,
                    "--preview-every", "10f", "--bit-depth", "16", "--json", stdin=stream)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["frames"] == 30
    assert "10 frames → " in proc.stderr and "20 frames → " in proc.stderr
    batch = tmp_path / "batch.png"
    assert run_lexp("render", str(clip), "-o", str(batch), "-m", method, "--bit-depth",
                    "16", "--no-align").returncode == 0
    assert np.abs(read16(out) - read16(batch)).max() <= 65535 // 1000
    refused = run_lexp("render", "-", "--follow", "-o", str(tmp_path / "x.jpg"), "-m",
                       "mean", stdin=clip.read_bytes())
    assert_clean_failure(refused, 1)
    assert "matroska" in refused.stderr


def test_a_preview_that_cannot_be_written_is_a_warning_and_the_run_goes_on(tmp_path,
                                                                          monkeypatch):
    """A full disk at a preview: the last good one stays, the next is tried."""
    from lexp.errors import OutputError
    from lexp.image import Image

    folder = street_folder(tmp_path, 6)
    real_save, calls = Image.save, []

    def save(self, path, **kwargs):
        calls.append(self.frames_used)
        if len(calls) in (2, 3):
            raise OutputError("no space left on device")
        return real_save(self, path, **kwargs)

    monkeypatch.setattr(Image, "save", save)
    warnings = []
    source = ClipSource(str(folder), "frames")
    result = follow.follow(
        source, tmp_path / "out.jpg", RenderConfig(method="max"),
        FollowOptions(preview_every=Every(frames=1), idle_seconds=0.3,
                             poll_seconds=0.05),
        image_format="jpeg", warn=warnings.append)
    assert result.frames == 6 and calls == [1, 2, 3, 4, 5, 6, 6]
    assert len(warnings) == 1 and "no space left" in warnings[0]
    assert (tmp_path / "out.jpg").exists()


@pytest.mark.parametrize(("text", "frames", "seconds"), [
    ("500f", 500, None), ("8h", None, 8 * 3600), ("90m", None, 5400), ("45", None, 45)])
def test_until_reads_frames_durations_and_clock_times(text, frames, seconds):
    until = Until.parse(text, now=1000.0)
    assert until.frames == frames
    assert until.deadline == (None if seconds is None else 1000.0 + seconds)
    now = time.mktime((2026, 12, 7, 22, 0, 0, 0, 0, -1))
    assert Until.parse("05:30", now=now).deadline == \
        time.mktime((2026, 12, 8, 5, 30, 0, 0, 0, -1))
    for bad in ("soon", "25:00", "0f", "1.5f"):
        with pytest.raises(UsageError):
            Until.parse(bad)


def test_follow_refuses_what_needs_a_finished_clip(tmp_path):
    (tmp_path / "shots").mkdir()
    for args in (["-m", "auto"], ["-m", "median"], ["-m", "max", "--stride", "2"],
                 ["-m", "max", "-o", "-"]):
        proc = run_lexp("render", str(tmp_path / "shots"), "--follow", *args)
        assert_clean_failure(proc, 2)
    file = tmp_path / "a.png"
    cv2.imwrite(str(file), np.zeros((8, 8, 3), np.uint8))
    assert_clean_failure(run_lexp("render", str(file), "--follow", "-m", "max"), 2)
    assert os.listdir(tmp_path / "shots") == []


def test_a_followed_night_is_calibrated_as_the_finished_one(tmp_path):
    """Darks, flats, hot pixels from the darks, cloud-lit frames left out (against the
    frames kept so far) and the plane masked (a frame behind): the followed night ends
    as the batch render of the finished folder with the same calibration."""
    synthetic.NightSky().write(tmp_path, darks=4, flats=4)
    calibration = ["-m", "max", "--dark", str(tmp_path / "darks"), "--flat",
                   str(tmp_path / "flats"), "--hot-pixels", "--reject", "bright,streaks",
                   "--bit-depth", "16"]
    followed = tmp_path / "followed.png"
    proc = run_lexp("render", str(tmp_path / "lights"), "--follow", "-o", str(followed),
                    "--idle", "0.5", "--poll", POLL, "--json", *calibration)
    assert proc.returncode == 0, proc.stderr
    details = json.loads(proc.stdout)["details"]["calibration"]
    assert [r["name"] for r in details["rejected"]] == ["lights_012.png", "lights_013.png"]
    assert [m["name"] for m in details["masked"]] == ["lights_007.png"]
    assert details["hot_pixels"] == 3
    batch = tmp_path / "batch.png"
    proc = run_lexp("render", str(tmp_path / "lights"), "-o", str(batch), "--no-gap-fill",
                    *calibration)
    assert proc.returncode == 0, proc.stderr
    assert np.abs(read16(followed) - read16(batch)).max() <= 65535 // 1000


def test_a_folder_deleted_mid_night_ends_with_the_frames_seen(tmp_path):
    import shutil

    folder, out = street_folder(tmp_path, 4), tmp_path / "out.jpg"
    run = start_follow(folder, out, "-m", "mean", "--preview-every", "1f", "--json")
    wait_for_checkpoint(out, 4, timeout=30)
    shutil.rmtree(folder)
    stdout, stderr = run.communicate(timeout=30)
    assert run.returncode == 1 and "Traceback" not in stderr
    assert f"the folder {folder} is gone: {out} holds the 4 frames seen" in stderr
    assert out.exists()


def test_the_nights_span_is_the_pictures_exposure(tmp_path):
    """Four frames shot 30 s apart (EXIF): the followed picture's exposure is the two
    minutes they cover, in --json and in its ExposureTime."""
    from PIL import Image

    folder = tmp_path / "shots"
    folder.mkdir()
    for i, frame in enumerate(synthetic.night_street(160, 90, 4)):
        exif = Image.Exif()
        exif.get_ifd(0x8769)[36867] = f"2026:12:07 22:{i // 2:02d}:{30 * (i % 2):02d}"
        Image.fromarray(frame).save(folder / f"IMG_{i}.jpg", exif=exif.tobytes(), quality=95)
    out = tmp_path / "out.jpg"
    proc = run_lexp("render", str(folder), "--follow", "-o", str(out), "-m", "max",
                    "--idle", "0.5", "--poll", POLL, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["exposure_s"] == pytest.approx(120.0)
    assert float(Image.open(out).getexif().get_ifd(0x8769)[33434]) == pytest.approx(120.0)



def test_a_checkpoint_of_another_format_version_or_damaged_is_refused(tmp_path):
    out = tmp_path / "out.jpg"
    state = follow_state.checkpoint_path(out)
    follow_state.write(state, {"names": []}, {})
    data = dict(np.load(state))
    header = json.loads(str(data["header"]))
    header["version"] = follow_state.STATE_VERSION + 1
    np.savez(state, header=np.array(json.dumps(header)))
    folder = street_folder(tmp_path, 2)
    proc = run_lexp("render", str(folder), "--follow", "-o", str(out), "-m", "mean")
    assert_clean_failure(proc, 1)
    assert f"version {follow_state.STATE_VERSION + 1}; this lexp resumes" in proc.stderr
    state.write_bytes(b"not a checkpoint")
    proc = run_lexp("render", str(folder), "--follow", "-o", str(out), "-m", "mean")
    assert_clean_failure(proc, 1)
    assert "is damaged" in proc.stderr and "--overwrite" in proc.stderr
