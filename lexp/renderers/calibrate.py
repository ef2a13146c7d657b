"""Calibrating night frames as astrophotographers do, before anything else sees them:
dark frames subtracted, a flat field divided, hot pixels repaired, and frames that would
spoil the blend left out.

- **Master dark** (``--dark FILES``): the per-pixel mean of dark frames (lens capped,
  the lights' exposure and temperature) without each pixel's brightest and darkest
  values (from 3 darks on; with 3, the median), in linear light: the sensor's thermal
  signal and its hot pixels, subtracted from every frame. Leaving the extremes out keeps
  a cosmic-ray hit in one dark from becoming a dark spot in every light, as a median
  would, without biasing the noise (leaving out the brightest alone would), and streams:
  three arrays whatever the number of darks, where a median needs them all at once (30
  darks of 24 MP: 4.3 GB even as 16-bit codes).
- **Master flat** (``--flat FILES``): the per-pixel mean of flat frames (an evenly lit
  white field through the same lens and aperture), in linear light, each channel divided
  by its own mean in the frame's centre: the vignetting and the dust shadows divided out
  of every frame, the centre's light kept.
- **Hot pixels** (``--hot-pixels``): single pixels that stand far above all 8 of their
  neighbours (by HOT_EXCESS of white) in at least HOT_SHARE of the frames surveyed (up to
  HOT_SURVEY, spread over the clip) — the sky moves, a hot pixel does not — or, with a
  master dark, the dark's own outliers. Each is replaced in every frame by the median of
  its 3×3 neighbourhood, before alignment or a lighten blend can turn it into a streak.
- **Rejected frames** (``--reject bright,blur``): ``bright``, a frame whose background
  (its median light: a plane or a meteor does not move it, a lit cloud, headlights or dawn
  do) is more than BRIGHT_FACTOR times the median frame's;
  ``blur``, a frame whose sharpness (the variance of its Laplacian) is under BLUR_FACTOR
  times the median frame's (a knocked tripod, dew). Both are judged on 640-px copies of
  every frame, in one survey before the render. ``streaks``: not a frame left out but
  its plane's or satellite's streak, a straight line only that frame has, masked
  (:func:`mask_streaks`), so a lighten blend keeps the star trails and not the planes.

The calibrated frames are 16-bit codes in the clip's own transfer (a JPEG's sRGB, a RAW's
linear light), so every renderer reads them as it reads any frame. Masters are cached
(``masters/`` in lexp's cache) under the names, sizes and times of their files and the
settings that develop them, so a second render with the same darks reads one file (the
MASTERS_KEPT used last are kept).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from lexp import colour, stills
from lexp.config import RenderConfig
from lexp.media import Clip
from lexp.renderers import blemishes
from lexp.renderers.blemishes import brightest_channel, judge, mask_streaks, measures
from lexp.renderers.masters import (
    Masters,
    apply_masters,
    exposures_differ,
    master,
    normalised_flat,
)


@dataclass
class CalibrationStats:
    """What calibration did (``--json`` details ``calibration``)."""

    dark_frames: int = 0
    flat_frames: int = 0
    hot_pixels: int = 0
    rejected: list[dict] = field(default_factory=list)  # {"frame", "name", "why"}
    masked: list[dict] = field(default_factory=list)  # streaks masked: the same keys

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v}


def wanted(config: RenderConfig) -> bool:
    return bool(config.dark or config.flat or config.hot_pixels or config.reject)


def calibrated(clip: Clip, config: RenderConfig, source, reopen) -> CalibratedClip:
    """``clip`` with ``config``'s calibration applied to its frames (``config``'s
    transfer resolved for it); ``reopen()``: the clip opened again, for the survey of
    hot pixels and rejections (a context manager, or None where it cannot be)."""
    from lexp.renderers.dispatch import for_clip

    transfer = for_clip(config, clip.info).transfer
    files = getattr(clip, "files", None)
    masters, stats = build_masters(config, transfer, clip.info, files)
    notes = exposures_differ(config.dark, files) if config.dark else []
    rejected: dict[int, str] = {}
    if config.hot_pixels or set(config.reject) - {"streaks"}:
        found = blemishes.survey(clip, config, transfer, masters, reopen)
        if config.hot_pixels:
            masters.hot = found.hot_pixels(masters.dark)
            stats.hot_pixels = len(masters.hot[0])
        # (The rules measure each frame against the median frame, so they can never
        # leave out every frame: at most just under half.)
        rejected = found.rejected(config.reject)
        stats.rejected = [{"frame": i, "name": found.names.get(i), "why": why}
                          for i, why in sorted(rejected.items())]
    names = {i: path.name for i, path in enumerate(files)} if files is not None else {}
    calibrated_clip = CalibratedClip(clip, masters, transfer, rejected, stats,
                                     streaks="streaks" in config.reject, names=names)
    calibrated_clip.notes = notes
    return calibrated_clip


def build_masters(config: RenderConfig, transfer: str, lights,
                  light_files=None) -> tuple[Masters, CalibrationStats]:
    """The master dark and flat ``config`` asks for (:func:`masters.master`), for lights
    like ``lights`` (ClipInfo; ``light_files``: theirs, which a master may not share),
    and the stats that count their frames."""
    stats, made = CalibrationStats(), Masters()
    if config.dark:
        made.dark, stats.dark_frames = master("dark", config.dark, config, transfer, lights,
                                              light_files)
    if config.flat:
        flat, stats.flat_frames = master("flat", config.flat, config, transfer, lights,
                                         light_files)
        made.flat = normalised_flat(flat, config.flat)
    return made, stats


def to_codes(linear: np.ndarray, transfer: str) -> np.ndarray:
    """Calibrated linear light back to 16-bit codes in the clip's transfer, as every
    renderer reads frames."""
    return stills.quantise(colour.encode(linear, transfer), 16)


def _streak_record(frame: int | None, name: str | None, length: int) -> dict:
    return {"frame": frame, "name": name,
            "why": f"a straight streak {length} px long in this frame only (a plane or a "
                   "satellite): its pixels given the frames either side's light"}


class CalibratedClip(Clip):
    """A clip whose frames come calibrated (the module docstring): uint16 H×W×3 codes in
    the clip's transfer; rejected frames are not yielded."""

    def __init__(self, clip: Clip, masters: Masters, transfer: str, rejected: dict[int, str],
                 stats: CalibrationStats, streaks: bool = False,
                 names: dict[int, str] | None = None) -> None:
        self.clip, self.masters, self.transfer = clip, masters, transfer
        self.rejected, self.stats = rejected, stats
        self.streaks = streaks  # mask one-frame streaks (planes, satellites)
        self.names = names or {}  # frame files' names by index, for the record
        self.notes: list[str] = []  # calibration's own warnings
        count = clip.info.frame_count
        self.info = dataclasses.replace(
            clip.info, bit_depth=16,
            frame_count=None if count is None else count - len(rejected))
        self.camera = getattr(clip, "camera", None)
        self._lut = colour.decode_lut(transfer, clip.info.bit_depth)

    def frames(self, first=0, end=None, stride=1, reuse_buffer=False, any_channel_order=False):
        linear = ((index, apply_masters(self._lut[frame], self.masters))
                  for index, frame in self.clip.frames(first, end, stride)
                  if index not in self.rejected)
        if self.streaks:
            linear = self._without_streaks(linear)
        for index, light in linear:
            yield index, to_codes(light, self.transfer)

    def _without_streaks(self, frames):
        """(index, linear) with each frame's one-frame streaks masked (:func:`mask_streaks`,
        against the frames before and after it: the first and last against their one
        neighbour), a frame behind the reading."""
        def with_grey(item):
            return None if item is None else (*item, brightest_channel(item[1]))

        before, current = None, with_grey(next(frames, None))
        while current is not None:
            after = with_grey(next(frames, None))
            sides = [item for item in (before, after) if item is not None]
            greys = (current[2], [item[2] for item in sides])
            if sides and (length := mask_streaks(current[1], [item[1] for item in sides],
                                                 greys)):
                self.stats.masked.append(_streak_record(current[0],
                                                        self.names.get(current[0]), length))
            yield current[:2]
            before, current = current, after

    def frame_time(self, index):
        return self.clip.frame_time(index)

    def warnings(self):
        return self.clip.warnings() + self.notes

    def close(self) -> None:
        self.clip.close()


