"""Shared fixtures: small synthetic clips (known content) and a way to run the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lexp import synthetic

REPO = Path(__file__).resolve().parents[1]
SHARED_CLIPS = REPO.parent / "shared" / "clips"


def real_clips() -> list[Path]:
    """The real clips beside the repository (empty when ../shared/clips is absent)."""
    return sorted(SHARED_CLIPS.glob("*.mp4")) if SHARED_CLIPS.is_dir() else []


needs_real_clips = pytest.mark.skipif(not real_clips(), reason="../shared/clips is absent")


@pytest.hookimpl(trylast=True)  # after -m has deselected: torch is imported only when asked
def pytest_collection_modifyitems(config, items):
    """``gpu`` tests skip, with the reason, where torch sees no CUDA device (``-m gpu`` on a
    laptop), instead of failing in their fixtures."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    if not torch.cuda.is_available():
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason="no CUDA device"))


def ctrl_c_reaches_it() -> None:
    """``preexec_fn`` for a child that a test stops with SIGINT: Ctrl-C's default action.
    A shell runs a background job (``scripts/test &``) with SIGINT ignored; children
    inherit that, Python then never raises KeyboardInterrupt, and the test would fail
    for how the suite was started, not for what lexp does."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_lexp(*args: str, stdin: bytes | None = None, timeout: float = 60,
             cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m lexp ARGS`` as a user would; stdout is bytes, stderr text."""
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    full_env.pop("LEXP_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "lexp", *args], input=stdin,
                          capture_output=True, timeout=timeout, cwd=cwd, env=full_env)
    proc.stderr = proc.stderr.decode("utf-8", "replace")
    return proc


def assert_clean_failure(proc: subprocess.CompletedProcess, code: int = 1) -> None:
    """A failure the way users should see it: one error line, no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Small synthetic videos, written once per session."""
    root = tmp_path_factory.mktemp("clips")
    square = list(synthetic.moving_square(96, 64, frames=12))
    street = list(synthetic.night_street(160, 90, frames=40))
    made = {
        "square": synthetic.write_video(root / "square.mp4", iter(square), fps=10),
        "street": synthetic.write_video(root / "street.mp4", iter(street), fps=20),
        "one_frame": synthetic.write_video(root / "one_frame.mp4", iter(square[:1]), fps=10),
    }
    # A streamable container for stdin (matroska needs no seeking).
    from lexp.media import ffmpeg_exe

    mkv = root / "street.mkv"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(made["street"]),
                    "-c", "copy", str(mkv)], check=True)
    made["street_mkv"] = mkv
    return made


@pytest.fixture
def frames_dir(tmp_path) -> Path:
    """A folder of 12 PNG frames named so that only a natural sort orders them right."""
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(synthetic.moving_square(96, 64, frames=12)):
        cv2.imwrite(str(folder / f"frame{i}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def write_bad_inputs(folder: Path, clip: bytes) -> None:
    """The classic bad clips into ``folder``: empty, text, truncated (a third of
    ``clip``'s bytes), an empty folder, a folder of junk, frames of two sizes."""
    import cv2

    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("not a video at all\n" * 40)
    (folder / "truncated.mp4").write_bytes(clip[: len(clip) // 3])
    (folder / "empty_dir").mkdir()
    junk = folder / "junk_dir"
    junk.mkdir()
    (junk / "readme.txt").write_text("hello")
    (junk / "data.bin").write_bytes(os.urandom(100))
    mixed = folder / "mixed_sizes"
    mixed.mkdir()
    cv2.imwrite(str(mixed / "f1.png"), np.zeros((20, 30, 3), np.uint8))
    cv2.imwrite(str(mixed / "f2.png"), np.zeros((22, 30, 3), np.uint8))


def decode_rgb(path: Path) -> np.ndarray:
    """An output image as RGB (uint8 or uint16)."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
