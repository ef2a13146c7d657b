"""Still images: one file as an RGB frame, and a folder (or list) of them as a clip."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lexp.errors import InputError
from lexp.media.clip import Clip, ClipInfo


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
