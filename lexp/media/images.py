"""Still images: one file as an RGB frame, and a folder (or list) of them as a clip."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lexp.config import RawOptions
from lexp.errors import InputError
from lexp.media.clip import Clip, ClipInfo, bit_depth_of, to_8bit


def read_image(path: Path) -> np.ndarray:
    """One image file -> H×W×3 RGB, uint8 for 8-bit files and uint16 for 16-bit ones
    (PNG, TIFF: their extra bits are the best inputs there are; float TIFFs in [0, 1]
    become uint16 too), turned upright as its EXIF orientation says (as a photo viewer
    shows it). Alpha is dropped, grey becomes RGB. Raises InputError if it cannot be
    decoded. RAW files are developed to linear light and HEIC stills keep their 10 bits
    (:mod:`lexp.media.camera_files`)."""
    import cv2

    from lexp.media import camera_files

    if camera_files.is_raw(path):
        return camera_files.read_raw(path)
    if camera_files.is_heif(path):
        return camera_files.read_heif(path)

    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    try:
        # IMREAD_COLOR applies the EXIF orientation (IMREAD_UNCHANGED ignored it: phone
        # photos came out on their side); ANYDEPTH keeps 16 bits.
        img = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH) \
            if data is not None and data.size else None
    except cv2.error:  # OpenCV refuses, e.g., a header claiming over 2^30 pixels
        raise InputError(f"cannot decode image {path}: {_image_size_said(path)}",
                         hint="remove or replace the file") from None
    if img is None:
        raise InputError(f"cannot decode image {path}",
                         hint="remove or replace the broken file")
    if img.dtype not in (np.uint8, np.uint16):
        img = np.clip(np.rint(np.nan_to_num(img.astype(np.float64)) * 65535.0), 0,
                      65535).astype(np.uint16)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_image_rgb8(path: Path) -> np.ndarray:
    """:func:`read_image` as uint8 (a 16-bit file rounded to 8 bits)."""
    return to_8bit(read_image(path))


ANIMATED_SUFFIXES = frozenset((".png", ".apng", ".webp"))  # GIF is read as a video


def animation_frames(path: Path) -> int:
    """How many frames an image file holds: more than 1 for an animated PNG or WebP
    (Pillow reads the header), 1 for a still or a file Pillow cannot open."""
    if path.suffix.lower() not in ANIMATED_SUFFIXES:
        return 1
    from PIL import Image

    try:
        with Image.open(path) as img:
            return int(getattr(img, "n_frames", 1))
    except Exception:  # noqa: BLE001 - not Pillow's to judge: OpenCV reads (or refuses) it
        return 1


class AnimatedImageClip(Clip):
    """An animated PNG or WebP as a clip of all its frames (Pillow decodes them), timed
    by each frame's own duration."""

    def __init__(self, name: str, path: Path, fps: float | None) -> None:
        from PIL import Image

        self.path = path
        with self._reading(), Image.open(path) as img:
            count = int(img.n_frames)
            w, h = img.size
            durations = []
            for k in range(count):
                img.seek(k)
                durations.append(float(img.info.get("duration") or 0))
        known = all(d > 0 for d in durations)
        rate = fps or (1000.0 * count / sum(durations) if known else None)
        # Frame times in frame periods, from the durations (uneven ones weigh as such).
        self._times = None
        if known and fps is None:
            import itertools

            period = sum(durations) / count
            starts = itertools.accumulate(durations[:-1], initial=0.0)
            self._times = [start / period for start in starts]
        self.info = ClipInfo(name, "frames", w, h, rate, count, True)

    def frame_time(self, index):
        return self._times[index] if self._times is not None else None

    def frames(self, first=0, end=None, stride=1, reuse_buffer=False, any_channel_order=False):
        from PIL import Image

        stop = self.info.frame_count if end is None else min(end, self.info.frame_count)
        with self._reading(), Image.open(self.path) as img:
            for index in range(first, stop, stride):
                img.seek(index)
                yield index, np.asarray(img.convert("RGB"))

    @contextlib.contextmanager
    def _reading(self):
        """Pillow's errors on a damaged file (OSError "Truncated File Read", EOFError,
        SyntaxError, ...) as the InputError a damaged clip gets."""
        try:
            yield
        except (OSError, EOFError, SyntaxError, ValueError) as err:
            raise InputError(f"cannot decode {self.path.name}: {err} (is the file truncated?)",
                             hint="re-copy or re-export it") from None


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


READ_AHEAD = 3  # frames of a folder decoded ahead of the one being rendered


