"""The command line as users meet it: real processes, exit codes, stdout vs stderr."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from lexp import media, stills
from lexp.media import ClipSource
from tests.conftest import (
    assert_clean_failure,
    ctrl_c_reaches_it,
    decode_rgb,
    run_lexp,
    write_bad_inputs,
)


def first_frame(path):
    with media.open_clip(ClipSource(str(path), "video", (path,))) as clip:
        return next(iter(clip.frames()))[1].copy()


def no_temp_files(folder):
    return not [p for p in folder.rglob("*") if p.name.startswith(".lexp-tmp-")]


def test_help_lists_only_working_commands_and_exit_codes():
    proc = run_lexp("--help")
    assert proc.returncode == 0
    text = proc.stdout.decode()
    for command in ("render", "flow", "train", "download", "bench"):
        assert f" {command} " in text
    assert "Exit codes" in text
    assert run_lexp("--version").stdout.decode().startswith("lexp ")
    assert "Examples" in run_lexp("render", "--help").stdout.decode()


def test_render_a_video(clips, tmp_path):
    out = tmp_path / "out.jpg"
    proc = run_lexp("render", str(clips["street"]), "-o", str(out), "-m", "mean")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b""  # results only on stdout; nothing asked for here
    assert "2.0 s exposure, 40 frames stacked" in proc.stderr
    settings = stills.read_settings(out)
    assert settings["method"] == "mean" and settings["frames_used"] == 40
    assert settings["input"] == str(clips["street"])
    assert settings["config"]["transfer"] == "srgb" and settings["lexp_version"]
    assert no_temp_files(tmp_path)


def test_render_options_reach_the_metadata(clips, tmp_path):
    out = tmp_path / "out.tif"
    proc = run_lexp("render", str(clips["street"]), "-o", str(out), "-m", "lighten",
                    "--start", "5f", "--end", "1.5", "--stride", "2", "--ev", "0.5",
                    "--tone", "soft")
    assert proc.returncode == 0, proc.stderr
    s = stills.read_settings(out)
    assert s["method"] == "max" and s["first_frame"] == 5 and s["last_frame"] == 29
    assert s["frames_used"] == 13 and s["output"]["bit_depth"] == 16
    assert s["config"]["window"] == {"start": "5f", "end": "1.5s", "stride": 2,
                                     "max_frames": None}
    assert decode_rgb(out).dtype == np.uint16


def test_stdout_and_stdin_give_the_same_image_as_files(clips, tmp_path):
    by_path = tmp_path / "by_path.png"
    assert run_lexp("render", str(clips["street"]), "-o", str(by_path)).returncode == 0
    want = decode_rgb(by_path)
    for clip in ("street", "street_mkv"):
        proc = run_lexp("render", "-", "-o", "-", "--format", "png",
                        stdin=clips[clip].read_bytes())
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout[:8] == b"\x89PNG\r\n\x1a\n"
        got = cv2.cvtColor(cv2.imdecode(np.frombuffer(proc.stdout, np.uint8),
                                        cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
        assert np.array_equal(got, want), clip


def test_stdout_defaults_to_jpeg_with_settings(clips):
    proc = run_lexp("render", str(clips["square"]), "-o", "-", "--quality", "90")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout[:2] == b"\xff\xd8"  # JPEG SOI
    assert b'lexp:{"clip"' in proc.stdout[:4096]  # the settings ride along


def test_one_frame_clip_renders_that_frame(clips, tmp_path):
    out = tmp_path / "one.png"
    proc = run_lexp("render", str(clips["one_frame"]), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(decode_rgb(out), first_frame(clips["one_frame"]))
    # A longer flow exposure holds the frame: same picture, and it says so (no estimator).
    held = tmp_path / "held.png"
    proc = run_lexp("render", str(clips["one_frame"]), "-m", "flow", "--exposure", "10f",
                    "-o", str(held))
    assert proc.returncode == 0, proc.stderr
    assert "held still for 0.9 s more" in proc.stderr and "dis-medium" not in proc.stderr
    assert np.abs(decode_rgb(held).astype(int) - decode_rgb(out)).max() <= 1


def test_frame_folder_and_shell_expanded_frames(frames_dir, tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert run_lexp("render", str(frames_dir), "-o", str(a)).returncode == 0
    files = sorted(str(p) for p in frames_dir.iterdir())  # as a shell glob would pass them
    assert run_lexp("render", *files, "-o", str(b)).returncode == 0
    assert np.array_equal(decode_rgb(a), decode_rgb(b))
    assert stills.read_settings(a)["frames_used"] == 12
    proc = run_lexp("render", str(frames_dir), "-o", str(tmp_path / "c.png"), "--end", "1")
    assert_clean_failure(proc, 2)
    assert "--fps" in proc.stderr
    assert run_lexp("render", str(frames_dir), "-o", str(tmp_path / "c.png"), "--end", "1",
                    "--fps", "5").returncode == 0
    assert stills.read_settings(tmp_path / "c.png")["frames_used"] == 5


@pytest.fixture
def bad_inputs(tmp_path, clips):
    bad = tmp_path / "bad"
    bad.mkdir()
    write_bad_inputs(bad, clips["street"].read_bytes())
    return bad


@pytest.mark.parametrize("name,reason", [
    ("empty.mp4", "empty"), ("notes.mp4", "not a video"), ("truncated.mp4", "truncated"),
    ("empty_dir", "no videos or images"), ("junk_dir", "no videos or images"),
    ("mixed_sizes", "is 30x22"), ("missing.mp4", "no such file"),
])
def test_bad_input_fails_cleanly(bad_inputs, tmp_path, name, reason):
    out = tmp_path / "out.jpg"
    proc = run_lexp("render", str(bad_inputs / name), "-o", str(out))
    assert_clean_failure(proc)
    assert reason in proc.stderr and "hint" in proc.stderr or name == "missing.mp4"
    assert not out.exists() and no_temp_files(tmp_path)


def test_unwritable_output_fails_before_decoding(clips, tmp_path):
    proc = run_lexp("render", str(clips["street"]), "-o", str(tmp_path / "no" / "dir" / "o.jpg"))
    assert_clean_failure(proc)
    assert "does not exist" in proc.stderr
    if os.geteuid() != 0:  # root can write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert_clean_failure(run_lexp("render", str(clips["street"]), "-o",
                                      str(locked / "o.jpg")))


@pytest.mark.parametrize("args,code", [
    (["--method", "blend"], 2), (["--start", "abc"], 2), (["--bit-depth", "16"], 2),
    (["--quality", "0"], 2), (["-o", "out.gif"], 2),
])
def test_usage_errors_exit_2(clips, tmp_path, args, code):
    proc = run_lexp("render", str(clips["street"]), *args, cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("*.gif")) and not list(tmp_path.glob("*.jpg"))


def test_batch_reports_every_failure_and_skips_existing(clips, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    shutil.copy(clips["street"], inputs / "a.mp4")
    shutil.copy(clips["square"], inputs / "b.mp4")
    (inputs / "c.mp4").write_text("broken")
    outdir = tmp_path / "renders"
    proc = run_lexp("render", str(inputs), "-o", f"{outdir}/", "--json", "-m", "mean")
    assert proc.returncode == 3, proc.stderr  # some inputs failed
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [(r["input"].rsplit("/", 1)[1], r["status"]) for r in lines] == [
        ("a.mp4", "ok"), ("b.mp4", "ok"), ("c.mp4", "failed")]
    assert lines[0]["frames"] == 40 and lines[0]["output"].endswith("a_mean.jpg")
    assert "not a video" in lines[2]["error"]
    assert sorted(p.name for p in outdir.iterdir()) == ["a_mean.jpg", "b_mean.jpg"]
    assert "1 failed" in proc.stderr
    before = (outdir / "a_mean.jpg").stat().st_mtime_ns
    again = run_lexp("render", str(inputs / "a.mp4"), str(inputs / "b.mp4"), "-o", str(outdir),
                     "--json", "-m", "mean")
    assert again.returncode == 0
    assert [json.loads(x)["status"] for x in again.stdout.decode().splitlines()] == [
        "skipped", "skipped"]
    assert (outdir / "a_mean.jpg").stat().st_mtime_ns == before
    forced = run_lexp("render", str(inputs / "a.mp4"), "-o", str(outdir), "--overwrite",
                      "-m", "mean")
    assert forced.returncode == 0 and (outdir / "a_mean.jpg").stat().st_mtime_ns != before


def test_all_inputs_failing_exits_1(tmp_path):
    for name in ("x.mp4", "y.mp4"):
        (tmp_path / name).write_text("nope")
    proc = run_lexp("render", str(tmp_path / "x.mp4"), str(tmp_path / "y.mp4"), "-o",
                    str(tmp_path / "out") + "/")
    assert proc.returncode == 1
    assert proc.stderr.count("error:") == 2


def test_refuses_to_write_an_image_to_a_terminal(clips):
    import pty

    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "lexp", "render", str(clips["street"]),
                               "-o", "-"], stdout=follower, stderr=subprocess.PIPE, timeout=60,
                              env={**os.environ, "NO_COLOR": "1"})
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode == 2 and b"terminal" in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_mid_render_leaves_nothing(clips, tmp_path, sig):
    out = tmp_path / "out.jpg"
    data = clips["street_mkv"].read_bytes()
    proc = subprocess.Popen([sys.executable, "-m", "lexp", "render", "-", "-o", str(out)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "NO_COLOR": "1"},
                            preexec_fn=ctrl_c_reaches_it)
    proc.stdin.write(data[: len(data) // 2])  # half a stream: lexp is now mid-render
    proc.stdin.flush()
    time.sleep(2.0)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    err = err.decode()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not out.exists() and no_temp_files(tmp_path)


def test_help_stays_light_and_render_never_imports_torch(clips, tmp_path):
    probe = ("import sys, runpy; sys.argv = ['lexp'] + sys.argv[1:]\n"
             "try:\n    runpy.run_module('lexp', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "print(' '.join(sorted(m for m in ('numpy', 'cv2', 'torch') if m in sys.modules)),"
             " file=sys.stderr)")
    help_run = subprocess.run([sys.executable, "-c", probe, "--help"], capture_output=True,
                              text=True, timeout=60)
    assert help_run.stderr.strip().splitlines()[-1:] in ([], [""])  # nothing heavy for --help
    render_run = subprocess.run([sys.executable, "-c", probe, "render", str(clips["square"]),
                                 "-o", str(tmp_path / "o.jpg")], capture_output=True, text=True,
                                timeout=60)
    assert render_run.stderr.strip().splitlines()[-1] == "cv2 numpy"  # and no torch


def test_an_input_is_never_overwritten(frames_dir):
    victim = frames_dir / "frame1.png"
    before = victim.read_bytes()
    proc = run_lexp("render", str(frames_dir), "-o", str(victim), "--overwrite")
    assert_clean_failure(proc, 2)
    assert "one of the inputs" in proc.stderr and victim.read_bytes() == before


def test_a_full_disk_leaves_nothing(clips, tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)],
                          capture_output=True)
    if made.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        proc = run_lexp("render", str(clips["street"]), "-o", str(mount / "out.tif"))
        assert_clean_failure(proc)
        assert "no space left" in proc.stderr
        assert list(mount.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_help_states_the_keep_sharp_default_that_config_holds():
    """render --help writes --still-below's default out (importing lexp.config for it
    would slow every --help): it must say what the config uses."""
    from lexp.config import STILL_BELOW_PX

    proc = run_lexp("render", "--help-all", env={"COLUMNS": "400"})
    assert f"Default {STILL_BELOW_PX:g}.".encode() in proc.stdout


def test_render_help_is_brief_and_help_all_is_whole():
    """--help: the dozen options a newcomer needs, within a screen or so at 80 columns;
    --help-all: every option the command parses, with its whole help."""
    from lexp.cli.app import app
    from lexp.cli.render import RENDER_BRIEF

    brief = run_lexp("render", "--help", env={"COLUMNS": "80"}).stdout.decode()
    whole = run_lexp("render", "--help-all", env={"COLUMNS": "80"}).stdout.decode()
    assert len(brief.splitlines()) <= 80 and "lexp render --help-all" in brief
    assert all(len(line) <= 80 for line in brief.splitlines())
    assert "--flow " not in brief and "--exact" not in brief and "ORB" not in whole
    import typer.main

    command = typer.main.get_command(app).commands["render"]
    options = [o for p in command.params for o in p.opts if o.startswith("--")]
    assert len(options) > 35
    for option in options:
        assert option in whole, option
    for name in RENDER_BRIEF:  # every brief entry names a real parameter, shown in --help
        param = next(p for p in command.params if p.name == name)
        assert param.opts[0] in brief or param.human_readable_name in brief, name
    # The brief help leaves the command as it was: parsing still knows every option.
    assert run_lexp("render", "--help", "--exact").returncode == 0


def test_a_long_job_says_how_long_it_expects_once_without_a_terminal(monkeypatch, capsys):
    """In a log there is no bar: after 2 s a job that will take over 10 s says what is
    left, once; a short one says nothing."""
    from lexp.cli import show

    clock = [100.0]
    monkeypatch.setattr(show.time, "monotonic", lambda: clock[0])
    reporter = show.Reporter()
    assert not reporter.interactive  # pytest captures stderr: not a terminal
    with reporter.progress("clip.mp4") as on_progress:
        for done in range(1, 101):
            clock[0] += 0.5  # half a second a frame: 50 s in all
            on_progress(done, 100)
    with reporter.progress("short.mp4") as on_progress:
        for done in range(1, 11):
            clock[0] += 0.5  # 5 s in all
            on_progress(done, 10)
    # A slow start (auto choosing, 10 s) is not the pace of the frames: the 122-s render
    # said "about 25 s to go", a 24-s one "2330 s".
    with reporter.progress("late.mp4") as on_progress:
        clock[0] += 10.0
        for done in range(1, 101):
            clock[0] += 0.5
            on_progress(done, 100)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["clip.mp4: about 48 s to go (5 of 100 frames in 2 s)",
                     "late.mp4: about 48 s to go (5 of 100 frames in 12 s)"]
    with show.Reporter(quiet=True).progress("x") as on_progress:
        assert on_progress is None
