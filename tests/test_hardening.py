"""Hardening, round two (issue 46): what a table of one-line errors cannot check.

Outputs that are links or name stdout, signals that stop a run mid-way (HUP as INT and
TERM) and a SIGKILL's leftovers, a mirror that lies about its size, checkpoints full of
NaN, frames too small for flow, the Python API's errors, and pixels right for every
input (EXIF orientation, pixel aspect, 16-bit frames, animated images).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from lexp import download, synthetic
from tests.test_bad_inputs import lexp


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    synthetic.write_video(root / "square.mp4", synthetic.moving_square(96, 64, frames=12), fps=10)
    # Long enough (at 2 cores) that a signal lands mid-render.
    synthetic.write_video(root / "long.mp4", synthetic.night_street(480, 270, frames=240), fps=20)
    return root


# --------------------------------------------------------------------------- links, stdout


def test_an_output_link_is_written_through_and_stays_a_link(clips, tmp_path):
    (tmp_path / "real.jpg").write_bytes(b"old")
    os.symlink("real.jpg", tmp_path / "link.jpg")
    proc = lexp("render", str(clips / "square.mp4"), "-o", "link.jpg", "-m", "mean",
                "--overwrite", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "link.jpg").is_symlink()
    assert cv2.imread(str(tmp_path / "real.jpg")) is not None  # the image, through the link


def test_an_output_link_to_an_input_is_refused(clips, tmp_path):
    os.symlink(clips / "square.mp4", tmp_path / "out.jpg")
    proc = lexp("render", str(clips / "square.mp4"), "-o", "out.jpg", "--overwrite",
                cwd=tmp_path)
    assert proc.returncode == 2 and "is one of the inputs" in proc.stderr, proc.stderr
    assert (tmp_path / "out.jpg").is_symlink()


def test_a_dangling_output_link_makes_the_file_it_names(clips, tmp_path):
    os.symlink("made.jpg", tmp_path / "link.jpg")
    proc = lexp("render", str(clips / "square.mp4"), "-o", "link.jpg", "-m", "mean",
                "--video", "v.mp4", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "link.jpg").is_symlink() and (tmp_path / "made.jpg").stat().st_size


# (/dev/stdout itself is what users type, and is the same kind of link as these; it is
# left out here because a lexp with the bug, run as root, replaces the machine's own.)
@pytest.mark.parametrize("name", ["/proc/self/fd/1", "link"])
def test_an_output_that_names_stdout_writes_the_image_there(clips, tmp_path, name):
    """/dev/stdout (and a link to it) became a regular file and stdout got 0 bytes."""
    if not Path(name if name != "link" else "/proc/self/fd/1").exists():
        pytest.skip("no /proc")
    os.symlink("/proc/self/fd/1", tmp_path / "link")
    with open(tmp_path / "x.jpg", "wb") as sink:
        proc = lexp("render", str(clips / "square.mp4"), "-o", name, "--format", "jpeg",
                    "-m", "mean", "--overwrite", cwd=tmp_path, stdout=sink)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "link").is_symlink()
    assert cv2.imread(str(tmp_path / "x.jpg")) is not None


# --------------------------------------------------------------------------- signals


def _default_stop_signals() -> None:
    """In the child: HUP and INT as a terminal's shell gives them (a suite run under
    ``nohup`` or in the background would hand them down ignored, and lexp keeps an
    ignored signal ignored)."""
    for signum in (signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)


def _stop_midway(args: list[str], cwd: Path, signum: int, env: dict | None = None,
                 stdin=None, wait_for="to go") -> subprocess.CompletedProcess:
    """Start lexp, send ``signum`` once it says ``wait_for`` on stderr (or, for a
    function, once it returns True), and wait."""
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    full_env.pop("LEXP_DEBUG", None)
    proc = subprocess.Popen([sys.executable, "-m", "lexp", *args], cwd=cwd, env=full_env,
                            stdin=stdin if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=_default_stop_signals)
    said = b""
    deadline = time.monotonic() + 60
    if callable(wait_for):
        while not wait_for() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    else:
        while wait_for.encode() not in said and time.monotonic() < deadline:
            chunk = proc.stderr.read1(4096)
            if not chunk:
                break
            said += chunk
    proc.send_signal(signum)
    rest = proc.stderr.read()
    proc.wait(timeout=60)
    return subprocess.CompletedProcess(args, proc.returncode, None,
                                       (said + rest).decode("utf-8", "replace"))


def _video_begun(work: Path):
    """A wait_for: the trail video's temp file is there (the render is under way)."""
    def begun() -> bool:
        try:
            return any(p.stat().st_size > 0 for p in work.glob(".lexp-tmp-*.mp4"))
        except FileNotFoundError:  # renamed into place meanwhile
            return True
    return begun


