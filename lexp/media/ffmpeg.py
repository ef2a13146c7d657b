"""Video through the ffmpeg binary (imageio-ffmpeg's), as rgb24 on a pipe: files OpenCV
cannot open, deep (10-bit, HDR) video, and stdin. Its log becomes one-line errors."""

from __future__ import annotations

import collections
import contextlib
import math
import os
import re
import subprocess
import threading

import numpy as np

from lexp.errors import InputError
from lexp.media.clip import Clip, ClipInfo

# Linux lets a pipe grow to 1 MiB (fs.pipe-max-size); fewer, larger reads cost less CPU.
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031


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


_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"P6", b"P5", b"II*\x00",
                b"MM\x00*")


def _looks_like_image(head: bytes) -> bool:
    """The first bytes of a still image: stdin is then a stream of images."""
    return head.startswith(_IMAGE_MAGIC)


def _looks_like_mp4(head: bytes) -> bool:
    """ISO-BMFF (mp4/mov/m4v/3gp): boxes, with ftyp/moov/mdat/wide/free near the start."""
    return head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")


_PNG_END = b"IEND\xaeB`\x82"  # a PNG's last chunk, with its CRC
_JPEG_END = b"\xff\xd9"


def _ends_in_junk(ends: tuple[bytes, bytes] | None) -> bool:
    """True when a stream of PNG or JPEG images (its first and last bytes) does not end
    where an image does. ffmpeg decodes such junk as a broken frame only when it arrives
    in a read of its own; appended to the last image's read, it is dropped silently."""
    if ends is None:
        return False
    head, tail = ends
    if head.startswith(b"\x89PNG"):
        return not tail.endswith(_PNG_END)
    if head.startswith(b"\xff\xd8\xff"):
        return not tail.endswith(_JPEG_END)
    return False


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
                 failed: bool = False, reached: float | None = None,
                 fps: float | None = None) -> str | None:
    """A warning if decoding stopped well short of the frame count the container gave
    (2 %, at least 2 frames, of slack for containers that round), or the decoder failed.
    ``reached``: the last frame's time in seconds, when known: a variable-rate file
    holds fewer frames than duration × rate, and one decoded to its end is whole."""
    slack = max(2, expected // 50) if expected else 0
    if not failed and not (expected and decoded < expected - slack):
        return None
    if not failed and reached is not None and fps and reached >= (expected - slack - 1) / fps:
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
        self._stream_end: tuple[bytes, bytes] | None = None  # (first, last bytes) once fed
        read_fd, write_fd = os.pipe()
        with contextlib.suppress(OSError):  # Linux only; a smaller pipe just costs more reads
            import fcntl

            fcntl.fcntl(read_fd, _F_SETPIPE_SZ, _PIPE_SIZE)
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "info"]
        if stdin_data is None:
            cmd.append("-nostdin")
        cmd += [*input_options, "-i", path, "-map", "0:v:0", "-an", "-sn", "-dn"]
        # Square pixels: anamorphic video (a sample aspect ratio other than 1:1, e.g. DV
        # or HDV) is stretched to the width it is shown at; sar is 1 when unknown.
        scale = "scale=w='iw*sar':h=ih"
        if high_bit_depth:
            # swscale's default path to rgb24 drops the extra bits first and comes out
            # ~2 codes dark on 10-bit video (measured on flat greys); this one rounds.
            scale += ":flags=accurate_rnd+full_chroma_int"
        cmd += ["-vf", scale + ",setsar=1"]
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
            tail = head[-16:]
            while block := source.read(1 << 20):
                sink.write(block)
                tail = (tail + block)[-16:]
            self._stream_end = (head, tail)  # the stream's first and last bytes, whole
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
        if self._feeder is not None:
            self._feeder.join(timeout=2)
        if self._image_stream and (self._log.decode_errors or
                                   _ends_in_junk(self._stream_end)):
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
