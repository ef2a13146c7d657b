"""lexp as a citizen of shells, pipelines, batch jobs and cron."""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from lexp import batch, jobs, stills, synthetic
from lexp.config import OutputConfig, RenderConfig
from lexp.errors import UsageError
from lexp.media import ClipSource, ffmpeg_exe
from tests.conftest import REPO, assert_clean_failure, decode_rgb, run_lexp

ENV = {**os.environ, "NO_COLOR": "1"}


def test_a_real_shell_pipeline_of_images(clips, tmp_path):
    by_path = tmp_path / "by_path.png"
    assert run_lexp("render", str(clips["street"]), "-o", str(by_path)).returncode == 0
    piped = tmp_path / "piped.png"
    lexp = f"{shlex.quote(sys.executable)} -m lexp"
    pipeline = (f"{shlex.quote(ffmpeg_exe())} -v error -i {shlex.quote(str(clips['street']))} "
                f"-f image2pipe -c:v png - | {lexp} -q render - -o - --format png --fps 20 "
                f"| cat > {shlex.quote(str(piped))}")
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], capture_output=True,
                          text=True, timeout=120, env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(decode_rgb(piped), decode_rgb(by_path))  # PNG frames are lossless
    settings = stills.read_settings(piped)
    assert settings["frames_used"] == 40 and settings["clip"]["fps"] == 20