def _env_with_progress(tmp_path: Path) -> dict:
    """A cache and a temp folder of the test's own (what is left there is checked)."""
    return {"LEXP_CACHE_DIR": str(tmp_path / "cache"), "TMPDIR": str(tmp_path / "tmp")}


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_leaves_nothing_behind(clips, tmp_path, signum):
    """SIGHUP (a closed terminal) left the lock, a partial video and exit 129."""
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "tmp").mkdir()
    proc = _stop_midway(["render", str(clips / "long.mp4"), "-o", "out.jpg", "-m", "flow",
                         "--video", "t.mp4"], work, signum, env=_env_with_progress(tmp_path),
                        wait_for=_video_begun(work))
    assert proc.returncode == 130, proc.stderr
    assert "interrupted" in proc.stderr and "Traceback" not in proc.stderr
    assert list(work.iterdir()) == []


def test_sighup_during_a_flow_export_leaves_nothing(clips, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "tmp").mkdir()
    proc = _stop_midway(["flow", str(clips / "long.mp4"), "--no-cache", "--export-flo", "flo",
                         "--export-video", "f.mp4"], work, signal.SIGHUP,
                        env=_env_with_progress(tmp_path),
                        wait_for=lambda: len(list(work.glob("flo/.lexp-partial-*/*"))) > 5)
    assert proc.returncode == 130, proc.stderr
    assert list(work.iterdir()) == []


def test_sighup_while_reading_stdin_removes_its_spool(clips, tmp_path):
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    with open(clips / "long.mp4", "rb") as stdin:
        proc = _stop_midway(["render", "-", "-o", "out.jpg", "-m", "flow"], work,
                            signal.SIGHUP, env=_env_with_progress(tmp_path), stdin=stdin,
                            wait_for=lambda: any(tmp.glob("lexp-stdin-*")))
    assert proc.returncode == 130, proc.stderr
    assert list(work.iterdir()) == [] and list(tmp.iterdir()) == []


def test_sighup_during_bench_says_so_and_removes_its_temp_folder(tmp_path):
    """bench caught no interrupt: Typer made it a silent exit 130, and the folder of
    /tmp/lexp-bench-* stayed after a SIGHUP."""
    (tmp_path / "tmp").mkdir()
    proc = _stop_midway(["bench", "--speed", "synthetic:320x180x200"], tmp_path,
                        signal.SIGHUP, env=_env_with_progress(tmp_path),
                        wait_for="stages timed: 2")
    assert proc.returncode == 130, proc.stderr
    assert "error: interrupted" in proc.stderr
    assert list((tmp_path / "tmp").iterdir()) == []


def test_nohup_keeps_a_render_going_past_sighup(clips, tmp_path):
    """An ignored SIGHUP (nohup) stays ignored: the render outlives its terminal."""
    script = ("import signal, sys; signal.signal(signal.SIGHUP, signal.SIG_IGN); "
              "from lexp.cli.app import main; sys.argv = ['lexp'] + sys.argv[1:]; main()")
    env = {**os.environ, "NO_COLOR": "1", "LEXP_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-c", script, "render", str(clips / "long.mp4"),
                             "-o", "out.jpg", "-m", "mean"], cwd=tmp_path, env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    time.sleep(1.5)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert (tmp_path / "out.jpg").exists()


