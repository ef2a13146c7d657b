"""Reading clips as a stream of frames: video files, image folders, globs and stdin.

Data contract
-------------
Frames leave this module as ``uint8`` H×W×3 **RGB** numpy arrays (BGR exists only inside
cv2 calls), one at a time from an iterator; a clip is never held in memory whole.
:meth:`Clip.frames` yields ``(index, frame)`` where ``index`` counts frames from the
start of the clip (0-based), whatever window was selected.

Sources
-------
- Video files (mp4, mov, mkv, avi, webm, gif, ...): decoded in-process by OpenCV's
  FFmpeg backend on a reader thread (:class:`CvVideoClip`). It is the same FFmpeg
  decoder and swscale conversion as the ffmpeg binary (the frames are bit-identical;
  a test checks it), without copying every frame through a pipe, which is what lets a
  mean render keep pace with decoding on two cores.
- Otherwise, and for stdin: the ffmpeg binary that ships with imageio-ffmpeg, as raw
  rgb24 on a pipe (:class:`VideoClip`). We drive ffmpeg ourselves rather than through
  ``imageio_ffmpeg.read_frames`` to read stdin, to read each frame straight into its
  array, to enlarge the pipe, and to turn ffmpeg's log into one-line errors. A file
  OpenCV cannot open goes this way too, so its error message comes from ffmpeg.
  ``LEXP_DECODER=ffmpeg`` forces this path for every video. Video of 10 bits or more
  (HDR among it) always takes it, converted to rgb24 with rounding, and the colour tags
  in ffmpeg's header (``ClipInfo.transfer_tag``) tell HDR curves apart (see
  :func:`open_video`, and ``lexp.colour`` for what is done with them).
- Image folders / globs / lists of image files: natural sort (frame2 before frame10);
  16-bit images are rounded to 8 bits, grey and alpha are handled.
- ``-`` (stdin): a video stream, or a stream of images one after another (ffmpeg's
  ``-f image2pipe``: PNG, JPEG, BMP, PNM, TIFF). MP4/MOV need random access (their index
  may sit at the end), so those are spooled to a temp file first; streamable containers
  (mkv, mpegts, nut, y4m, ...) and image streams go straight into ffmpeg. An image
  stream has no frame rate of its own: ``--fps`` gives one (else ffmpeg's 25).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import math
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lexp.errors import InputError
from lexp.paths import refuse_special_file, special_file_kind  # noqa: F401 (re-exported)

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .avi .webm .gif .mts .m2ts .ts .mpg .mpeg .wmv .flv .3gp .y4m .ogv"
    .split()
)
IMAGE_EXTENSIONS = frozenset(".jpg .jpeg .png .tif .tiff .bmp .webp .ppm .pgm .jp2".split())
STDIN = "-"

# Linux lets a pipe grow to 1 MiB (fs.pipe-max-size); fewer, larger reads cost less CPU.
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031


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
        self.info = ClipInfo(name, "frames", w, h, fps, len(self._frames), True)

    def frame_time(self, index):
        return self._times[index] if self._times is not None else None

    def frames(self, first=0, end=None, stride=1, reuse_buffer=False, any_channel_order=False):
        stop = len(self._frames) if end is None else min(end, len(self._frames))
        for index in range(first, stop, stride):
            yield index, self._frames[index]


def check_frame(frame, index: int) -> np.ndarray:
    """A frame handed in by a caller (the Python API), checked against the data contract:
    uint8 H×W×3 RGB. A UsageError says what is wrong with it otherwise."""
    from lexp.errors import UsageError

    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 or \
            min(frame.shape[:2]) < 1:
        raise UsageError(f"frame {index} is {frame.dtype} {'x'.join(map(str, frame.shape))}; "
                         "frames are uint8 H×W×3 RGB",
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
        self.info = ClipInfo(name, "frames", w, h, fps, None, True)
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


# --------------------------------------------------------------------------- images


def read_image_rgb8(path: Path) -> np.ndarray:
    """One image file -> uint8 H×W×3 RGB. Raises InputError if it cannot be decoded."""
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data is not None and data.size \
            else None
    except cv2.error:  # OpenCV refuses, e.g., a header claiming over 2^30 pixels
        raise InputError(f"cannot decode image {path}: {_image_size_said(path)}",
                         hint="remove or replace the file") from None
    if img is None:
        raise InputError(f"cannot decode image {path}",
                         hint="remove or replace the broken file")
    if img.dtype == np.uint16:
        img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(np.rint(img.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _image_size_said(path: Path) -> str:
    """Why OpenCV refused an image, from what its header claims (read by Pillow, which
    reads the header only)."""
    from PIL import Image

    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # the header only: safe
    try:
        with Image.open(path) as img:
            w, h = img.size
    except Exception:  # noqa: BLE001 - any failure: the file is simply damaged
        return "the file is damaged"
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    return f"its header says {w}x{h} pixels, more than lexp reads (2^30)"


class FrameFolderClip(Clip):
    """A sequence of image files, already sorted in frame order."""

    def __init__(self, name: str, files: Sequence[Path], fps: float | None) -> None:
        if not files:
            raise InputError(f"no image files in {name}",
                             hint="expected .jpg/.png/.tif frames, or pass a video file")
        self.files = list(files)
        self._first = read_image_rgb8(self.files[0])
        h, w = self._first.shape[:2]
        self.info = ClipInfo(name, "frames", w, h, fps, len(self.files), True)
        self._times: list[float] | None = None
        self._timing_checked = False
        self._warnings: list[str] = []
        self.notes: list[str] = []  # from resolving the folder (ClipSource.notes)

    def frame_time(self, index):
        if not self._timing_checked:  # read every file's EXIF once, on first use
            from lexp import timing

            self._timing_checked = True
            self._times, why = timing.folder_times(self.files)
            if why:
                self._warnings.append(f"{self.info.name}: {why}; frames weigh equally")
        return self._times[index] if self._times is not None else None

    def warnings(self):
        return self.notes + self._warnings

    def frames(self, first=0, end=None, stride=1, reuse_buffer=False, any_channel_order=False):
        stop = len(self.files) if end is None else min(end, len(self.files))
        for index in range(first, stop, stride):
            path = self.files[index]
            frame = self._first if index == 0 else read_image_rgb8(path)
            if frame.shape[:2] != (self.info.height, self.info.width):
                h, w = frame.shape[:2]
                raise InputError(
                    f"frame {index} ({path.name}) is {w}x{h}, but the clip's frames are "
                    f"{self.info.width}x{self.info.height}",
                    hint="all frames of a clip must have one size: resize or remove the odd ones",
                )
            yield index, frame


# --------------------------------------------------------------------------- video

_SIZE_RE = re.compile(r"(?<![\w/])(\d{1,5})x(\d{1,5})(?=[ ,\[]|$)")
_FPS_RE = re.compile(r"(\d+(?:\.\d+)?)(k?) fps")
_TBR_RE = re.compile(r"(\d+(?:\.\d+)?)(k?) tbr")
_RECONFIGURED_RE = re.compile(r"Reconfiguring filter graph because video parameters "
                              r"changed to .*?(\d{1,5})x(\d{1,5})")
_DURATION_RE = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")

# ffmpeg log lines -> what they mean for a user.
_FFMPEG_DIAGNOSES = (
    ("moov atom not found", "the file is truncated or incomplete (no MP4 index)",
     "re-copy or re-export the clip"),
    ("Invalid data found when processing input", "not a video that ffmpeg can decode",
     "check that the file is a video (mp4, mov, mkv, avi, webm, gif)"),
    ("matches no streams", "it has no video stream", "pass a file with video in it"),
    ("Output file does not contain any stream", "it has no video stream",
     "pass a file with video in it"),
    ("Permission denied", "permission denied", "check the file's permissions"),
)


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg (or IMAGEIO_FFMPEG_EXE)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


class _StderrLog(threading.Thread):
    """Drains ffmpeg's stderr (so it never blocks), keeping the header and the last lines."""

    def __init__(self, stream) -> None:
        super().__init__(daemon=True)
        self._stream = stream
        self.header: list[str] = []
        self.tail: collections.deque[str] = collections.deque(maxlen=40)
        self.header_done = threading.Event()
        self._in_output = False
        # Seen after the header, whatever scrolls out of the tail: the frame sizes ffmpeg
        # reconfigured to (it scales every frame to the first size without a word), and
        # how many frames it could not decode.
        self.sizes: list[tuple[int, int]] = []
        self.decode_errors = 0
        self.start()

    def run(self) -> None:
        for raw in iter(self._stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if not self.header_done.is_set():
                self.header.append(line)
                if line.startswith("Output #"):
                    self._in_output = True
                elif self._in_output and "Stream #" in line and "Video:" in line:
                    self.header_done.set()
            else:
                self.tail.append(line)
                changed = _RECONFIGURED_RE.search(line)
                if changed:
                    self.sizes.append((int(changed.group(1)), int(changed.group(2))))
                elif "Decoding error" in line or "Invalid data found" in line:
                    self.decode_errors += 1
        self.header_done.set()  # EOF: ffmpeg is gone, with or without a header

    def all_text(self) -> str:
        return "\n".join(self.header + list(self.tail))


def _parse_header(lines: list[str]) -> tuple[int, int, float | None, float | None]:
    """(width, height, fps, duration_s) from ffmpeg's header lines."""
    out_line = in_line = None
    in_output = False
    duration = None
    for line in lines:
        if line.startswith("Output #"):
            in_output = True
        if "Stream #" in line and "Video:" in line:
            if in_output:
                out_line = line
            elif in_line is None:
                in_line = line
        m = _DURATION_RE.search(line)
        if m and duration is None:
            duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    if out_line is None:
        raise ValueError("no output video stream in the ffmpeg header")
    m = _SIZE_RE.search(out_line.split("Video:", 1)[1])
    if not m:
        raise ValueError("no frame size in the ffmpeg header")
    width, height = int(m.group(1)), int(m.group(2))
    fps = None
    for regex in (_FPS_RE, _TBR_RE):
        m = regex.search(in_line or out_line)
        if m:
            fps = float(m.group(1)) * (1000 if m.group(2) else 1)
            break
    return width, height, (fps if fps and math.isfinite(fps) else None), duration


def _input_pixel_format(lines: list[str]) -> tuple[str, list[str]]:
    """The input video stream's pixel format and its details from ffmpeg's header, e.g.
    ("yuv420p10le", ["tv", "bt2020nc/bt2020/arib-std-b67", "progressive"]); ("", [])
    when the header has none."""
    for line in lines:
        if line.startswith("Output #"):
            break
        if "Stream #" in line and "Video:" in line:
            parts, depth, item = [], 0, ""
            for char in line.split("Video:", 1)[1]:  # split on commas outside brackets
                depth += {"(": 1, ")": -1}.get(char, 0)
                if char == "," and depth == 0:
                    parts.append(item.strip())
                    item = ""
                else:
                    item += char
            parts.append(item.strip())
            if len(parts) < 2:
                return "", []
            name, _, details = parts[1].partition("(")
            return name.strip(), [d.strip() for d in details.rstrip(")").split(",") if d.strip()]
    return "", []


def _transfer_tag(lines: list[str]) -> str | None:
    """The input video's transfer tag (ffmpeg's name) from ffmpeg's header lines: the
    last of "colour space/primaries/transfer", or the one name given when all agree."""
    for detail in _input_pixel_format(lines)[1]:
        if detail.count("/") == 2:
            return detail.split("/")[2]
        if detail in ("bt709", "smpte170m", "bt470bg", "bt2020"):
            return detail
    return None


def _deep_pixels(lines: list[str]) -> bool:
    """Whether the input video has more than 8 bits a sample (yuv420p10le, p010le, ...)."""
    bits = re.search(r"(\d+)(?:le|be)$", _input_pixel_format(lines)[0])
    return bits is not None and int(bits.group(1)) > 8


def _diagnose(text: str, path: str | None = None) -> tuple[str, str | None]:
    """(what went wrong, hint) from ffmpeg's log; ``path`` lets us look at the file."""
    if "moov atom not found" in text and path and os.path.isfile(path):
        with open(path, "rb") as fh:
            if not _looks_like_mp4(fh.read(12)):  # ffmpeg guessed MP4 from the name
                return ("not a video that ffmpeg can decode",
                        "check that the file is a video (mp4, mov, mkv, avi, webm, gif)")
    for needle, meaning, hint in _FFMPEG_DIAGNOSES:
        if needle in text:
            return meaning, hint
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return (lines[-1] if lines else "ffmpeg could not read it"), None


def _ended_early(name: str, decoded: int, expected: int | None,
                 failed: bool = False) -> str | None:
    """A warning if decoding stopped well short of the frame count the container gave
    (2 %, at least 2 frames, of slack for containers that round), or the decoder failed."""
    if not failed and not (expected and decoded < expected - max(2, expected // 50)):
        return None
    about = f" of about {expected}" if expected else ""
    return f"{name}: decoding stopped after {decoded}{about} frames (is the file truncated?)"


class VideoClip(Clip):
    """A video decoded by ffmpeg to rgb24 on a pipe.

    ``path`` is a file path, or ``"pipe:0"`` with ``stdin_data`` set to a binary stream
    that a feeder thread copies into ffmpeg (after ``head``, bytes already read from it).
    """

    def __init__(self, path: str, name: str, kind: str = "video", fps: float | None = None,
                 stdin_data=None, head: bytes = b"", input_options: list[str] = (),
                 high_bit_depth: bool = False) -> None:
        self._name = name
        self._warnings: list[str] = []
        self._image_stream = "image2pipe" in input_options  # stdin carries still images
        read_fd, write_fd = os.pipe()
        with contextlib.suppress(OSError):  # Linux only; a smaller pipe just costs more reads
            import fcntl

            fcntl.fcntl(read_fd, _F_SETPIPE_SZ, _PIPE_SIZE)
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "info"]
        if stdin_data is None:
            cmd.append("-nostdin")
        cmd += [*input_options, "-i", path, "-map", "0:v:0", "-an", "-sn", "-dn"]
        if high_bit_depth:
            # swscale's default path to rgb24 drops the extra bits first and comes out
            # ~2 codes dark on 10-bit video (measured on flat greys); this one rounds.
            cmd += ["-vf", "scale=flags=accurate_rnd+full_chroma_int"]
        cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
        try:
            # A session of its own: Ctrl-C reaches only us, and we stop ffmpeg in order.
            # Otherwise ffmpeg might quit first and we would take its EOF for the clip's end.
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
                stdout=write_fd, stderr=subprocess.PIPE, start_new_session=True)
        finally:
            os.close(write_fd)
        self._stdout = os.fdopen(read_fd, "rb", buffering=0)
        self._log = _StderrLog(self._proc.stderr)
        self._feeder = None
        if stdin_data is not None:
            self._feeder = threading.Thread(
                target=self._feed, args=(stdin_data, head), daemon=True)
            self._feeder.start()
        try:
            self._log.header_done.wait()
            try:
                width, height, rate, duration = _parse_header(self._log.header)
            except ValueError:
                self._proc.wait()
                self._log.join(timeout=2)
                meaning, hint = _diagnose(self._log.all_text(), path)
                raise InputError(f"cannot read {name}: {meaning}", hint=hint) from None
        except BaseException:
            self.close()
            raise
        rate = fps or rate
        count = round(duration * rate) if duration and rate else None
        self.info = ClipInfo(name, kind, width, height, rate, count, False,
                             _transfer_tag(self._log.header))
        self._frame_bytes = width * height * 3
        if not high_bit_depth and stdin_data is None and _deep_pixels(self._log.header):
            # Known only now (LEXP_DECODER=ffmpeg, or a file OpenCV cannot open): start
            # again with the rounding conversion; nothing has been decoded yet. (A
            # stream on stdin cannot be read twice: it keeps the default conversion.)
            self.close()
            self.__init__(path, name, kind, fps, input_options=input_options,
                          high_bit_depth=True)

    def _feed(self, source, head: bytes) -> None:
        """Copy stdin into ffmpeg; stops quietly when ffmpeg has had enough."""
        sink = self._proc.stdin
        try:
            if head:
                sink.write(head)
            shutil.copyfileobj(source, sink, 1 << 20)
        except (BrokenPipeError, ValueError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError, ValueError):
                sink.close()

    def _read_into(self, frame: np.ndarray) -> bool:
        """Fill ``frame`` from the pipe. False at a clean end of stream."""
        view = memoryview(frame).cast("B")
        got = 0
        while got < self._frame_bytes:
            n = self._stdout.readinto(view[got:])
            if not n:
                if got:
                    self._warnings.append(f"{self._name}: the last frame was incomplete "
                                          "and was dropped")
                return False
            got += n
        return True

    def frames(self, first=0, end=None, stride=1, reuse_buffer=False, any_channel_order=False):
        shape = (self.info.height, self.info.width, 3)
        buffer = np.empty(shape, np.uint8) if reuse_buffer else None
        # Frames before `first` (or between strides) are decoded and dropped: exact for
        # every container and for stdin, at the cost of decoding them.
        index = -1
        while end is None or index + 1 < end:
            frame = buffer if buffer is not None else np.empty(shape, np.uint8)
            if not self._read_into(frame):
                break
            index += 1
            if index >= first and (index - first) % stride == 0:
                yield index, frame
        else:
            return  # stopped at `end` on purpose: nothing to check
        self._check_end(index + 1)

    def _check_end(self, decoded: int) -> None:
        """After the stream ended: did ffmpeg fail, or stop well short of the clip? Did
        the frames change size (ffmpeg scaled them to the first size), or an image
        stream end in something that is not an image? (A folder refuses both.)"""
        code = self._proc.wait()
        self._log.join(timeout=2)
        if code != 0 and decoded == 0:
            meaning, hint = _diagnose(self._log.all_text())
            raise InputError(f"cannot read {self._name}: {meaning}", hint=hint)
        size = (self.info.width, self.info.height)
        other = next((s for s in self._log.sizes if s != size), None)
        if other is not None:
            raise InputError(f"a frame is {other[0]}x{other[1]}, but the "
                             f"frames started at {size[0]}x{size[1]}",
                             hint="all frames of a clip must have one size")
        if self._log.decode_errors and self._image_stream:
            raise InputError(f"after {decoded} images came data that is not "
                             "an image", hint="send only whole images (or one video) on stdin")
        warning = _ended_early(self._name, decoded, self.info.frame_count, failed=code != 0)
        if warning:
            self._warnings.append(warning)

    def warnings(self) -> list[str]:
        return list(self._warnings)

    def close(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is None:
            return
        with contextlib.suppress(OSError):
            self._stdout.close()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._feeder is not None:
            self._feeder.join(timeout=0.5)
        self._log.join(timeout=1)
        with contextlib.suppress(OSError):
            proc.stderr.close()
        self._proc = None


_NO_SLOT = object()  # marks "no slot" (a slot itself may be None)


class CvVideoClip(Clip):
    """A video file decoded in-process by OpenCV (FFmpeg backend), on a reader thread.

    cv2's ``read``/``grab`` release the GIL, so decoding the next frame overlaps with
    whatever the caller does with this one. Use :func:`open_video`, which falls back to
    :class:`VideoClip` when OpenCV cannot open the file.
    """

    _AHEAD = 3  # frames decoded ahead of the caller

    # The two threads hand frames over through queue.SimpleQueue, which is implemented in
    # C: a Ctrl-C/SIGTERM (raised as KeyboardInterrupt in the caller's thread, at any
    # point) cannot leave it locked, as it can a queue.Queue or a Condition, and wedge
    # close(). Back-pressure comes from a ring of "slots" the caller hands back: reused
    # frame buffers, or plain tokens when every frame is a new array.

    def __init__(self, path: str, name: str, fps: float | None = None) -> None:
        import cv2

        self._name = name
        self._warnings: list[str] = []
        # Frame threads = cores + 1, as the ffmpeg CLI's "auto" does; OpenCV's default
        # (= cores) leaves the decoder idle while a thread waits on its neighbour.
        params = [cv2.CAP_PROP_N_THREADS, (os.cpu_count() or 1) + 1]
        self._cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, params)
        width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if not self._cap.isOpened() or width <= 0 or height <= 0:
            self._cap.release()
            raise OSError("OpenCV cannot open it")
        rate = self._cap.get(cv2.CAP_PROP_FPS)
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        # The decoder's pixel format as a fourcc, e.g. b"I420" (8-bit 4:2:0).
        self.pixel_format = int(self._cap.get(cv2.CAP_PROP_CODEC_PIXEL_FORMAT)
                                ).to_bytes(4, "little", signed=False)
        self.info = ClipInfo(name, "video", width, height,
                             fps or (rate if rate > 0 and math.isfinite(rate) else None),
                             count if count > 0 else None, False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # index -> presentation time in frame periods, written by the decoder thread
        # before the frame is handed over.
        self._times: dict[int, float] = {}

    native_bgr = True

    def frame_time(self, index):
        seconds = self._times.get(index)
        return seconds * self.info.fps if seconds is not None and self.info.fps else None

    def frames(self, first=0, end=None, stride=1, reuse_buffer=False, any_channel_order=False):
        full: queue.SimpleQueue = queue.SimpleQueue()
        slots: queue.SimpleQueue = queue.SimpleQueue()
        shape = (self.info.height, self.info.width, 3)
        # One slot is held by the caller, one by the decoder, _AHEAD wait in `full`.
        for _ in range(self._AHEAD + 2):
            slots.put(np.empty(shape, np.uint8) if reuse_buffer else None)
        self._thread = threading.Thread(
            target=self._decode, args=(full, slots, first, end, stride, not any_channel_order),
            daemon=True)
        self._thread.start()
        held = _NO_SLOT
        while True:
            item = full.get()
            if held is not _NO_SLOT:
                slots.put(held)  # the caller is done with the frame before this one
                held = _NO_SLOT
            if isinstance(item, BaseException):
                raise item
            if item is None:
                break
            index, frame, held = item
            yield index, frame

    def _take_slot(self, slots: queue.SimpleQueue):
        """A free slot, or _NO_SLOT if the reader is being stopped."""
        while not self._stop.is_set():
            try:
                return slots.get(timeout=0.1)
            except queue.Empty:
                continue
        return _NO_SLOT

    def _decode(self, full, slots, first, end, stride, to_rgb) -> None:
        import cv2

        cap, decoded = self._cap, 0  # decoded = frames taken from the stream so far
        try:
            while end is None or decoded < end:
                if self._stop.is_set():
                    return
                index = decoded
                if index < first or (index - first) % stride:
                    if not cap.grab():  # decoded but not converted: a skipped frame
                        break
                    decoded += 1
                    continue
                slot = self._take_slot(slots)
                if slot is _NO_SLOT:
                    return  # stopping
                ok, frame = cap.read(slot) if slot is not None else cap.read()
                if not ok:
                    break
                decoded += 1
                self._times[index] = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                if to_rgb:
                    cv2.cvtColor(frame, cv2.COLOR_BGR2RGB, dst=frame)
                full.put((index, frame, slot))
            else:
                full.put(None)  # reached `end`: no truncation check
                return
            warning = _ended_early(self._name, decoded, self.info.frame_count)
            if warning:
                self._warnings.append(warning)
            full.put(None)
        except BaseException as err:  # surface decoder errors in the caller's thread
            full.put(err)

    def warnings(self) -> list[str]:
        return list(self._warnings)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._cap.release()


# OpenCV's codec pixel formats (fourcc) of 8-bit video; HDR video is 10-bit or more.
_EIGHT_BIT_FORMATS = frozenset((b"I420", b"YV12", b"NV12", b"NV21", b"Y42B", b"444P",
                                b"YUY2", b"UYVY", b"Y800", b"BGRA", b"RGBA"))


def open_video(path: str, name: str, fps: float | None = None) -> Clip:
    """A video file: OpenCV in-process when it can open it and it is 8-bit, else the
    ffmpeg pipe.

    Video of 10 bits or more goes to the pipe, decoded with rounding: OpenCV converts
    HDR (HLG, PQ) frames to SDR as it decodes, which clips every highlight above white
    before the frames are blended (lexp undoes the HDR curve itself, ``lexp.colour``),
    and its 10-bit conversion leaves greys ~2 codes short in green. The pipe also reads
    the colour tags that tell HDR video apart."""
    # OpenCV takes a path as UTF-8 text: a name that is not (bytes from another system's
    # encoding, kept by Python as surrogates) crashed it (SIGSEGV, taking a whole batch
    # down). ffmpeg gets the name's own bytes as an argument.
    if os.environ.get("LEXP_DECODER", "").lower() != "ffmpeg" and is_utf8_name(path):
        try:
            clip = CvVideoClip(path, name, fps)
        except (OSError, ImportError):
            pass
        else:
            if clip.pixel_format in _EIGHT_BIT_FORMATS:
                return clip
            clip.close()
            return VideoClip(path, name, "video", fps, high_bit_depth=True)
    return VideoClip(path, name, "video", fps)


def is_utf8_name(path: str | os.PathLike) -> bool:
    """True when the path's bytes are valid UTF-8 (what C++ libraries such as OpenCV take)."""
    try:
        os.fsdecode(os.fsencode(path)).encode("utf-8")
    except UnicodeError:
        return False
    return True


def path_bytes(path: str | os.PathLike) -> bytes:
    """The path's own bytes, whatever their encoding: for hashing names."""
    return os.fsencode(path)


_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"P6", b"P5", b"II*\x00",
                b"MM\x00*")


def _looks_like_image(head: bytes) -> bool:
    """The first bytes of a still image: stdin is then a stream of images."""
    return head.startswith(_IMAGE_MAGIC)


def _looks_like_mp4(head: bytes) -> bool:
    """ISO-BMFF (mp4/mov/m4v/3gp): boxes, with ftyp/moov/mdat/wide/free near the start."""
    return head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")


class StdinClip(Clip):
    """A video stream on standard input (see the module docstring)."""

    def __init__(self, fps: float | None = None, stream=None) -> None:
        stream = stream if stream is not None else sys.stdin.buffer
        if hasattr(stream, "isatty") and stream.isatty():
            raise InputError("standard input is a terminal, not a video stream",
                             hint="pipe a video in: cat clip.mp4 | lexp render - -o out.jpg")
        head = stream.read(64)
        if not head:
            raise InputError("nothing arrived on standard input",
                             hint="pipe a video in: cat clip.mp4 | lexp render - -o out.jpg")
        self._spool: str | None = None
        if _looks_like_mp4(head):
            fd, self._spool = tempfile.mkstemp(prefix="lexp-stdin-", suffix=".mp4")
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


# --------------------------------------------------------------------------- writing


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
        from lexp.paths import check_replaceable

        self.path = Path(path)
        check_replaceable(self.path)  # before any frame is encoded
        self.fps, self.crf, self.preset = fps, crf, preset
        # A short hidden name: the target's own name may already be near the 255-byte limit.
        self._tmp = self.path.with_name(f".lexp-tmp-{os.getpid()}-{id(self):x}.mp4")
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
        except (BrokenPipeError, OSError):  # ffmpeg has stopped: say why
            self._raise_failure()

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

    def _raise_failure(self) -> None:
        """Stop ffmpeg, remove the temp file, and raise an OutputError with its reason."""
        import errno
        import signal

        from lexp.errors import OutputError
        from lexp.paths import describe_os_error

        status = self._stop(kill=False)
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
        proc = self._proc
        try:
            proc.stdin.close()
        except OSError:
            pass
        if proc.wait() != 0:
            self._proc = proc
            self._raise_failure()
        self._proc = None
        self._log.close()

    def commit(self) -> Path:
        """Finish the file and move it into place."""
        from lexp.paths import replace_into

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


# --------------------------------------------------------------------------- opening


@dataclass(frozen=True)
class ClipSource:
    """A resolved input: what to open, before anything is decoded."""

    name: str  # display name (path as given, a folder, a glob, or "-")
    kind: str  # "video", "frames" or "stdin"
    paths: tuple[Path, ...] = ()  # the video file, or the frame files in order
    notes: tuple[str, ...] = ()  # warnings found while resolving (e.g. files left out)

    @property
    def stem(self) -> str:
        """A name for outputs: the file's stem, the folder's name, or "stdin"."""
        if self.kind == "stdin":
            return "stdin"
        if self.kind == "video":
            return self.paths[0].stem
        base = Path(self.name.rstrip("/"))
        return base.name if base.is_dir() else (self.paths[0].parent.name or "frames")


def open_clip(source: ClipSource, fps: float | None = None) -> Clip:
    """Open a resolved source. ``fps`` overrides (or supplies) the frame rate."""
    if source.kind == "stdin":
        return StdinClip(fps)
    if source.kind == "frames":
        clip = FrameFolderClip(source.name, source.paths, fps)
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