@pytest.fixture
def twenty_clips(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    first = synthetic.write_video(folder / "clip00.mp4", synthetic.night_street(160, 90, 40))
    for i in range(1, 20):
        shutil.copy(first, folder / f"clip{i:02d}.mp4")
    return folder


def test_batch_killed_halfway_then_rerun_finishes_the_rest(twenty_clips, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lexp", "render", str(twenty_clips), "-o", f"{out}/",
           "--jobs", "2", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    done_first = []
    for line in proc.stdout:
        done_first.append(json.loads(line))
        if len(done_first) == 6:
            proc.send_signal(signal.SIGTERM)  # cron's or a scheduler's way to stop us
            break
    rest, err = proc.stdout.read(), proc.stderr.read()  # not communicate(): see above
    proc.wait(timeout=60)
    done_first += [json.loads(line) for line in rest.decode().splitlines()]
    assert proc.returncode == 130, err.decode()
    assert "interrupted" in err.decode()
    assert all(r["status"] == "ok" for r in done_first), done_first
    assert 6 <= len(done_first) < 20
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no temp files, no lock files
    reported = {Path(r["output"]).name for r in done_first}
    finished = {p.name for p in out.iterdir()}
    # Every reported clip is on disk; a worker may finish one more in the instant it is
    # stopped, but nothing on disk is partial (checked below, after the re-run).
    assert reported <= finished and len(finished) < 20
    stamps = {name: (out / name).stat().st_mtime_ns for name in finished}

    again = subprocess.run(cmd, capture_output=True, timeout=120, env=ENV)
    assert again.returncode == 0, again.stderr.decode()
    second = [json.loads(line) for line in again.stdout.decode().splitlines()]
    skipped = {Path(r["output"]).name for r in second if r["status"] == "skipped"}
    rendered = {Path(r["output"]).name for r in second if r["status"] == "ok"}
    assert skipped == finished  # redoes nothing
    assert len(rendered) == 20 - len(finished)  # finishes the rest
    assert all((out / name).stat().st_mtime_ns == stamps[name] for name in finished)
    for image in out.iterdir():  # every output whole
        assert cv2.imread(str(image)) is not None
        assert stills.read_settings(image)["frames_used"] == 40


def test_an_output_being_rendered_elsewhere_is_skipped(clips, tmp_path):
    target = tmp_path / "out.jpg"
    with batch.OutputLock(str(target)) as locked:
        assert locked
        proc = run_lexp("render", str(clips["square"]), "-o", str(target), "--json")
    assert proc.returncode == 0
    result = json.loads(proc.stdout)
    assert result["status"] == "skipped" and "another lexp run" in result["error"]
    assert "None" not in proc.stderr
    assert not target.exists()
    assert run_lexp("render", str(clips["square"]), "-o", str(target)).returncode == 0
    assert target.exists() and not (tmp_path / ".out.jpg.lexp-lock").exists()


def sources(names):
    return [ClipSource(f"in/{n}", "video", (Path(f"in/{n}"),)) for n in names]


def test_shards_are_disjoint_and_cover_everything(tmp_path):
    names = [f"clip{i}.mp4" for i in range(50)]
    plan = lambda shard: jobs.plan_jobs(sources(names), f"{tmp_path}/out/", RenderConfig(),  # noqa: E731
                                        OutputConfig(), shard=shard)
    everything = {j.output for j in plan(None)}
    parts = [{j.output for j in plan((i, 4))} for i in range(1, 5)]
    assert set().union(*parts) == everything
    assert sum(len(p) for p in parts) == len(everything)
    assert all(len(p) >= 5 for p in parts)  # roughly balanced
    # A new file does not move the others between shards.
    grown = jobs.plan_jobs(sources(names + ["new.mp4"]), f"{tmp_path}/out/", RenderConfig(),
                           OutputConfig(), shard=(2, 4))
    assert parts[1] <= {j.output for j in grown}
    for bad in ("0/4", "5/4", "x", "1/0", "2"):
        with pytest.raises(UsageError):
            jobs.parse_shard(bad)


def test_output_templates(tmp_path):
    srcs = [ClipSource(str(tmp_path / d / "clip.mp4"), "video", (tmp_path / d / "clip.mp4",))
            for d in ("day1", "day2")]
    plan = jobs.plan_jobs(srcs, str(tmp_path / "out" / "{parent}" / "{stem}_{method}.png"),
                          RenderConfig(method="max"), OutputConfig())
    assert [j.output for j in plan] == [str(tmp_path / "out" / d / "clip_max.png")
                                        for d in ("day1", "day2")]
    assert all(j.format == "png" and Path(j.output).parent.is_dir() for j in plan)
    with pytest.raises(UsageError, match="would both write"):
        jobs.plan_jobs(srcs, str(tmp_path / "{stem}.jpg"), RenderConfig(), OutputConfig())
    frames = tmp_path / "day3" / "frames"
    frame_src = ClipSource(str(frames), "frames", (frames / "f1.png", frames / "f2.png"))
    [job] = jobs.plan_jobs([frame_src], str(tmp_path / "{parent}-{stem}.jpg"), RenderConfig(),
                           OutputConfig())
    assert Path(job.output).name == "day3-frames.jpg"
    with pytest.raises(UsageError, match="bad output template"):
        jobs.plan_jobs(srcs, str(tmp_path / "{nope}.jpg"), RenderConfig(), OutputConfig())


def test_template_from_the_command_line(clips, tmp_path):
    proc = run_lexp("render", str(clips["square"]), str(clips["street"]), "-o",
                    str(tmp_path / "r" / "{stem}-{method}.tif"), "-m", "min")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["square-min.tif",
                                                                  "street-min.tif"]
    assert_clean_failure(run_lexp("render", str(clips["square"]), "--shard", "9/4"), 2)


def test_completion_scripts_are_fresh():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_completions.py"),
                           "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_bash_completion_answers(tmp_path):
    if not shutil.which("bash"):
        pytest.skip("no bash")
    lexp = tmp_path / "bin" / "lexp"
    lexp.parent.mkdir()
    lexp.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m lexp \"$@\"\n")
    lexp.chmod(0o755)
    script = (f"source {REPO / 'completions' / 'lexp.bash'}\n"
              "COMP_WORDS=(lexp render clip.mp4 --method ''); COMP_CWORD=4\n"
              "_lexp_completion lexp; printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30,
                          env={**ENV, "PATH": f"{lexp.parent}:{os.environ['PATH']}"})
    assert proc.stdout.split() == ["auto", "flow", "learned", "mean", "max", "min", "median",
                                   "lighten", "darken"]


def test_quiet_from_the_environment(clips, tmp_path):
    proc = run_lexp("render", str(clips["square"]), "-o", str(tmp_path / "o.jpg"),
                    env={"LEXP_QUIET": "1"})
    assert proc.returncode == 0 and proc.stderr == ""


def test_a_worker_killed_mid_batch_costs_only_its_own_clip(twenty_clips, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "lexp", "render", str(twenty_clips), "-o",
                             f"{out}/", "--jobs", "2", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV)
    results = [json.loads(proc.stdout.readline())]  # both workers are up and busy now
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    os.kill(int(children[0]), signal.SIGKILL)  # as the OOM killer would
    # Read the rest through the same buffered reader: communicate() would skip lines that
    # readline() had already buffered.
    rest, err = proc.stdout.read(), proc.stderr.read()
    proc.wait(timeout=120)
    results += [json.loads(line) for line in rest.decode().splitlines()]
    statuses = [r["status"] for r in results]
    assert len(results) == 20, err.decode()
    assert statuses.count("failed") <= 1  # killed between clips: 0
    assert proc.returncode == (3 if "failed" in statuses else 0)
    assert all(r["error"] == "the worker process stopped" for r in results
               if r["status"] == "failed")
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_install_completion_for_bash(tmp_path):
    lexp = Path(sys.executable).parent / "lexp"
    if not lexp.exists() or not shutil.which("bash"):
        pytest.skip("needs the installed lexp script and bash")
    proc = subprocess.run(["bash", "-c", f"{shlex.quote(str(lexp))} --install-completion"],
                          capture_output=True, text=True, timeout=60,
                          env={**ENV, "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    installed = tmp_path / ".bash_completions" / "lexp.sh"
    assert "_LEXP_COMPLETE=complete_bash" in installed.read_text()
    assert str(installed) in (tmp_path / ".bashrc").read_text()


def test_no_colour_off_a_terminal_or_with_no_color(tmp_path):
    import pty
    import re

    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    missing = str(tmp_path / "missing.mp4")
    piped = subprocess.run([sys.executable, "-m", "lexp", "render", missing],
                           capture_output=True, timeout=60, env=env)
    assert piped.returncode == 1 and b"\x1b[" not in piped.stderr  # not a TTY: plain text
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "lexp", "render", missing],
                              stdout=subprocess.PIPE, stderr=follower, timeout=60,
                              env={**env, "NO_COLOR": "1", "TERM": "xterm-256color"})
        os.close(follower)
        follower = None
        err = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            err += chunk
    finally:
        if follower is not None:
            os.close(follower)
        os.close(leader)
    assert proc.returncode == 1 and b"error" in err
    assert not re.search(rb"\x1b\[[0-9;]*(3[0-9]|9[0-7])[;m]", err)  # no colour codes