def test_what_a_sigkill_left_is_removed_by_the_next_run(clips, tmp_path):
    """SIGKILL leaves temp files for ever unless the next run recognises them."""
    from lexp import paths

    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    env = _env_with_progress(tmp_path)
    proc = _stop_midway(["render", str(clips / "long.mp4"), "-o", "out.jpg", "-m", "flow",
                         "--video", "t.mp4"], work, signal.SIGKILL, env=env,
                        wait_for=_video_begun(work))
    assert proc.returncode == -signal.SIGKILL
    with open(clips / "long.mp4", "rb") as stdin:
        _stop_midway(["render", "-", "-o", "s.jpg", "-m", "flow"], work, signal.SIGKILL,
                     env=env, stdin=stdin, wait_for=lambda: any(tmp.glob("lexp-stdin-*")))
    left = {p.name for p in work.iterdir()} | {p.name for p in tmp.iterdir()}
    assert any(n.startswith(".lexp-tmp-") for n in left), left  # the case is real
    assert any(n.startswith("lexp-stdin-") for n in left), left
    # Someone else's temp files, and a live process's, are left alone.
    (work / ".lexp-tmp-notapid.mp4").write_bytes(b"x")
    live = f"{paths.scratch_name('tmp', hidden=True)}live.part"
    (work / live).write_bytes(b"x")
    again = lexp("render", str(clips / "square.mp4"), "-o", "again.jpg", "-m", "mean",
                 "--video", "again.mp4", cwd=work, env=env)
    assert again.returncode == 0, again.stderr
    with open(clips / "square.mp4", "rb") as stdin:
        piped = subprocess.run([sys.executable, "-m", "lexp", "render", "-", "-o", "p.jpg",
                                "-m", "mean"], stdin=stdin, cwd=work, capture_output=True,
                               env={**os.environ, **env})
    assert piped.returncode == 0, piped.stderr
    assert sorted(p.name for p in work.iterdir()) == sorted(
        [".lexp-tmp-notapid.mp4", live, "again.jpg",
         "again.mp4", "p.jpg"])
    assert list(tmp.iterdir()) == []


def test_the_sweep_leaves_other_machines_and_live_processes_alone(tmp_path):
    """A shared output folder (a job array on NFS): a pid that is dead here may be alive
    on the machine whose name the file carries."""
    from lexp import paths

    dead = 2 ** 22 + 12345  # above Linux's pid_max default: no such process
    ours = paths.scratch_name("tmp", hidden=True).split("-")[3]
    other = "0" * 8 if ours != "0" * 8 else "1" * 8
    names = {f".lexp-tmp-{dead}-{ours}-a.part": False,  # a dead run of ours: removed
             f".lexp-tmp-{dead}-{other}-b.part": True,  # another machine's: kept
             f".lexp-tmp-{os.getpid()}-{ours}-c.part": True,  # alive: kept
             f".lexp-partial-{dead}-{ours}-d": False,  # a staging folder: removed
             "notes.txt": True}
    for name in names:
        (tmp_path / name).mkdir() if name.endswith("-d") else (tmp_path / name).write_text("x")
    assert paths.sweep_leftovers(tmp_path) == 2
    assert {p.name for p in tmp_path.iterdir()} == {n for n, kept in names.items() if kept}


# --------------------------------------------------------------------------- downloads


class LyingMirror:
    """A server on 127.0.0.1 that streams zeros for ever, announcing ``length`` (or no
    length at all)."""

    def __init__(self, length: int | None) -> None:
        self.length = length
        self.sent = 0
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(4)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.getsockname()[1]}/raft_small.pth"

    def serve(self) -> None:
        self.server.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                if self.length is not None:
                    head += f"Content-Length: {self.length}\r\n"
                conn.sendall((head + "\r\n").encode())
                block = b"\0" * 65536
                deadline = time.monotonic() + 20  # bounded in time, whatever lexp does
                try:
                    while not self.stop.is_set() and time.monotonic() < deadline:
                        conn.sendall(block)
                        self.sent += len(block)
                except OSError:
                    pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.server.close()


@pytest.mark.parametrize("length", [99_999_999_999, None])
def test_a_mirror_that_never_stops_cannot_fill_the_disk(tmp_path, length):
    """raft_small.pth.part grew to 18.6 GB in 200 s; the registry says 4,006,206 bytes."""
    mirror = LyingMirror(length)
    grown = []
    try:
        dest = tmp_path / "raft_small.pth"
        with pytest.raises(download.DownloadError, match="published size") as err:
            download.fetch(mirror.url, dest, size=1_000_000, timeout=5, retries=1,
                           on_progress=lambda done, total: grown.append(done))
    finally:
        mirror.close()
    assert "nothing was kept" in err.value.message
    assert max(grown, default=0) <= 1_000_000 + 65536
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no part, no lock


def test_lexp_download_stops_a_lying_mirror_at_the_published_size(tmp_path):
    mirror = LyingMirror(None)
    try:
        proc = lexp("download", "raft-small", "--mirror", mirror.url.rsplit("/", 1)[0],
                    cwd=tmp_path, env={"LEXP_CACHE_DIR": str(tmp_path / "cache")})
    finally:
        mirror.close()
    assert proc.returncode == 1 and "published size" in proc.stderr, proc.stderr
    left = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert left == [], left
    assert mirror.sent < 200 * 1024 * 1024  # it stopped reading long before the 20 s were up


