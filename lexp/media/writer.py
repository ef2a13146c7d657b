"""Writing H.264 video (trail videos, flow videos), atomically."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from lexp.errors import OutputError
from lexp.media.ffmpeg import ffmpeg_exe
from lexp.paths import (
    check_replaceable,
    describe_os_error,
    replace_into,
    scratch_name,
    sweep_leftovers,
    through_links,
)


class VideoWriter:
    """H.264 (yuv420p) video from uint8 H×W×3 RGB frames, written atomically.

    Frames go to ffmpeg on a pipe, which writes a hidden temp file beside ``path``;
    :meth:`commit` waits for ffmpeg and renames the file into place only when ffmpeg
    says it wrote it all (exit status 0), so a full disk or a failed encoder is an
    :class:`~lexp.errors.OutputError`, never an unplayable file left as a result.
    :meth:`abort` (or leaving a ``with`` block by an exception) removes it. (imageio-ffmpeg's
    writer ignores ffmpeg's exit status, hence our own few lines around the same binary.)
    Odd sizes are scaled up to even ones, as 4:2:0 chroma needs.
    """

    def __init__(self, path: str | Path, fps: float = 30.0, crf: int = 18,
                 preset: str = "medium") -> None:
        self.path = through_links(path)
        check_replaceable(self.path)  # before any frame is encoded
        sweep_leftovers(self.path.parent)  # partial videos of runs that were killed
        self.fps, self.crf, self.preset = fps, crf, preset
        # A short hidden name: the target's own name may already be near the 255-byte limit.
        # (Named after our pid: a batch cleans up after a worker that was killed.)
        self._tmp = self.path.with_name(f"{scratch_name('tmp', hidden=True)}{id(self):x}.mp4")
        self._proc: subprocess.Popen | None = None
        self._log = None
        self._size: tuple[int, int] | None = None

    def add(self, frame: np.ndarray) -> None:
        """Append one uint8 H×W×3 RGB frame (every frame has the first one's size)."""
        h, w = frame.shape[:2]
        if self._proc is None:
            self._start(w, h)
        elif (w, h) != self._size:
            raise ValueError(f"video frame is {w}x{h}, the video is {self._size[0]}x"
                             f"{self._size[1]}")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame, np.uint8).data)
        except OSError:  # ffmpeg has stopped (a broken pipe): say why
            self._raise_failure(self._stop(kill=False))

    def _start(self, w: int, h: int) -> None:
        self._size = (w, h)
        even = (w + w % 2, h + h % 2)
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{self.fps:g}",
               "-i", "pipe:0", "-an"]
        if even != (w, h):
            cmd += ["-vf", f"scale={even[0]}:{even[1]}"]
        cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(self.crf),
                "-preset", self.preset, "-f", "mp4", str(self._tmp)]
        self._log = tempfile.TemporaryFile()
        # A session of its own, as for decoding: Ctrl-C reaches only us, and we stop it.
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      stderr=self._log, start_new_session=True)

    def _raise_failure(self, status: int | None) -> None:
        """Remove the temp file and raise an OutputError with the reason ffmpeg (stopped,
        with exit ``status``) gave."""
        import errno
        import signal

        self._log.seek(0)
        said = self._log.read().decode("utf-8", "replace").strip().splitlines()
        self._log.close()
        self._tmp.unlink(missing_ok=True)
        last = said[-1] if said else f"ffmpeg stopped (exit status {status})"
        if "No space left" in last:
            raise describe_os_error(OSError(errno.ENOSPC, last), self.path)
        if "File too large" in last or status == -signal.SIGXFSZ:  # a file size limit
            raise describe_os_error(OSError(errno.EFBIG, "File too large"), self.path)
        raise OutputError(f"cannot write the video {self.path}: {last[-200:]}",
                          hint="check the folder exists, is writable and has space")

    def _stop(self, kill: bool) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        with contextlib.suppress(OSError):
            proc.stdin.close()
        if kill:
            proc.kill()
        try:
            return proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise

    def _finish(self) -> None:
        """Wait for ffmpeg; raise (temp file removed) unless it wrote the whole file."""
        if self._proc is None:
            return
        status = self._stop(kill=False)
        if status != 0:
            self._raise_failure(status)
        self._log.close()

    def commit(self) -> Path:
        """Finish the file and move it into place."""
        if self._size is not None:
            self._finish()
            try:
                replace_into(self._tmp, self.path)
            except BaseException:
                self._tmp.unlink(missing_ok=True)
                raise
        return self.path

    def abort(self) -> None:
        """Stop ffmpeg and leave nothing behind."""
        self._stop(kill=True)
        if self._log is not None:
            self._log.close()
        self._tmp.unlink(missing_ok=True)

    def finish_unplaced(self) -> Path:
        """Finish encoding but leave the file at its hidden temp path, for a further
        pass (e.g. a crop); the caller moves or removes it."""
        self._finish()
        return self._tmp

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind, *exc: object) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()
