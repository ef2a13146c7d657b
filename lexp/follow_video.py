"""A followed exposure's trail video (``lexp render --follow --video trails.mp4``): the
picture after each frame, one video frame each, growing as the night goes on and
surviving a crash.

The frames are encoded in segments, one from each preview to the next, each committed
(H.264, atomically) beside the video as ``.NAME.lexp-follow.NNNN.mp4``; at each preview
the video is rebuilt from its segments (ffmpeg's concat, streams copied, atomically), so a
player reloading it sees the night so far. The checkpoint lists the segments it holds: a
resumed run removes any other (a crashed run's, whose frames it stacks again) and goes
on numbering after them, so the video never shows a frame twice.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from lexp.errors import OutputError


class GrowingVideo:
    """The video at ``path`` (frames per second ``fps``), continued from ``segments``
    (names of the committed segments beside it, a checkpoint's)."""

    def __init__(self, path: Path, fps: float, segments: list[str] | None = None) -> None:
        self.path, self.fps = path, fps
        self.segments = list(segments or ())
        self.writer = None  # the open segment's VideoWriter
        for stale in path.parent.glob(f".{path.name}.lexp-follow.*.mp4"):
            if stale.name not in self.segments:  # a crashed run's: its frames come again
                stale.unlink(missing_ok=True)

    def add(self, picture: np.ndarray) -> None:
        """One video frame: the picture so far (uint8 H×W×3 RGB)."""
        from lexp.media import VideoWriter

        if self.writer is None:
            name = f".{self.path.name}.lexp-follow.{len(self.segments):04d}.mp4"
            self.writer = VideoWriter(self.path.with_name(name), self.fps)
        self.writer.add(picture)

    def flush(self) -> None:
        """Commit the open segment, and rebuild the video from every segment."""
        if self.writer is not None:
            self.segments.append(self.writer.commit().name)
            self.writer = None
        if self.segments:
            self._concatenate()

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None

    def _concatenate(self) -> None:
        import tempfile

        from lexp.media import ffmpeg_exe
        from lexp.paths import replace_into, scratch_name

        folder = self.path.parent
        with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=folder, prefix=".lexp-",
                                         delete=False) as listing:
            for name in self.segments:
                listing.write(f"file '{(folder / name).resolve()}'\n")
        joined = folder / f"{scratch_name('tmp', hidden=True)}video.mp4"
        try:
            done = subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-y", "-f",
                                   "concat", "-safe", "0", "-i", listing.name, "-c", "copy",
                                   str(joined)], capture_output=True, text=True)
            if done.returncode != 0:
                raise OutputError(f"could not write the trail video {self.path}: "
                                  f"{done.stderr.strip().splitlines()[-1:]}")
            replace_into(joined, self.path)
        finally:
            Path(listing.name).unlink(missing_ok=True)
            joined.unlink(missing_ok=True)
