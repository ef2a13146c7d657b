"""Bad input, given the way a new user and a hostile one would give it.

Every case in CASES runs the real CLI in a fresh working folder and must end with its
exit code, one line on stderr that starts with ``error:`` (no traceback), no file left
behind in the working folder, and the inputs untouched: both folders are fingerprinted
before and after, so "nothing partial, nothing lost" is checked for every case, not case
by case. The tests after the table check what a table cannot: a batch that goes on past a
bad input, exports that appear whole or not at all, a mirror that never answers, ...
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tarfile
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest

from lexp import checkpoint, download, stills, synthetic
from tests.conftest import REPO, write_bad_inputs

# --------------------------------------------------------------------------- inputs


def png_bytes(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width``×``height`` pixels (a decompression bomb's shape)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body +
                struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
            chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def checkpoint_with(path: Path, **model) -> None:
    """The shipped checkpoint with fields of its model description changed (``model`` =
    None-valued key ``_whole`` replaces the description itself)."""
    import torch


    data = checkpoint.read(checkpoint.resolve("lexp"))
    whole = model.pop("_whole", None)
    data["model"] = whole if whole is not None else {**data["model"], **model}
    torch.save(data, path)


def checkpoint_with_weights(path: Path, value: float) -> None:
    """The shipped checkpoint with every floating-point weight set to ``value``."""
    import torch

    data = checkpoint.read(checkpoint.resolve("lexp"))
    data["state"] = {k: v.fill_(value) if v.is_floating_point() else v
                     for k, v in data["state"].items()}
    torch.save(data, path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Every bad (and a few good) inputs, made once; the cases only read them."""
    root = tmp_path_factory.mktemp("inputs")
    square = list(synthetic.moving_square(96, 64, frames=12))
    synthetic.write_video(root / "square.mp4", iter(square), fps=10)
    synthetic.write_video(root / "street.mp4", synthetic.night_street(160, 90, frames=24), fps=20)
    synthetic.write_video(root / "one.mp4", iter(square[:1]), fps=10)
    from PIL import Image as PILImage

    animation = io.BytesIO()
    PILImage.fromarray(square[0]).save(animation, "PNG", save_all=True, duration=100,
                                       append_images=[PILImage.fromarray(f) for f in square[1:]])
    whole = animation.getvalue()
    (root / "cut_animation.png").write_bytes(whole[:len(whole) * 3 // 5])
    (root / "frames").mkdir()
    for i, frame in enumerate(square[:4]):
        cv2.imwrite(str(root / "frames" / f"flow_{i:05d}_{i + 1:05d}.png"), frame)
    clip = (root / "street.mp4").read_bytes()
    write_bad_inputs(root, clip)
    # A name whose bytes are not UTF-8 (a file from another system's encoding).
    (root / os.fsdecode(b"caf\xe9.mp4")).write_bytes(clip[: len(clip) // 3])
    (root / "huge.png").write_bytes(png_claiming(60000, 60000))
    bombs = root / "huge_frames"
    bombs.mkdir()
    for i in range(2):
        (bombs / f"f{i}.png").write_bytes(png_claiming(60000, 60000))
    os.mkfifo(root / "fifo.mp4")
    # Streams for stdin.
    frames = [png_bytes(f) for f in square[:3]]
    (root / "images_mixed.bin").write_bytes(
        frames[0] + frames[1] + png_bytes(np.zeros((70, 100, 3), np.uint8)) + frames[2])
    (root / "images_junk.bin").write_bytes(frames[0] + frames[1] + b"trailing junk" * 50)
    (root / "noise.bin").write_bytes(np.random.default_rng(1).bytes(100_000))
    # Checkpoints: not one at all, and three whose model description is wrong.
    (root / "not_ckpt.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    checkpoint_with(root / "max_frames_0.pt", max_frames=0)
    checkpoint_with(root / "work_size_text.pt", work_size="320")
    checkpoint_with(root / "model_list.pt", _whole=[1, 2])
    checkpoint_with_weights(root / "inf.pt", float("inf"))
    checkpoint_with_weights(root / "nan.pt", float("nan"))
    # Download registries that try to write outside the cache, and archives.
    asset = {"url": "http://127.0.0.1:9/x", "sha256": None, "size": 0, "licence": "t",
             "used_by": "t"}
    (root / "escape_name.json").write_text(json.dumps([{**asset, "name": "../../escape",
                                                         "filename": "x.bin"}]))
    # (An absolute file name: lexp with --force removed whatever it named. A victim of
    # our own, inside the inputs: this case must stay harmless on a lexp that has the bug.)
    (root / "victim.txt").write_text("not lexp's to remove")
    (root / "escape_file.json").write_text(json.dumps([{**asset, "name": "ok",
                                                         "filename": str(root / "victim.txt")}]))
    (root / "archive.json").write_text(json.dumps([{**asset, "name": "test-data",
                                                     "filename": "data.tar",
                                                     "kind": "archive"}]))
    tar_with(root / "evil.tar", {"../evil.txt": b"outside"})
    tar_with(root / "good.tar", {"sky/clip/0001.jpg": b"frame"})
    tar_with(root / "clash.tar", {"a": b"file", "a/b": b"under a file"})
    (root / "truncated.tar").write_bytes((root / "good.tar").read_bytes()[:700])
    return root


def tar_with(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` and its content's sha256 (special files by kind only:
    reading a FIFO would wait forever)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            mode = path.lstat().st_mode
            key = os.fsencode(path.relative_to(folder)).decode("utf-8", "backslashreplace")
            if stat.S_ISREG(mode):
                found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                found[key] = "folder" if stat.S_ISDIR(mode) else f"special {stat.S_IFMT(mode)}"
    return found


# --------------------------------------------------------------------------- the table


@dataclass
class Case:
    id: str
    args: list  # {in} is the inputs folder; bytes arguments pass as bytes
    code: int  # the exit code
    says: str  # in the one error line
    stdin: str | bytes | None = None  # a file name under the inputs, the bytes, or CLOSED
    env: dict = field(default_factory=dict)  # {in} expanded here too
    stdout: str = "pipe"  # "pipe", "closed" (>&-) or "full" (> /dev/full)
    fsize: int | None = None  # a file size limit for the process: a disk that fills up
    setup: Callable[[Path], None] | None = None  # makes things in the working folder


CLOSED = "<&-"  # Case.stdin: the process starts with no standard input at all


def make_fifo(name: str) -> Callable[[Path], None]:
    return lambda work: os.mkfifo(work / name)


def make_file(name: str) -> Callable[[Path], None]:
    return lambda work: (work / name).write_text("in the way")


CASES = [
    # Clips that cannot be read.
    Case("missing", ["render", "{in}/missing.mp4", "-o", "o.jpg"], 1, "no such file"),
    Case("empty", ["render", "{in}/empty.mp4", "-o", "o.jpg"], 1, "empty"),
    Case("text-as-mp4", ["render", "{in}/notes.mp4", "-o", "o.jpg"], 1, "not a video"),
    Case("truncated", ["render", "{in}/truncated.mp4", "-o", "o.jpg"], 1, "truncated"),
    Case("non-utf8-name", ["render", b"{in}/caf\xe9.mp4", "-o", "o.jpg"], 1, "truncated"),
    Case("empty-folder", ["render", "{in}/empty_dir", "-o", "o.jpg"], 1, "no videos or images"),
    Case("junk-folder", ["render", "{in}/junk_dir", "-o", "o.jpg"], 1, "no videos or images"),
    Case("mixed-sizes", ["render", "{in}/mixed_sizes", "-o", "o.jpg"], 1, "is 30x22"),
    Case("truncated-animation", ["render", "{in}/cut_animation.png", "-o", "o.jpg"], 1,
         "is the file truncated"),
    Case("fifo-input", ["render", "{in}/fifo.mp4", "-o", "o.jpg"], 1, "is a FIFO"),
    Case("device-input", ["render", "/dev/null", "-o", "o.jpg"], 1, "character device"),
    Case("png-bomb", ["render", "{in}/huge.png", "-o", "o.jpg"], 1, "60000x60000"),
    Case("png-bomb-folder", ["render", "{in}/huge_frames", "-o", "o.jpg"], 1, "60000x60000"),
    Case("glob-matches-nothing", ["render", "{in}/*.nothing", "-o", "o.jpg"], 1,
         "no files match"),
    Case("one-frame-flow", ["flow", "{in}/one.mp4"], 1, "at least two frames"),
    # Standard input.
    Case("stdin-empty", ["render", "-", "-o", "o.jpg"], 1, "nothing arrived", stdin=b""),
    Case("stdin-noise", ["render", "-", "-o", "o.jpg"], 1, "not a video", stdin="noise.bin"),
    Case("stdin-truncated", ["render", "-", "-o", "o.jpg"], 1, "truncated",
         stdin="truncated.mp4"),
    Case("stdin-mixed-sizes", ["render", "-", "--fps", "10", "-o", "o.jpg"], 1,
         "a frame is 100x70", stdin="images_mixed.bin"),
    Case("stdin-trailing-junk", ["render", "-", "--fps", "10", "-o", "o.jpg"], 1,
         "not an image", stdin="images_junk.bin"),
    Case("stdin-closed", ["render", "-", "-o", "o.jpg"], 1, "standard input is closed",
         stdin=CLOSED),
    Case("stdin-closed-flow", ["flow", "-"], 1, "standard input is closed", stdin=CLOSED),
    Case("stdin-mixed-with-files", ["render", "-", "{in}/square.mp4", "-o", "o.jpg"], 2,
         "cannot be mixed"),
    # Option values.
    Case("exposure-overflow", ["render", "{in}/square.mp4", "-o", "o.jpg", "--exposure",
                               "99999999999999999999999"], 2, "longer than lexp can use"),
    Case("exposure-zero", ["render", "{in}/square.mp4", "-o", "o.jpg", "--exposure", "0"],
         2, "longer than 0"),
    Case("exposure-text", ["render", "{in}/square.mp4", "-o", "o.jpg", "--exposure", "1e9x"],
         2, "not a time"),
    Case("exposure-for-days", ["render", "{in}/square.mp4", "-o", "o.jpg", "-m", "flow",
                               "--end", "5f", "--exposure", "100000000f"], 2,
         "extrapolates at most"),
    Case("start-after-end", ["render", "{in}/square.mp4", "-o", "o.jpg", "--start", "5",
                             "--end", "2"], 2, "not after"),
    Case("start-past-clip", ["render", "{in}/square.mp4", "-o", "o.jpg", "-m", "mean",
                             "--start", "100f"], 1, "no frames"),
    Case("fps-nan", ["render", "{in}/square.mp4", "-o", "o.jpg", "--fps", "nan"], 2,
         "positive number"),
    Case("ev-huge", ["render", "{in}/square.mp4", "-o", "o.jpg", "--ev", "1e308"], 2,
         "out of range"),
    Case("motion-guide", ["render", "{in}/square.mp4", "-o", "o.jpg", "--motion-guide",
                          "sideways"], 2, "--motion-guide"),
    Case("keep-sharp-past-clip", ["render", "{in}/square.mp4", "-o", "o.jpg", "-m", "mean",
                                  "--keep-sharp", "99999f"], 1, "no such frame"),
    Case("sharp-mask-bomb", ["render", "{in}/square.mp4", "-o", "o.jpg", "-m", "mean",
                             "--keep-sharp", "first", "--sharp-mask", "{in}/huge.png"], 2,
         "60000x60000"),
    Case("comet-without-video", ["render", "{in}/square.mp4", "-o", "o.jpg", "--comet", "1s"],
         2, "--video"),
    Case("gap-fill-with-mean", ["render", "{in}/square.mp4", "-o", "o.jpg", "-m", "mean",
                                "--gap-fill"], 2, "are for --method max"),
    Case("device-unknown", ["render", "{in}/square.mp4", "-o", "o.jpg", "--device", "gpu9"],
         2, "unknown device"),
    Case("shard-zero", ["render", "{in}/square.mp4", "-o", "o.jpg", "--shard", "0/0"], 2,
         "--shard"),
    Case("quality-zero", ["render", "{in}/square.mp4", "-o", "o.jpg", "--quality", "0"], 2,
         "Invalid value for '--quality'"),
    Case("stride-zero", ["render", "{in}/square.mp4", "-o", "o.jpg", "--stride", "0"], 2,
         "Invalid value for '--stride'"),
    Case("fps-text", ["render", "{in}/square.mp4", "-o", "o.jpg", "--fps", "fast"], 2,
         "Invalid value for '--fps'"),
    Case("unknown-option", ["render", "{in}/square.mp4", "--speed", "9"], 2, "No such option"),
    # Checkpoints.
    Case("checkpoint-junk", ["render", "{in}/square.mp4", "-o", "o.jpg", "-m", "learned",
                             "--checkpoint", "{in}/not_ckpt.pt"], 1, "not a readable"),
    Case("checkpoint-max-frames-0", ["render", "{in}/square.mp4", "-o", "o.jpg", "-m",
                                     "learned", "--checkpoint", "{in}/max_frames_0.pt"], 1,
         "max_frames"),
    Case("checkpoint-wrong-type", ["render", "{in}/square.mp4", "-o", "o.jpg", "-m",
                                   "learned", "--checkpoint", "{in}/work_size_text.pt"], 1,
         "work_size"),
    Case("checkpoint-model-list", ["render", "{in}/square.mp4", "-o", "o.jpg", "-m",
                                   "learned", "--checkpoint", "{in}/model_list.pt"], 1,
         "not a mapping"),
    Case("checkpoint-inf", ["render", "{in}/square.mp4", "--end", "5f", "--exposure", "64f",
                            "--checkpoint", "{in}/inf.pt", "-o", "o.jpg"], 1,
         "not numbers (NaN or infinite)"),
    Case("checkpoint-nan-learned", ["render", "{in}/square.mp4", "-m", "learned",
                                    "--checkpoint", "{in}/nan.pt", "-o", "o.jpg"], 1,
         "not numbers (NaN or infinite)"),
    Case("checkpoint-without-learned", ["render", "{in}/square.mp4", "-o", "o.jpg",
                                        "-m", "max", "--checkpoint", "seed"], 2,
         "--method learned"),
    # Output names and places.
    Case("template-attribute", ["render", "{in}/square.mp4", "-o", "{stem.__class__}.jpg"],
         2, "is not a field"),
    Case("template-unknown-field", ["render", "{in}/square.mp4", "-o", "{nope}.jpg"], 2,
         "bad output template"),
    Case("format-mismatch", ["render", "{in}/square.mp4", "-o", "o.jpg", "--format", "png"],
         2, "is a JPEG name"),
    Case("unsupported-extension", ["render", "{in}/square.mp4", "-o", "o.gif"], 2,
         "unsupported image extension"),
    Case("name-too-long", ["render", "{in}/square.mp4", "-o", "n" * 252 + ".jpg"], 2,
         "file name is 256 bytes"),
    Case("output-where-no-file-can-be", ["render", "{in}/square.mp4", "-o",
                                         "/proc/lexp_out.jpg", "-m", "mean"], 1,
         "cannot write /proc/lexp_out.jpg"),
    Case("cache-dir-too-long", ["render", "{in}/square.mp4", "-o", "o.jpg", "-m", "flow"], 2,
         "too long a path", env={"LEXP_CACHE_DIR": "/".join(["d" * 200] * 25)}),
    Case("missing-output-folder", ["render", "{in}/square.mp4", "-o", "no/dir/o.jpg"], 1,
         "does not exist"),
    Case("output-is-fifo", ["render", "{in}/square.mp4", "-o", "o.jpg", "-m", "mean"], 1,
         "it is a FIFO", setup=make_fifo("o.jpg")),
    Case("output-replaces-sharp-mask", ["render", "{in}/square.mp4", "-o", "mask.png", "-m",
                                        "mean", "--keep-sharp", "first", "--sharp-mask",
                                        "mask.png", "--overwrite"], 2, "is one of the inputs",
         setup=lambda work: cv2.imwrite(str(work / "mask.png"),
                                        np.full((64, 96, 3), 255, np.uint8))),
    Case("video-not-a-video-name", ["render", "{in}/square.mp4", "-o", "o.jpg", "--video",
                                    "v.txt"], 2, "not a video file name"),
    Case("json-and-stdout-image", ["render", "{in}/square.mp4", "-o", "-", "--json"], 2,
         "both want stdout"),
    # stdout closed or full, and a disk that fills up.
    Case("stdout-closed-image", ["render", "{in}/square.mp4", "-o", "-"], 1,
         "stdout is closed", stdout="closed"),
    Case("stdout-closed-json", ["render", "{in}/square.mp4", "-o", "o.jpg", "--json"], 1,
         "stdout is closed", stdout="closed"),
    Case("stdout-full-image", ["render", "{in}/square.mp4", "-o", "-", "-m", "mean"], 1,
         "no space left", stdout="full"),
    Case("stdout-closed-flow-json", ["flow", "{in}/square.mp4", "--json"], 1,
         "stdout is closed", stdout="closed"),
    Case("disk-full-image", ["render", "{in}/street.mp4", "-o", "o.png", "-m", "mean",
                             "--bit-depth", "16"], 1, "File too large", fsize=20_000),
    Case("disk-full-trail-video", ["render", "{in}/street.mp4", "-o", "o.jpg", "-m", "mean",
                                   "--video", "v.mp4"], 1, "File too large", fsize=6_000),
    Case("disk-full-flow-video", ["flow", "{in}/street.mp4", "--no-cache", "--export-video",
                                  "f.mp4"], 1, "File too large", fsize=6_000),
    # lexp flow.
    Case("flow-export-video-name", ["flow", "{in}/square.mp4", "--export-video", "f.txt"], 2,
         "not a video file name"),
    Case("flow-export-onto-file", ["flow", "{in}/square.mp4", "--export-flo", "flo"], 1,
         "cannot write flo", setup=make_file("flo")),
    Case("flow-export-video-onto-its-clip", ["flow", "{in}/square.mp4", "--export-video",
                                             "{in}/square.mp4"], 2, "is one of the inputs"),
    Case("flow-export-images-into-its-frames", ["flow", "{in}/frames", "--export-images",
                                                "{in}/frames"], 2, "is the folder of"),
    Case("flow-export-flo-into-its-frames", ["flow", "{in}/frames", "--export-flo",
                                             "{in}/frames/"], 2, "is the folder of"),
    Case("flow-junk-folder", ["flow", "{in}/junk_dir"], 1, "no videos or images"),
    # lexp train (each of these stops before any training).
    Case("train-synthetic-text", ["train", "--data", "synthetic:abc", "--dry-run"], 2,
         "synthetic:N"),
    Case("train-fifo", ["train", "--data", "{in}/fifo.mp4", "--dry-run"], 1, "is a FIFO"),
    Case("train-weight-decay-nan", ["train", "--data", "synthetic:2", "--weight-decay", "nan",
                                    "--dry-run"], 2, "--weight-decay"),
    # lexp download.
    Case("registry-name-escape", ["download", "--list"], 2, "not a plain file name",
         env={"LEXP_REGISTRY": "{in}/escape_name.json"}),
    Case("registry-filename-absolute", ["download", "ok", "--force"], 2,
         "not a plain file name", env={"LEXP_REGISTRY": "{in}/escape_file.json"}),
    Case("registry-device", ["download", "--list"], 2, "not a regular file",
         env={"LEXP_REGISTRY": "/dev/zero"}),
    Case("registry-fifo", ["download", "--list"], 2, "not a regular file",
         env={"LEXP_REGISTRY": "{in}/fifo.mp4"}),
    Case("mirror-not-http", ["download", "raft-small", "--mirror", "http://[::1"], 2,
         "not an http"),
    Case("mirror-file-scheme", ["download", "raft-small", "--mirror", "file:///etc"], 2,
         "not an http"),
    Case("download-from-device", ["download", "raft-small", "--from", "/dev/zero"], 1,
         "character device"),
    Case("download-evil-archive", ["download", "test-data", "--from", "{in}/evil.tar"], 1,
         "would land outside", env={"LEXP_REGISTRY": "{in}/archive.json"}),
    Case("download-clashing-archive", ["download", "test-data", "--from", "{in}/clash.tar"],
         1, "clashes", env={"LEXP_REGISTRY": "{in}/archive.json"}),
    Case("download-truncated-archive", ["download", "test-data", "--from",
                                        "{in}/truncated.tar"], 1, "is damaged",
         env={"LEXP_REGISTRY": "{in}/archive.json"}),
    Case("download-unknown", ["download", "no-such-asset"], 2, "no asset called"),
    # lexp bench.
    Case("bench-sheet-type", ["bench", "--quality", "{in}/square.mp4", "--sheet", "s.xyz"], 2,
         "PNG or JPEG"),
    Case("bench-synthetic-size", ["bench", "--speed", "synthetic:0x0x0"], 2,
         "not a synthetic clip"),
    Case("bench-nothing-scored", ["--quiet", "bench", "--quality", "{in}/square.mp4", "--methods",
                                  "mean", "--protocol", "gap-fill"], 1,
         "no clip could be scored"),
]


def _expand(value, inputs: Path):
    if isinstance(value, bytes):
        return value.replace(b"{in}", os.fsencode(inputs))
    return value.replace("{in}", str(inputs))


def run_case(case: Case, inputs: Path, work: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "LEXP_CACHE_DIR": str(cache),
           **{k: _expand(v, inputs) for k, v in case.env.items()}}
    env.pop("LEXP_DEBUG", None)
    stdin = case.stdin
    if isinstance(stdin, str) and stdin != CLOSED:
        stdin = (inputs / stdin).read_bytes()

    def before_exec() -> None:
        if case.stdout == "closed":
            os.close(1)
        if case.stdin == CLOSED:
            os.close(0)
        if case.fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes fail with EFBIG instead
            resource.setrlimit(resource.RLIMIT_FSIZE, (case.fsize, case.fsize))

    full = open(os.devnull if case.stdout != "full" else "/dev/full", "wb")  # noqa: SIM115
    try:
        proc = subprocess.run([sys.executable, "-m", "lexp",
                               *(_expand(a, inputs) for a in case.args)],
                              input=stdin if stdin not in (None, CLOSED) else b"",
                              stdout=subprocess.PIPE if case.stdout == "pipe" else full,
                              stderr=subprocess.PIPE, cwd=work, env=env, timeout=120,
                              preexec_fn=before_exec)
    finally:
        full.close()
    proc.stderr = proc.stderr.decode("utf-8", "replace")
    return proc


def test_the_table_has_sixty_distinct_cases():
    assert len({c.id for c in CASES}) == len(CASES) >= 60


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, inputs: Path, tmp_path: Path):
    if case.stdout == "full" and not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    work, cache = tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    if case.setup is not None:
        case.setup(work)
    inputs_before, work_before = snapshot(inputs), snapshot(work)
    proc = run_case(case, inputs, work, cache)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == case.code, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert case.says in lines[0], lines[0]
    assert snapshot(work) == work_before, "a file was left behind (or changed)"
    assert snapshot(inputs) == inputs_before, "an input was changed"


# --------------------------------------------------------------------------- beyond the table


def lexp(*args, cwd: Path, env: dict | None = None, stdout=subprocess.PIPE):
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    full_env.pop("LEXP_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "lexp", *args], capture_output=False,
                          stdout=stdout, stderr=subprocess.PIPE, cwd=cwd, env=full_env,
                          timeout=120)
    proc.stderr = proc.stderr.decode("utf-8", "replace")
    return proc


def test_a_non_utf8_name_renders_and_the_batch_goes_on(inputs, tmp_path):
    """OpenCV crashed (SIGSEGV) on such a name and took the whole batch down."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(inputs / "square.mp4", folder / os.fsdecode(b"r\xe9sum\xe9.mp4"))
    shutil.copy(inputs / "square.mp4", folder / "plain.mp4")
    proc = lexp("render", str(folder), "-o", "out/", "-m", "mean", "--json", cwd=tmp_path,
                env={"LEXP_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["status"] for r in results] == ["ok", "ok"]
    assert len(list((tmp_path / "out").iterdir())) == 2


def test_a_missing_input_among_several_is_one_failed_input(inputs, tmp_path):
    proc = lexp("render", str(inputs / "square.mp4"), "missing.mp4", "-o", "out/", "-m",
                "mean", "--json", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    results = {r["input"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert results["missing.mp4"]["status"] == "failed"
    assert "no such file" in results["missing.mp4"]["error"]
    assert results[str(inputs / "square.mp4")]["status"] == "ok"
    assert "1 rendered, 0 skipped, 1 failed" in proc.stderr


def test_a_global_error_under_json_is_a_json_line(tmp_path):
    proc = lexp("render", "missing.mp4", "-o", "o.jpg", "--json", cwd=tmp_path)
    assert proc.returncode == 1
    (line,) = proc.stdout.splitlines()
    result = json.loads(line)
    assert result["status"] == "failed" and "no such file" in result["error"]
    assert result["exit_code"] == 1


def test_output_names_up_to_255_bytes_render(inputs, tmp_path):
    """The lock file beside the output (.NAME.lexp-lock) went over 255 bytes."""
    name = "n" * 251 + ".png"
    proc = lexp("render", str(inputs / "square.mp4"), "-o", name, "-m", "mean",
                "--video", "v" * 251 + ".mp4", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "v" * 251 + ".mp4"])


def test_lexps_own_output_in_a_frame_folder_is_not_a_frame(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, frame in enumerate(synthetic.moving_square(96, 64, frames=10)):
        cv2.imwrite(str(frames / f"f{i}.png"), frame)
    first = lexp("render", "frames", "-o", "frames/out.png", "-m", "mean", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = lexp("render", "frames", "-o", "frames/out2.png", "-m", "mean", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "left out out.png" in second.stderr
    assert stills.read_settings(frames / "out2.png")["frames_used"] == 10
    assert np.array_equal(cv2.imread(str(frames / "out.png")),
                          cv2.imread(str(frames / "out2.png")))


def test_a_refused_archive_does_not_stick(inputs, tmp_path):
    """After a refused archive, a good one was refused too: the old file was read again."""
    env = {"LEXP_REGISTRY": str(inputs / "archive.json"), "LEXP_CACHE_DIR": str(tmp_path / "c")}
    bad = lexp("download", "test-data", "--from", str(inputs / "evil.tar"), cwd=tmp_path,
               env=env)
    assert bad.returncode == 1 and "would land outside" in bad.stderr
    assert not (tmp_path / "evil.txt").exists()
    good = lexp("download", "test-data", "--from", str(inputs / "good.tar"), cwd=tmp_path,
                env=env)
    assert good.returncode == 0, good.stderr
    assert (tmp_path / "c" / "datasets" / "test-data" / "sky/clip/0001.jpg").read_bytes() == \
        b"frame"
    # No checksum is published for it: lexp must not claim to have verified one.
    assert "sha256 verified" not in good.stderr and "not verified" in good.stderr


def test_a_registry_cannot_write_or_remove_outside_the_cache(tmp_path, monkeypatch):
    from lexp import weights
    from lexp.errors import UsageError

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    for name, filename in (("../victim", "x.bin"), ("ok", "../victim/keep.txt"),
                           ("ok", str(victim / "keep.txt")), ("..", "x"), ("a/b", "x")):
        registry = tmp_path / "registry.json"
        registry.write_text(json.dumps([{"name": name, "filename": filename,
                                         "url": "http://127.0.0.1:9/x", "sha256": None,
                                         "size": 0, "licence": "t", "used_by": "t",
                                         "kind": "archive"}]))
        monkeypatch.setenv("LEXP_REGISTRY", str(registry))
        with pytest.raises(UsageError, match="not a plain file name"):
            weights.registry()
    assert (victim / "keep.txt").read_text() == "mine"


def test_damaged_flow_cache_records_are_recomputed_not_a_traceback(inputs, tmp_path):
    cache = tmp_path / "cache"
    env = {"LEXP_CACHE_DIR": str(cache)}
    args = ("render", str(inputs / "square.mp4"), "-m", "flow", "--overwrite")
    assert lexp(*args, "-o", "a.jpg", cwd=tmp_path, env=env).returncode == 0
    for memo in (cache / "flow" / "fingerprints").rglob("*"):
        if memo.is_file():
            memo.write_bytes(b"\xff\xfe" * 32)  # 64 bytes of garbage, not even text
    metas = list((cache / "flow").glob("??/*/meta.json"))
    assert metas
    for k, meta in enumerate(metas):
        meta.write_text(["null", "[1, 2]", "{\"sha256\": 5}", "garbage{"][k % 4])
    again = lexp(*args, "-o", "b.jpg", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    assert np.array_equal(cv2.imread(str(tmp_path / "a.jpg")), cv2.imread(str(tmp_path / "b.jpg")))


def test_an_interrupted_or_failed_flow_export_leaves_nothing(tmp_path):
    """Exports appeared file by file: a run that failed after some flows left them."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, frame in enumerate(synthetic.moving_square(96, 64, frames=8)):
        cv2.imwrite(str(frames / f"f{i}.png"), frame)
    (frames / "f7.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # fails after 6 flows
    proc = lexp("flow", "frames", "--no-cache", "--export-flo", "flo", "--export-images",
                "pngs", "--export-video", "flow.mp4", cwd=tmp_path)
    assert proc.returncode == 1 and "cannot decode image" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_a_flow_export_that_succeeds_is_whole(inputs, tmp_path):
    (tmp_path / "flo").mkdir()
    (tmp_path / "flo" / "notes.txt").write_text("mine")  # an existing folder keeps its files
    proc = lexp("flow", str(inputs / "square.mp4"), "--no-cache", "--export-flo", "flo",
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in (tmp_path / "flo").iterdir())
    assert names == sorted(["notes.txt"] + [f"flow_{i:05d}_{i + 1:05d}.flo" for i in range(11)])


def test_a_mirror_that_never_answers_is_given_up_and_said(tmp_path):
    """It took 196 s to fail, silently."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_say_nothing() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept_and_say_nothing, daemon=True)
    thread.start()
    said: list[str] = []
    try:
        with pytest.raises(download.DownloadError, match="did not answer") as err:
            download.fetch(f"http://127.0.0.1:{server.getsockname()[1]}/x.bin",
                           tmp_path / "x.bin", timeout=0.3, retries=5, backoff=0.01,
                           on_retry=said.append)
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()
    assert "after 2 tries" in err.value.message  # not after all 6
    assert len(said) == 1 and "trying again" in said[0]
    assert not (tmp_path / "x.bin").exists()


def test_render_takes_cache_dir(inputs, tmp_path):
    proc = lexp("render", str(inputs / "square.mp4"), "-o", "o.jpg", "-m", "flow",
                "--cache-dir", "mine", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert list((tmp_path / "mine" / "flow").glob("??/*/meta.json"))


def test_no_color_means_no_escape_codes_at_all(tmp_path):
    """Rich's own NO_COLOR handling dropped colours but kept bold and dim."""
    import pty

    primary, secondary = pty.openpty()
    env = {**os.environ, "NO_COLOR": "1", "TERM": "xterm-256color"}
    proc = subprocess.run([sys.executable, "-m", "lexp", "render", "missing.mp4"],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=secondary, cwd=tmp_path, env=env, timeout=60)
    os.close(secondary)
    said = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:
            break
        if not chunk:
            break
        said += chunk
    os.close(primary)
    assert proc.returncode == 1
    assert b"error:" in said and b"\x1b[" not in said, said


def test_a_readme_batch_name_is_what_lexp_writes(inputs, tmp_path):
    """The README said {stem}_mean.jpg where lexp writes {stem}_auto.jpg (the method
    asked for, auto by default)."""
    proc = lexp("render", str(inputs / "square.mp4"), "-o", "renders/", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in (tmp_path / "renders").iterdir()] == ["square_auto.jpg"]
    assert "renders/{stem}_auto.jpg" in (REPO / "README.md").read_text()