def test_a_failed_download_leaves_no_lock_file(tmp_path):
    dest = tmp_path / "x.bin"
    with pytest.raises(download.DownloadError):
        download.fetch("http://127.0.0.1:9/x.bin", dest, timeout=1, retries=0)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- small frames


def _tiny_clip(path: Path, width: int, height: int) -> Path:
    frames = (np.ascontiguousarray(np.resize(f, (height, width, 3)))
              for f in synthetic.moving_square(96, 64, frames=8))
    synthetic.write_video(path, frames, fps=10)
    return path


@pytest.mark.parametrize("width,height", [(10, 10), (13, 13), (1, 1), (1, 400), (400, 1)])
def test_frames_too_small_for_flow_still_render_and_export(tmp_path, width, height):
    """OpenCV's DIS refuses images under 12 px: 'internal error: OpenCV ...'."""
    clip = _tiny_clip(tmp_path / "tiny.mkv", width, height)
    for args in (["render", "tiny.mkv", "-o", "auto.png"],
                 ["render", "tiny.mkv", "-o", "flow.png", "-m", "flow"],
                 ["flow", "tiny.mkv", "--export-video", "f.mp4", "--export-flo", "flo"]):
        proc = lexp(*args, cwd=tmp_path, env={"LEXP_CACHE_DIR": str(tmp_path / "c")})
        assert proc.returncode == 0, (args, proc.stderr)
    capture = cv2.VideoCapture(str(clip))  # (the writer makes odd sizes even, for 4:2:0)
    size = (int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)))
    capture.release()
    assert min(size) < 24  # auto's motion probe halves it: under DIS's 12 px
    for name in ("auto.png", "flow.png"):
        assert cv2.imread(str(tmp_path / name)).shape[:2] == size
    assert len(list((tmp_path / "flo").glob("*.flo"))) == 7
    assert clip.exists()


def test_the_api_computes_flow_on_8px_frames():
    import lexp as api

    frames = [np.roll(np.eye(8, dtype=np.uint8)[..., None].repeat(3, 2) * 255, i, 1)
              for i in range(6)]
    flows = api.optical_flow(frames, fps=10, method="dis")
    assert len(flows) == 5 and all(f.shape == (2, 8, 8) and np.isfinite(f).all()
                                   for f in flows)
    assert api.render(frames, fps=10, method="flow").linear.shape == (8, 8, 3)


def test_bench_json_on_tiny_frames_is_valid_json_without_warnings(tmp_path):
    """It printed NaN (not JSON) and numpy's RuntimeWarnings."""
    _tiny_clip(tmp_path / "tiny.mkv", 8, 8)
    proc = lexp("bench", "--quality", "tiny.mkv", "--json", cwd=tmp_path,
                env={"LEXP_CACHE_DIR": str(tmp_path / "c")})
    assert proc.returncode == 0, proc.stderr

    def refuse(token):
        raise ValueError(f"{token} is not JSON")

    result = json.loads(proc.stdout, parse_constant=refuse)
    assert result["quality"]["scores"]
    assert "Warning" not in proc.stderr, proc.stderr


# --------------------------------------------------------------------------- the API's errors


@pytest.mark.parametrize("arguments,error,says", [
    ({"fps": "30"}, "UsageError", "fps='30' must be a number"),
    ({"ev": "1"}, "UsageError", "ev='1' must be a number"),
    ({"stride": 1.5}, "UsageError", "stride=1.5 must be an integer"),
    ({"max_frames": "3"}, "UsageError", "max_frames='3' must be an integer"),
    ({"tone": "sepia"}, "UsageError", "unknown tone 'sepia'"),
    ({"transfer": "gamma9"}, "UsageError", "unknown transfer 'gamma9'"),
    ({"flow": "bogus", "method": "mean"}, "UsageError", "unknown flow estimator flow='bogus'"),
    ({"frames": "mixed"}, "InputError", "frame 3 is 30x40, but frame 0 is 64x48"),
])
def test_the_api_raises_lexps_errors_naming_the_argument(arguments, error, says):
    import lexp as api
    from lexp.errors import LexpError

    frames = [np.zeros((48, 64, 3), np.uint8)] * 3
    if arguments.pop("frames", None):
        frames = frames + [np.zeros((40, 30, 3), np.uint8)] * 3
    arguments = {"fps": 10, **arguments}
    with pytest.raises(LexpError) as err:
        api.render(frames, **arguments)
    assert type(err.value).__name__ == error and says in err.value.message