class FrameFolderClip(Clip):
    """A sequence of image files, already sorted in frame order."""

    def __init__(self, name: str, files: Sequence[Path], fps: float | None,
                 raw: RawOptions | None = None) -> None:
        if not files:
            raise InputError(f"no image files in {name}",
                             hint="expected .jpg/.png/.tif frames, or pass a video file")
        from lexp.media import camera_files

        self.files = list(files)
        # RAW frames: linear light, every one developed with the first's white balance.
        raws = sum(camera_files.is_raw(f) for f in self.files)
        if raws not in (0, len(self.files)):
            raise InputError(f"{name} mixes RAW files with other images",
                             hint="render the RAW frames on their own (a RAW+JPEG pair "
                                  "shares its name, and then the RAW is used)")
        raw = raw or RawOptions()
        self.white_balance = camera_files.raw_white_balance(self.files[0], raw.white_balance) \
            if raws else None
        self.raw_draft = raw.draft
        # The first frame's camera and lens (for the result's EXIF); frames from another
        # camera are another clip (they would differ in colour, framing and time).
        self.camera = camera_files.camera_of(self.files[0])
        self._model = self.camera.get("model")
        self._first = self._read(self.files[0])
        h, w = self._first.shape[:2]
        self.info = ClipInfo(name, "frames", w, h, fps, len(self.files), True,
                             transfer_tag="linear" if raws else None,
                             bit_depth=bit_depth_of(self._first))
        self._times: list[float] | None = None
        self._timing_checked = False
        self._warnings: list[str] = []
        self.notes: list[str] = []  # from resolving the folder (ClipSource.notes)

    def _read(self, path: Path) -> np.ndarray:
        """One frame; an animation among stills is refused (its frames are a clip)."""
        if len(self.files) > 1 and (count := animation_frames(path)) > 1:
            raise InputError(f"{path.name} is an animation of {count} frames, among "
                             f"{len(self.files)} image files",
                             hint=f"render it on its own (lexp render {path}), or move it "
                                  "out of the frames")
        if self._model is not None and path != self.files[0]:
            from lexp.media.camera_files import camera_of

            model = camera_of(path, lens=False).get("model")
            if model is not None and model != self._model:
                raise InputError(f"{path.name} was shot with a {model}, the clip's first "
                                 f"frame ({self.files[0].name}) with a {self._model}",
                                 hint="render each camera's frames as a clip of its own")
        if self.white_balance is not None:
            from lexp.media.camera_files import read_raw

            return read_raw(path, self.white_balance, half_size=self.raw_draft)
        return read_image(path)

    def frame_time(self, index):
        if not self._timing_checked:  # read every file's EXIF once, on first use
            from lexp import timing

            self._timing_checked = True
            from lexp.media.camera_files import capture_time

            self._times, why = timing.folder_times(self.files, capture_time)
            if why:
                self._warnings.append(f"{self.info.name}: {why}; frames weigh equally")
        return self._times[index] if self._times is not None else None

    def warnings(self):
        return self.notes + self._warnings

    def _decoded(self, indices: range):
        """(index, frame) in order, decoded ahead on a few threads while the render works
        on the one before (OpenCV's and libraw's decoders release the GIL; libraw
        demosaics on every core itself): at most READ_AHEAD frames held."""
        from concurrent.futures import ThreadPoolExecutor

        if len(indices) < 3 or READ_AHEAD < 2:
            for index in indices:
                yield index, self._first if index == 0 else self._read(self.files[index])
            return
        pool = ThreadPoolExecutor(READ_AHEAD - 1, thread_name_prefix="lexp-decode")
        try:
            pending = []
            for index in indices:
                pending.append((index, pool.submit(
                    lambda i: self._first if i == 0 else self._read(self.files[i]), index)))
                if len(pending) >= READ_AHEAD:
                    done, future = pending.pop(0)
                    yield done, future.result()
            for done, future in pending:
                yield done, future.result()
        finally:  # an error or Ctrl-C: drop what was read ahead, wait for none of it
            pool.shutdown(wait=False, cancel_futures=True)

    def frames(self, first=0, end=None, stride=1, reuse_buffer=False, any_channel_order=False):
        stop = len(self.files) if end is None else min(end, len(self.files))
        for index, frame in self._decoded(range(first, stop, stride)):
            yield index, self._conform(frame, f"frame {index} ({self.files[index].name})")

    def decode(self, path: Path) -> np.ndarray:
        """One more file decoded as this clip's frames are (a folder that grows while it
        is followed): RAW with the first frame's white balance, refused when another
        camera shot it or it has another size, at the first frame's depth."""
        frame = self._first if path == self.files[0] else self._read(path)
        return self._conform(frame, path.name)

    def _conform(self, frame: np.ndarray, said: str) -> np.ndarray:
        """A decoded frame at the clip's depth (the first frame's), checked for its size."""
        if frame.dtype != self._first.dtype:
            frame = to_8bit(frame) if self.info.bit_depth == 8 else \
                frame.astype(np.uint16) * np.uint16(257)
        if frame.shape[:2] != (self.info.height, self.info.width):
            h, w = frame.shape[:2]
            raise InputError(
                f"{said} is {w}x{h}, but the clip's frames are "
                f"{self.info.width}x{self.info.height}",
                hint="all frames of a clip must have one size: resize or remove the odd ones",
            )
        return frame
