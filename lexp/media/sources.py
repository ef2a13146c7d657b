"""A resolved input (ClipSource) and opening it as a Clip."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lexp.config import RawOptions
from lexp.errors import InputError
from lexp.media.clip import Clip
from lexp.media.images import AnimatedImageClip, FrameFolderClip, animation_frames
from lexp.media.opencv import open_video
from lexp.media.stdin import StdinClip
from lexp.paths import refuse_special_file


@dataclass(frozen=True)
class ClipSource:
    """A resolved input: what to open, before anything is decoded."""

    name: str  # display name (path as given, a folder, a glob, or "-")
    kind: str  # "video", "frames" or "stdin"
    paths: tuple[Path, ...] = ()  # the video file, or the frame files in order
    notes: tuple[str, ...] = ()  # warnings found while resolving (e.g. files left out)
    live_photo: str | None = None  # a Live Photo's still, when this is its video

    @property
    def stem(self) -> str:
        """A name for outputs: the file's stem, the folder's name, or "stdin"."""
        if self.kind == "stdin":
            return "stdin"
        if self.kind == "video":
            return self.paths[0].stem
        base = Path(self.name.rstrip("/"))
        return base.name if base.is_dir() else (self.paths[0].parent.name or "frames")


def open_again(clip: Clip, source: ClipSource | None, fps: float | None = None,
               raw: RawOptions | None = None):
    """``clip`` opened a second time, to read its frames anew from the start (a context
    manager), or None where it cannot be: a clip in memory as it is, a file (or frames)
    opened again from ``source``, stdin spooled to a file from its spool."""
    import contextlib

    from lexp.media.clip import MemoryClip

    if isinstance(clip, MemoryClip):
        return contextlib.nullcontext(clip)
    if source is not None and source.kind != "stdin" and source.paths:
        return open_clip(source, fps, raw)
    if hasattr(clip, "reopen"):
        return clip.reopen()
    return None


def open_clip(source: ClipSource, fps: float | None = None,
              raw: RawOptions | None = None) -> Clip:
    """Open a resolved source. ``fps`` overrides (or supplies) the frame rate; ``raw``:
    how RAW frames are developed (lexp.media.camera_files; default: full size, as shot)."""
    if source.kind == "stdin":
        return StdinClip(fps)
    if source.kind == "frames":
        if len(source.paths) == 1 and animation_frames(source.paths[0]) > 1:
            return AnimatedImageClip(source.name, source.paths[0], fps)  # APNG, animated WebP
        clip = FrameFolderClip(source.name, source.paths, fps, raw or RawOptions())
        clip.notes = list(source.notes)
        return clip
    path = source.paths[0]
    refuse_special_file(path)
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"cannot read {path}: the file is empty",
                         hint="re-copy or re-export the clip")
    return open_video(str(path), source.name, fps)
