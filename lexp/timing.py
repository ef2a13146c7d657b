"""When each frame was taken, and how much of the exposure it stands for.

A time-lapse is not an even sampling of time: cameras skip frames, intervalometers
drift, phones record variable frame rates. A long exposure is an integral over time,
so every frame should weigh the time it covers, not one unit each.

Units
-----
Times are in **frame periods** from the clip's start (frame i of an even clip is at i):

- video files: the decoder's presentation time × the clip's frame rate;
- image folders: EXIF ``DateTimeOriginal`` (+ ``SubSecTimeOriginal``) divided by the
  median interval between consecutive frames, so a shot every 5 s is one period;
- streams on stdin carry none here: frames are evenly spaced.

Weights
-------
Each frame stands for the span of time nearer to it than to its neighbours (a Voronoi
cell; the midpoint rule): ``(t[k+1] − t[k−1]) / 2``, and the first and last frames reach
half a nominal gap beyond themselves. On an even clip every weight is the same, so the
result is exactly the plain mean; where frames are missing, their neighbours cover the
hole, which is exact for anything that changes linearly in time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 36867
_SUBSEC_ORIGINAL = 37521
_DATETIME = 306  # the IFD0 DateTime, a fallback some tools write instead


def exif_time(path: Path) -> float | None:
    """Seconds since the epoch (naive local time) when ``path`` was shot, from EXIF;
    None when the file carries no parsable capture time."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            exif = image.getexif()
            sub = exif.get_ifd(_EXIF_IFD)
            stamp = sub.get(_DATETIME_ORIGINAL) or exif.get(_DATETIME)
            fraction = sub.get(_SUBSEC_ORIGINAL)
    except (OSError, ValueError, SyntaxError):
        return None
    return parse_exif_time(stamp, fraction)


def parse_exif_time(stamp, fraction=None) -> float | None:
    """EXIF's 'YYYY:MM:DD HH:MM:SS' (and its sub-second digits) as seconds since the
    epoch (naive local time), or None."""
    if not stamp:
        return None
    try:
        seconds = datetime.strptime(str(stamp).strip("\x00 "), "%Y:%m:%d %H:%M:%S").timestamp()
    except ValueError:
        return None
    digits = str(fraction or "").strip("\x00 ")
    if digits.isdigit():
        seconds += int(digits) / 10 ** len(digits)
    return seconds


def folder_times(paths: Sequence[Path], time_of=exif_time
                 ) -> tuple[list[float] | None, str | None]:
    """Capture times of image frames, in frame periods (see the module docstring);
    ``time_of(path)``: a frame's capture time in seconds, or None.

    Returns (times, None), or (None, why) when they cannot be used: some frames lack
    one, or they do not increase in frame order (EXIF's whole seconds cannot order a
    burst). Frames without any EXIF time give (None, None): nothing worth a warning.
    """
    stamps = [time_of(p) for p in paths]
    if all(s is None for s in stamps) or len(paths) < 2:
        return None, None
    if any(s is None for s in stamps):
        missing = sum(s is None for s in stamps)
        return None, f"{missing} of {len(stamps)} frames have no EXIF capture time"
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    if min(gaps) <= 0:
        return None, "the EXIF capture times do not increase in frame order"
    period = sorted(gaps)[len(gaps) // 2]
    return [(s - stamps[0]) / period for s in stamps], None


class VoronoiWeights:
    """Streams frame times in, weights out, one frame late (a weight needs the next time).

    ``nominal``: the expected gap between frames, in periods (the window's stride); the
    first and last frames reach half of it beyond themselves.
    """

    def __init__(self, nominal: float = 1.0) -> None:
        self.nominal = nominal
        self.times: list[float] = []  # the last three times at most

    def add(self, time: float) -> float | None:
        """Record the next frame's time; returns the weight of the frame before it
        (None for the first frame)."""
        self.times = (self.times + [time])[-3:]
        if len(self.times) < 2:
            return None
        before = self.times[-3] if len(self.times) == 3 else self.times[-2] - self.nominal
        return (time - before) / 2

    def last(self) -> float:
        """The weight of the last frame added (call once, at the end)."""
        if len(self.times) < 2:
            return self.nominal
        return (self.times[-1] - self.times[-2]) / 2 + self.nominal / 2