class LiveCalibration:
    """Calibration of frames one at a time as they arrive (``lexp render --follow``):
    the masters as for a clip (hot pixels from the dark's outliers: no clip to survey),
    ``bright`` and ``blur`` judged against the median of the frames kept so far (from
    the third on: a night's first frames set what is usual, and dawn, arriving slowly,
    is left out once it has brightened by half), and ``streaks`` masked a frame behind,
    against the frames either side."""

    KNOWN = 3  # frames kept before bright and blur are judged

    def __init__(self, config: RenderConfig, transfer: str, lights) -> None:
        self.transfer, self.rules = transfer, tuple(config.reject)
        self.masters, self.stats = build_masters(config, transfer, lights)
        if config.hot_pixels and self.masters.dark is not None:
            self.masters.hot = blemishes.Survey().hot_pixels(self.masters.dark)
            self.stats.hot_pixels = len(self.masters.hot[0])
        self.kept: list[tuple[float, float]] = []  # measures of the frames kept
        self.held = None  # (name, linear, grey): waiting for the next frame (streaks)
        self.before = None  # (linear, grey) of the frame stacked last (streaks)
        self._luts: dict[int, np.ndarray] = {}

    def push(self, name: str, frame: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """A frame arrives (uint8/uint16 codes): the frames now ready to stack, as uint16
        codes in the transfer (none when it is rejected or held for the next)."""
        bits = 8 if frame.dtype == np.uint8 else 16
        lut = self._luts.setdefault(bits, colour.decode_lut(self.transfer, bits))
        linear = apply_masters(lut[frame], self.masters)
        if {"bright", "blur"} & set(self.rules):
            measured = measures(linear)
            if len(self.kept) >= self.KNOWN:
                typical = tuple(float(np.median(v)) for v in zip(*self.kept, strict=True))
                if why := judge(self.rules, measured, typical):
                    self.stats.rejected.append({"frame": None, "name": name, "why": why})
                    return []
            self.kept.append(measured)
        if "streaks" not in self.rules:
            return [(name, to_codes(linear, self.transfer))]
        current = (name, linear, brightest_channel(linear))
        ready = self._release(after=current) if self.held is not None else []
        self.held = current
        return ready

    def flush(self) -> list[tuple[str, np.ndarray]]:
        """The source ended: the frame held for streaks, against the one before it."""
        return self._release(after=None) if self.held is not None else []

    def _release(self, after) -> list[tuple[str, np.ndarray]]:
        name, linear, grey = self.held
        sides = [side for side in (self.before, after and after[1:]) if side is not None]
        if sides and (length := mask_streaks(linear, [s[0] for s in sides],
                                             (grey, [s[1] for s in sides]))):
            self.stats.masked.append(_streak_record(None, name, length))
        self.before, self.held = (linear, grey), None
        return [(name, to_codes(linear, self.transfer))]

    def state(self) -> dict:
        """What resuming needs: the measures of the frames kept, and the record."""
        return {"kept": self.kept, "rejected": self.stats.rejected,
                "masked": self.stats.masked}

    def restore(self, state: dict) -> None:
        self.kept = [tuple(m) for m in state.get("kept", [])]
        self.stats.rejected = list(state.get("rejected", []))
        self.stats.masked = list(state.get("masked", []))
