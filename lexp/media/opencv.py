"""Video decoded in-process by OpenCV's FFmpeg backend, on a reader thread, and the
choice between it and the ffmpeg pipe (:func:`open_video`)."""

from __future__ import annotations

import math
import os
import queue
import threading

import numpy as np

from lexp.media.clip import Clip, ClipInfo
from lexp.media.ffmpeg import VideoClip, _ended_early

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
        # Pixels that are not square (anamorphic video): OpenCV would ignore it.
        num, den = self._cap.get(cv2.CAP_PROP_SAR_NUM), self._cap.get(cv2.CAP_PROP_SAR_DEN)
        self.square_pixels = not (num > 0 and den > 0 and num != den)
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
        reached = None  # the last frame's time (s): the file's end, for a variable rate
        try:
            while end is None or decoded < end:
                if self._stop.is_set():
                    return
                index = decoded
                if index < first or (index - first) % stride:
                    if not cap.grab():  # decoded but not converted: a skipped frame
                        break
                    decoded += 1
                    reached = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                    continue
                slot = self._take_slot(slots)
                if slot is _NO_SLOT:
                    return  # stopping
                ok, frame = cap.read(slot) if slot is not None else cap.read()
                if not ok:
                    break
                decoded += 1
                self._times[index] = reached = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                if to_rgb:
                    cv2.cvtColor(frame, cv2.COLOR_BGR2RGB, dst=frame)
                full.put((index, frame, slot))
            else:
                full.put(None)  # reached `end`: no truncation check
                return
            warning = _ended_early(self._name, decoded, self.info.frame_count,
                                   reached=reached,
                                   fps=self.info.fps)
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
            if clip.pixel_format in _EIGHT_BIT_FORMATS and clip.square_pixels:
                return clip
            deep = clip.pixel_format not in _EIGHT_BIT_FORMATS
            clip.close()
            return VideoClip(path, name, "video", fps, high_bit_depth=deep)
    return VideoClip(path, name, "video", fps)


def is_utf8_name(path: str | os.PathLike) -> bool:
    """True when the path's bytes are valid UTF-8 (what C++ libraries such as OpenCV take)."""
    try:
        os.fsdecode(path).encode("utf-8")
    except UnicodeError:
        return False
    return True

