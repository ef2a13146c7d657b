"""What a clip is to the rest of lexp: ClipInfo, the Clip interface, clips of frames in
memory or from an iterator, and the window helpers (see lexp.media for the contract)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lexp.errors import InputError
from lexp.media.camera_files import HEIF_EXTENSIONS, RAW_EXTENSIONS

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .avi .webm .gif .mts .m2ts .ts .mpg .mpeg .wmv .flv .3gp .y4m .ogv"
    .split()
)
IMAGE_EXTENSIONS = frozenset(".jpg .jpeg .png .tif .tiff .bmp .webp .ppm .pgm .jp2".split()) \
    | RAW_EXTENSIONS | HEIF_EXTENSIONS
STDIN = "-"



def natural_key(path: str | Path) -> list:
    """Sort key so that frame2.png comes before frame10.png."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(path))]


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


@dataclass(frozen=True)
class ClipInfo:
    """What is known about a clip before decoding it."""

    name: str  # display name: the path as given, or "-" for stdin
    kind: str  # "video", "frames" or "stdin"
    width: int  # frame width in pixels
    height: int  # frame height in pixels
    fps: float | None  # frames per second; None when the source has no rate
    frame_count: int | None  # number of frames; approximate for video, None if unknown
    frame_count_exact: bool  # True when frame_count is exact (image folders)
    # The video's transfer tag as ffmpeg names it (bt709, arib-std-b67 = HLG, smpte2084 =
    # PQ, ...); None when it has none or it was not read (8-bit video: never HDR).
    transfer_tag: str | None = None
    bit_depth: int = 8  # code values per channel: 8 (uint8 frames) or 16 (uint16 frames)


class Clip:
    """An opened clip. Use as a context manager; iterate :meth:`frames` once."""

    info: ClipInfo

    #: True when frames(any_channel_order=True) yields BGR frames (see frames()).
    native_bgr = False

    def frames(self, first: int = 0, end: int | None = None, stride: int = 1,
               reuse_buffer: bool = False,
               any_channel_order: bool = False) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, frame)`` for indices first, first+stride, ... below ``end``.

        With ``reuse_buffer`` the same array may be refilled for every frame: a caller
        that keeps frames must leave it False. With ``any_channel_order`` a decoder that
        produces BGR may skip the swap (the frames are then BGR iff ``native_bgr``): for
        channel-symmetric work like stacking, which swaps its one result instead.
        """
        raise NotImplementedError

    def warnings(self) -> list[str]:
        """Problems noticed while decoding that did not stop it (e.g. a truncated file)."""
        return []

    def frame_time(self, index: int) -> float | None:
        """When frame ``index`` (one already yielded) was taken, in frame periods from
        the clip's start (see lexp.timing); None when the source carries no times."""
        return None

    def close(self) -> None:
        pass

    def __enter__(self) -> Clip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MemoryClip(Clip):
    """Frames already in memory (uint8 H×W×3 RGB), as a clip: for benchmarks and tests."""

    def __init__(self, frames: Sequence[np.ndarray], fps: float | None = None,
                 name: str = "frames", times: Sequence[float] | None = None) -> None:
        self._frames = list(frames)
        self._times = list(times) if times is not None else None  # in frame periods
        h, w = self._frames[0].shape[:2]
        self.info = ClipInfo(name, "frames", w, h, fps, len(self._frames), True,
                             bit_depth=bit_depth_of(self._frames[0]))

    def frame_time(self, index):
        return self._times[index] if self._times is not None else None

    def frames(self, first=0, end=None, stride=1, reuse_buffer=False, any_channel_order=False):
        stop = len(self._frames) if end is None else min(end, len(self._frames))
        for index in range(first, stop, stride):
            yield index, self._frames[index]


def to_8bit(frame: np.ndarray) -> np.ndarray:
    """A frame's 8-bit view (uint16 codes rounded: 257 = 65535/255 per step), for what
    works on 8 bits only (optical flow, feature matching); uint8 frames as they are."""
    if frame.dtype == np.uint8:
        return frame
    import cv2

    return cv2.convertScaleAbs(frame, alpha=1 / 257)


def bit_depth_of(frame: np.ndarray) -> int:
    """8 for a uint8 frame, 16 for a uint16 one."""
    return 16 if frame.dtype == np.uint16 else 8


def check_frame(frame, index: int) -> np.ndarray:
    """A frame handed in by a caller (the Python API), checked against the data contract:
    uint8 (or uint16) H×W×3 RGB. A UsageError says what is wrong with it otherwise."""
    from lexp.errors import UsageError

    frame = np.asarray(frame)
    if frame.dtype not in (np.uint8, np.uint16) or frame.ndim != 3 or frame.shape[2] != 3 or \
            min(frame.shape[:2]) < 1:
        raise UsageError(f"frame {index} is {frame.dtype} {'x'.join(map(str, frame.shape))}; "
                         "frames are uint8 (or uint16) H×W×3 RGB",
                         hint="e.g. np.asarray(frame, np.uint8), or cv2.cvtColor(bgr, "
                              "cv2.COLOR_BGR2RGB) for OpenCV's frames")
    return frame


class IteratorClip(Clip):
    """Frames from an iterator (uint8 H×W×3 RGB, one size), read once as they come: a
    generator of frames renders without being held in memory. The first frame is read
    at once, for the clip's size."""

    def __init__(self, frames: Iterator[np.ndarray], fps: float | None = None,
                 name: str = "frames") -> None:
        self._source = frames
        try:
            self._first = check_frame(next(frames), 0)
        except StopIteration:
            raise InputError("the frames given are none", hint="give at least one frame") \
                from None
        h, w = self._first.shape[:2]
        self.info = ClipInfo(name, "frames", w, h, fps, None, True,
                             bit_depth=bit_depth_of(self._first))
        self._used = False

    def frames(self, first=0, end=None, stride=1, reuse_buffer=False, any_channel_order=False):
        if self._used:
            raise RuntimeError("an IteratorClip is read once")
        self._used = True
        size = (self.info.height, self.info.width)
        stream = itertools.chain([self._first], self._source)
        for index, frame in enumerate(stream):
            if end is not None and index >= end:
                break
            frame = check_frame(frame, index)
            if frame.shape[:2] != size:
                raise InputError(f"frame {index} is {frame.shape[1]}x{frame.shape[0]}, but "
                                 f"the frames started at {size[1]}x{size[0]}",
                                 hint="all frames of a clip must have one size")
            if frame.dtype != self._first.dtype:
                raise InputError(f"frame {index} is {frame.dtype}, but the frames started "
                                 f"as {self._first.dtype}",
                                 hint="give every frame of a clip one depth")
            if index >= first and (index - first) % stride == 0:
                yield index, frame


def window_frames(clip: Clip, window, **options) -> Iterator[tuple[int, np.ndarray]]:
    """The frames of ``window`` (a config.Window): [start, end), every stride-th, at most
    max_frames. ``options`` go to :meth:`Clip.frames`."""
    first, end = window.frame_range(clip.info.fps)
    frames = clip.frames(first, end, window.stride, **options)
    if window.max_frames is None:
        yield from frames
        return
    for used, item in enumerate(frames, start=1):
        yield item
        if used >= window.max_frames:
            break


def window_length(info: ClipInfo, window) -> int | None:
    """How many frames ``window`` selects from a clip (None when its length is unknown)."""
    if info.frame_count is None:
        return window.max_frames
    first, end = window.frame_range(info.fps)
    stop = info.frame_count if end is None else min(end, info.frame_count)
    n = max(0, -(-(stop - first) // window.stride))
    return n if window.max_frames is None else min(n, window.max_frames)
