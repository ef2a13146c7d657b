"""A video stream, or a stream of images, on standard input."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile

from lexp.errors import InputError
from lexp.media.clip import STDIN, Clip
from lexp.media.ffmpeg import VideoClip, _looks_like_image, _looks_like_mp4
from lexp.media.opencv import open_video
from lexp.paths import scratch_name, sweep_leftovers


class StdinClip(Clip):
    """A video stream on standard input (see the module docstring)."""

    def __init__(self, fps: float | None = None, stream=None, live: bool = False) -> None:
        """``live``: frames are wanted as they arrive (``--follow``), so an MP4 or MOV,
        which can only be read once it has ended, is refused rather than spooled."""
        if stream is None:
            if sys.stdin is None:  # started with stdin closed (<&-)
                raise InputError("standard input is closed, so no clip can arrive on it",
                                 hint="pipe a video in: cat clip.mp4 | lexp render - -o out.jpg")
            stream = sys.stdin.buffer
        if hasattr(stream, "isatty") and stream.isatty():
            raise InputError("standard input is a terminal, not a video stream",
                             hint="pipe a video in: cat clip.mp4 | lexp render - -o out.jpg")
        head = stream.read(64)
        if not head:
            raise InputError("nothing arrived on standard input",
                             hint="pipe a video in: cat clip.mp4 | lexp render - -o out.jpg")
        self._spool: str | None = None
        self._fps = fps
        if _looks_like_mp4(head) and live:
            raise InputError("--follow reads a stream as it arrives, and an MP4 or MOV on "
                             "stdin can only be read once it has ended",
                             hint="have ffmpeg send matroska, mpegts or nut: ffmpeg ... -f "
                                  "matroska - | lexp render - --follow -o out.jpg")
        if _looks_like_mp4(head):
            sweep_leftovers()  # spools of runs that were killed
            fd, self._spool = tempfile.mkstemp(prefix=scratch_name("stdin"), suffix=".mp4")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(head)
                    shutil.copyfileobj(stream, fh, 1 << 20)
                self._video = open_video(self._spool, STDIN, fps)
            except BaseException:
                self.close()
                raise
        else:
            options = []
            if _looks_like_image(head):
                options = ["-f", "image2pipe"] + (["-framerate", f"{fps:g}"] if fps else [])
            self._video = VideoClip("pipe:0", STDIN, "stdin", fps, stdin_data=stream, head=head,
                                    input_options=options)
        self.info = dataclasses.replace(self._video.info, kind="stdin")

    def reopen(self):
        """The stream again, as a new clip (a context manager), when it was spooled to a
        file (MP4 and MOV, whose index may sit at the end); None when it was not (it
        went straight into ffmpeg and cannot be read twice)."""
        if not self._spool:
            return None
        return open_video(self._spool, STDIN, self._fps)

    @property
    def native_bgr(self) -> bool:
        return self._video.native_bgr

    def frames(self, first=0, end=None, stride=1, reuse_buffer=False, any_channel_order=False):
        return self._video.frames(first, end, stride, reuse_buffer, any_channel_order)

    def frame_time(self, index):
        return self._video.frame_time(index)

    def warnings(self) -> list[str]:
        return self._video.warnings()

    def close(self) -> None:
        video = getattr(self, "_video", None)
        if video is not None:
            video.close()
        if self._spool:
            with contextlib.suppress(OSError):
                os.unlink(self._spool)
            self._spool = None