# --------------------------------------------------------------------------- pixels right


def _ffmpeg() -> str:
    from lexp.media import ffmpeg_exe

    return ffmpeg_exe()


def test_a_photo_is_read_upright_as_its_exif_orientation_says(tmp_path):
    """Orientation 6 (a phone held upright) came out on its side: 60x40 for a 40x60 view."""
    from PIL import Image as PILImage

    from lexp import media

    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[:10, :20] = 255  # a mark in the stored image's top-left corner
    exif = PILImage.new("RGB", (1, 1)).getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    for suffix in (".jpg", ".png"):
        path = tmp_path / f"upright{suffix}"
        PILImage.fromarray(pixels).save(path, exif=exif.tobytes())
        frame = media.read_image(path)
        assert frame.shape == (60, 40, 3)
        assert frame[:10, -5:].mean() > 200 and frame[-10:, :5].mean() < 50  # top-right now
    proc = lexp("render", "upright.jpg", "-o", "out.png", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert cv2.imread(str(tmp_path / "out.png")).shape[:2] == (60, 40)


def test_anamorphic_video_is_shown_with_square_pixels(tmp_path):
    """A 4:3 sample aspect ratio was ignored (OpenCV's frames are storage pixels)."""
    subprocess.run([_ffmpeg(), "-v", "error", "-f", "lavfi", "-i",
                    "testsrc=size=160x90:rate=10", "-frames:v", "10", "-vf", "setsar=4/3",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(tmp_path / "wide.mp4")],
                   check=True)
    for decoder in ("", "ffmpeg"):
        proc = lexp("render", "wide.mp4", "-o", "out.png", "-m", "mean", "--overwrite",
                    cwd=tmp_path, env={"LEXP_DECODER": decoder})
        assert proc.returncode == 0, proc.stderr
        assert cv2.imread(str(tmp_path / "out.png")).shape[:2] == (90, 213), decoder


def test_sixteen_bit_frames_stay_sixteen_bits_end_to_end(tmp_path):
    """A 16-bit PNG sequence was quantised to 8 bits on reading: a smooth ramp came out
    in at most 256 levels ("360 input levels -> 2 levels out")."""
    frames = tmp_path / "ramp"
    frames.mkdir()
    ramp = np.linspace(1000, 64000, 1200).astype(np.uint16)[None, :, None]
    for i in range(6):
        image = np.repeat(np.repeat(ramp, 24, 0), 3, 2).copy()
        image[:6, i * 100:i * 100 + 80] = 65535  # something moving along the top
        cv2.imwrite(str(frames / f"f{i:02d}.png"), image)
    for method in ("mean", "max", "median", "flow"):
        proc = lexp("render", "ramp", "-o", f"{method}.png", "-m", method, "--fps", "10",
                    cwd=tmp_path, env={"LEXP_CACHE_DIR": str(tmp_path / "c")})
        assert proc.returncode == 0, proc.stderr
        out = cv2.imread(str(tmp_path / f"{method}.png"), cv2.IMREAD_UNCHANGED)
        assert out.dtype == np.uint16, method  # a 16-bit PNG by default from 16-bit frames
        levels = len(np.unique(out[12:, :, 1]))
        assert levels >= 1000, (method, levels)
        # The still ramp is the input's, to within 16-bit rounding (not 8-bit steps of
        # 257; the gap-filled max's warps reach a few codes more at the left edge).
        assert np.abs(out[12:, :, 1].astype(int) - ramp[0, :, 0].astype(int)).max() <= 8


def test_an_animated_png_or_webp_is_a_clip_of_all_its_frames(tmp_path):
    """They were read as their first frame, without a word."""
    from PIL import Image as PILImage

    frames = [PILImage.fromarray(f) for f in synthetic.moving_square(96, 64, frames=10)]
    for name, options in (("a.png", {}), ("a.webp", {"lossless": True})):
        frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:], duration=100,
                       loop=0, **options)
        proc = lexp("render", name, "-o", f"{name}.jpg", "-m", "mean", "--json", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert result["frames"] == 10, result
    # Among stills, an animation is not one frame: it is refused, saying why.
    folder = tmp_path / "mixed"
    folder.mkdir()
    frames[0].save(folder / "f1.png")
    frames[0].save(folder / "f2.png", save_all=True, append_images=frames[1:], duration=100)
    proc = lexp("render", "mixed", "-o", "m.jpg", cwd=tmp_path)
    assert proc.returncode == 1 and "f2.png is an animation of 10 frames" in proc.stderr


def test_a_whole_variable_rate_file_is_not_called_truncated(tmp_path):
    """40 frames over 21.6 s: 'decoding stopped after 40 of about 216 frames'."""
    subprocess.run([_ffmpeg(), "-v", "error", "-f", "lavfi", "-i",
                    "testsrc=size=160x90:rate=10", "-frames:v", "40", "-vf",
                    "setpts='if(lt(N,20),N*0.04,0.8+(N-20)*1.04)/TB'", "-fps_mode", "vfr",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(tmp_path / "vfr.mkv")],
                   check=True)
    proc = lexp("render", "vfr.mkv", "-o", "out.jpg", "-m", "mean", cwd=tmp_path)
    assert proc.returncode == 0 and "truncated" not in proc.stderr, proc.stderr
    whole = (tmp_path / "vfr.mkv").read_bytes()
    (tmp_path / "cut.mkv").write_bytes(whole[: len(whole) // 2])
    proc = lexp("render", "cut.mkv", "-o", "cut.jpg", "-m", "mean", cwd=tmp_path)
    assert "truncated" in proc.stderr, proc.stderr  # a file that is cut still says so


# --------------------------------------------------------------------------- smaller things


def test_a_training_run_stopped_before_its_first_checkpoint_does_not_offer_resume(tmp_path):
    """It said "resume with --resume"; resuming then said "nothing to resume"."""
    proc = _stop_midway(["train", "--data", "synthetic:3", "--run-dir", "run", "--steps",
                         "100000"], tmp_path, signal.SIGINT,
                        env={"LEXP_CACHE_DIR": str(tmp_path / "cache")},
                        wait_for=lambda: (tmp_path / "cache").exists())
    assert proc.returncode == 130, proc.stderr
    assert "nothing to resume" in proc.stderr and "--resume" not in proc.stderr


def test_names_with_control_characters_reach_the_terminal_escaped(tmp_path):
    """A file name with escape sequences was echoed raw: it could recolour or retitle
    the user's terminal."""
    name = "clip\x1b]0;pwned\x07\x1b[2J.mp4"
    synthetic.write_video(tmp_path / name, synthetic.moving_square(96, 64, frames=6), fps=10)
    proc = lexp("render", name, "-o", "out.jpg", "-m", "mean", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stderr and "\x07" not in proc.stderr
    assert "clip\\x1b]0;pwned\\x07\\x1b[2J.mp4" in proc.stderr


def test_a_full_stderr_loses_the_words_not_the_render(clips, tmp_path):
    """2>/dev/full turned a success into exit 1."""
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([sys.executable, "-m", "lexp", "render",
                               str(clips / "square.mp4"), "-o", "out.jpg", "-m", "mean"],
                              cwd=tmp_path, stderr=full, stdout=subprocess.DEVNULL,
                              env={**os.environ, "LEXP_CACHE_DIR": str(tmp_path / "c")})
    assert proc.returncode == 0 and (tmp_path / "out.jpg").exists()


def test_a_long_registry_lists_as_plain_columns_in_a_pipe(tmp_path):
    """Rich laid the table out at ~1.7 ms an entry."""
    entries = [{"name": f"asset-{i}", "filename": f"f{i}.bin", "url": "http://127.0.0.1:9/x",
                "sha256": None, "size": 1000, "licence": "t", "used_by": "t\x1b[31m"}
               for i in range(2000)]
    (tmp_path / "registry.json").write_text(json.dumps(entries))
    proc = lexp("download", "--list", cwd=tmp_path,
                env={"LEXP_REGISTRY": str(tmp_path / "registry.json"),
                     "LEXP_CACHE_DIR": str(tmp_path / "c")})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    assert lines[0].split()[:3] == ["name", "size", "cached"]
    assert len(lines) == 1 + 2000 + 4  # the header, these, the built-in four
    assert "asset-1999" in lines[-1] and "\x1b" not in proc.stdout.decode()
