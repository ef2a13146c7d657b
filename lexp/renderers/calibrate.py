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
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lexp import colour
from lexp.config import RenderConfig
from lexp.errors import InputError, UsageError
from lexp.media import Clip

HOT_EXCESS = 0.05  # linear light above every neighbour: a hot pixel candidate in a frame
HOT_SHARE = 0.6  # of the surveyed frames in which a pixel must be a candidate
HOT_SURVEY = 16  # frames surveyed for hot pixels
DARK_HOT_SIGMA = 8.0  # a master dark's pixel this many robust sigmas above its median: hot
BRIGHT_FACTOR = 1.5  # --reject bright: background over this many times the median frame's
BLUR_FACTOR = 0.5  # --reject blur: sharpness under this share of the median frame's
SURVEY_WIDTH = 640


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


@dataclass
class Masters:
    dark: np.ndarray | None = None  # float32 H×W×3 linear light
    flat: np.ndarray | None = None  # float32 H×W×3, each channel's mean in the centre 1
    hot: tuple[np.ndarray, np.ndarray] | None = None  # (ys, xs) of hot pixels


def wanted(config: RenderConfig) -> bool:
    return bool(config.dark or config.flat or config.hot_pixels or config.reject)


def calibrated(clip: Clip, config: RenderConfig, source, reopen) -> CalibratedClip:
    """``clip`` with ``config``'s calibration applied to its frames (``config``'s
    transfer resolved for it); ``reopen()``: the clip opened again, for the survey of
    hot pixels and rejections (a context manager, or None where it cannot be)."""
    from lexp.renderers.dispatch import for_clip

    transfer = for_clip(config, clip.info).transfer
    stats = CalibrationStats()
    masters = Masters()
    info = clip.info
    notes: list[str] = []
    if config.dark:
        masters.dark, stats.dark_frames = master("dark", config.dark, config, transfer, info)
        notes += _exposures_differ(config.dark, getattr(clip, "files", None))
    if config.flat:
        flat, stats.flat_frames = master("flat", config.flat, config, transfer, info)
        masters.flat = normalised_flat(flat, config.flat)
    rejected: dict[int, str] = {}
    names: dict[int, str] = {}
    if config.hot_pixels or set(config.reject) - {"streaks"}:
        survey = _survey(clip, config, transfer, masters, reopen)
        if config.hot_pixels:
            masters.hot = survey.hot_pixels(masters.dark)
            stats.hot_pixels = len(masters.hot[0])
        # (The rules measure each frame against the median frame, so they can never
        # leave out every frame: at most just under half.)
        rejected = survey.rejected(config.reject)
        stats.rejected = [{"frame": i, "name": survey.names.get(i), "why": why}
                          for i, why in sorted(rejected.items())]
    files = getattr(clip, "files", None)
    if files is not None:
        names = {i: path.name for i, path in enumerate(files)}
    calibrated_clip = CalibratedClip(clip, masters, transfer, rejected, stats,
                                     streaks="streaks" in config.reject, names=names)
    calibrated_clip.notes = notes
    return calibrated_clip


def _exposures_differ(darks: tuple[str, ...], lights) -> list[str]:
    """A warning when the darks' exposure (EXIF) is not the lights' (by over 10 %): a
    dark's thermal signal grows with its exposure, but it also holds the bias, which
    does not, so it is subtracted as it is, not scaled."""
    from lexp.inputs import resolve_inputs
    from lexp.media.camera_files import exposure_time

    dark_files = [p for s in resolve_inputs(list(darks)) for p in s.paths]
    if not lights or not dark_files:
        return []
    dark_s, light_s = exposure_time(dark_files[0]), exposure_time(lights[0])
    if dark_s is None or light_s is None or abs(dark_s / light_s - 1) <= 0.1:
        return []
    return [f"the dark frames were exposed {dark_s:g} s, the lights {light_s:g} s: the "
            "dark is subtracted as it is, not scaled (its bias would scale with it); "
            "shoot darks as long as the lights"]


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
            yield index, np.rint(np.clip(colour.encode(light, self.transfer), 0, 1) * 65535.0
                                 ).astype(np.uint16)

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
                self.stats.masked.append({
                    "frame": current[0], "name": self.names.get(current[0]),
                    "why": f"a straight streak {length} px long in this frame only (a plane "
                           "or a satellite): its pixels given the frames either side's light"})
            yield current[:2]
            before, current = current, after

    def frame_time(self, index):
        return self.clip.frame_time(index)

    def warnings(self):
        return self.clip.warnings() + self.notes

    def close(self) -> None:
        self.clip.close()


STREAK_EXCESS = 0.02  # linear light over the neighbours' at least, for a streak's pixels
STREAK_LENGTH = 0.05  # a streak is a straight line this share of the frame's side at least
STREAK_MIN_PX = 30  # ... and this many pixels at least


def brightest_channel(light: np.ndarray) -> np.ndarray:
    """H×W: each pixel's brightest channel (elementwise on the three planes: numpy's
    reduce over a last axis of 3 is several times slower)."""
    return np.maximum(np.maximum(light[..., 0], light[..., 1]), light[..., 2])


def mask_streaks(light: np.ndarray, neighbours: list[np.ndarray],
                 greys: tuple[np.ndarray, list[np.ndarray]] | None = None) -> int:
    """Mask, in ``light`` (float32 H×W×3 linear, in place), the straight bright lines it
    alone has: pixels over the ``neighbours``' (the frames either side) brightest by
    STREAK_EXCESS or six times the noise, lying on a straight line at least STREAK_LENGTH
    of the frame's longer side (and STREAK_MIN_PX) long (OpenCV's probabilistic Hough
    transform). A star's trail in one frame is as long as the sky moves in one frame: a
    few pixels; a plane's or a satellite's crosses the frame. The masked pixels take the
    neighbours' light there. ``greys``: the frames' :func:`brightest_channel`, when they
    are known already. Returns the longest streak's length in pixels, 0 for none."""
    import cv2

    h, w = light.shape[:2]
    grey, others = greys if greys is not None else \
        (brightest_channel(light), [brightest_channel(n) for n in neighbours])
    excess = grey - (others[0] if len(others) == 1 else np.maximum(*others))
    sample = excess[::4, ::4]
    noise = 1.4826 * float(np.median(np.abs(sample - np.median(sample))))
    threshold = max(STREAK_EXCESS, 6 * noise)
    above = (excess > threshold).astype(np.uint8) * 255
    length = max(STREAK_MIN_PX, round(STREAK_LENGTH * max(h, w)))
    lines = cv2.HoughLinesP(above, 1, np.pi / 360, threshold=int(0.6 * length),
                            minLineLength=length, maxLineGap=3)
    if lines is None:
        return 0
    mask = np.zeros((h, w), np.uint8)
    longest = 0
    for x0, y0, x1, y1 in lines.reshape(-1, 4):
        cv2.line(mask, (int(x0), int(y0)), (int(x1), int(y1)), 255, 5)
        longest = max(longest, round(float(np.hypot(x1 - x0, y1 - y0))))
    masked = (mask > 0) & (excess > threshold / 3)  # the line and its glow, no more
    either_side = np.maximum.reduce([n[masked] for n in neighbours])
    light[masked] = np.minimum(light[masked], either_side)
    return longest


def apply_masters(linear: np.ndarray, masters: Masters) -> np.ndarray:
    """Linear light (float32 H×W×3, modified in place) minus the dark, over the flat,
    hot pixels repaired, nothing below 0."""
    if masters.dark is not None:
        linear -= masters.dark
        np.maximum(linear, 0, out=linear)
    if masters.flat is not None:
        linear /= masters.flat
    if masters.hot is not None and len(masters.hot[0]):
        import cv2

        ys, xs = masters.hot
        linear[ys, xs] = cv2.medianBlur(linear, 3)[ys, xs]
    return linear


# ---------------------------------------------------------------------- masters
def master(kind: str, names: tuple[str, ...], config: RenderConfig, transfer: str,
            lights) -> tuple[np.ndarray, int]:
    """The master dark (median) or flat (mean) of the frames ``names`` lists, in linear
    light, from lexp's cache when the same files made it before."""
    from lexp.inputs import resolve_inputs
    from lexp.media import open_clip

    try:
        sources = resolve_inputs(list(names))
    except InputError as err:
        raise InputError(f"--{kind}: {err.message}", hint=err.hint) from None
    files = [p for s in sources for p in s.paths]
    key = _master_key(kind, files, config, transfer)
    cached = _cache_file(key)
    if cached is not None and cached.exists():
        try:
            with np.load(cached, allow_pickle=False) as data:
                made, count = data["master"], int(data["count"])
            _check_size(kind, made.shape, lights, names)
            os.utime(cached)  # recently used: pruned last
            return made, count
        except (OSError, ValueError, KeyError):
            pass  # damaged: made again
    total = brightest = darkest = None
    count = 0
    for source in sources:
        try:
            with open_clip(source, config.fps, config.raw) as clip:
                _check_size(kind, (clip.info.height, clip.info.width), lights, names)
                lut = colour.decode_lut(transfer, clip.info.bit_depth)
                for _, frame in clip.frames():
                    light = lut[frame]
                    if total is None:
                        total = light.astype(np.float64)
                        brightest, darkest = light.copy(), light.copy()
                    else:
                        total += light
                        np.maximum(brightest, light, out=brightest)
                        np.minimum(darkest, light, out=darkest)
                    count += 1
        except InputError as err:
            raise InputError(f"--{kind}: {err.message}", hint=err.hint) from None
    if not count:
        raise InputError(f"--{kind}: no frames in {' '.join(names)}")
    if kind == "dark" and count >= 3:  # each pixel's extremes out: a cosmic ray with them
        total -= brightest
        total -= darkest
        made = total / (count - 2)
    else:
        made = total / count
    made = made.astype(np.float32)
    if cached is not None:
        _save_master(cached, made, count)
    return made, count


def _check_size(kind: str, shape, lights, names) -> None:
    h, w = shape[:2]
    if (h, w) != (lights.height, lights.width):
        raise UsageError(f"the {kind} frames ({' '.join(names)}) are {w}x{h}, the lights "
                         f"({lights.name}) {lights.width}x{lights.height}",
                         hint=f"shoot the {kind} frames with the same camera, size and "
                              "orientation as the lights")


def normalised_flat(flat: np.ndarray, names) -> np.ndarray:
    """Each channel over its own mean in the frame's centre (a fifth of each side: the
    flat's light may be tinted), so the centre keeps its light and the corners are lifted
    to it; a flat with dead (zero) pixels refused: dividing by them would make them
    infinite."""
    h, w = flat.shape[:2]
    centre = flat[2 * h // 5:3 * h // 5 + 1, 2 * w // 5:3 * w // 5 + 1]
    means = centre.reshape(-1, 3).mean(axis=0)
    if (means <= 0).any():
        raise InputError(f"the flat ({' '.join(names)}) is black in a channel",
                         hint="a flat is an evenly lit white field: check the files")
    normalised = flat / means
    dead = normalised.min(axis=2) < 0.02
    if dead.any():
        raise InputError(f"the flat ({' '.join(names)}) has {int(dead.sum())} pixels at "
                         "zero, which would divide into infinity",
                         hint="a flat is an evenly lit white field, bright everywhere: "
                              "shoot it again (not saturated, not black anywhere)")
    return normalised.astype(np.float32)


def _master_key(kind: str, files: list[Path], config: RenderConfig, transfer: str) -> str:
    described = []
    for path in files:
        stat = path.stat()
        described.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    text = json.dumps([kind, described, transfer, config.raw_draft, config.white_balance,
                       MASTER_VERSION])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _cache_file(key: str) -> Path | None:
    from lexp.paths import cache_dir

    try:
        folder = cache_dir() / "masters"
        folder.mkdir(parents=True, exist_ok=True)
    except (OSError, InputError, UsageError):
        return None  # no cache: the master is made each time
    return folder / f"{key}.npz"


def _save_master(path: Path, master: np.ndarray, count: int) -> None:
    import contextlib

    from lexp.errors import OutputError
    from lexp.paths import atomic_write

    with contextlib.suppress(OutputError), atomic_write(path) as file:
        np.savez(file, master=master, count=np.array(count))
    # A camera's master is its frame size in float32 (288 MB at 24 MP): keep the few
    # used last.
    kept = sorted(path.parent.glob("*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in kept[MASTERS_KEPT:]:
        with contextlib.suppress(OSError):
            old.unlink()


MASTER_VERSION = 2  # how a master is made (2: a dark's extremes left out); in its key
MASTERS_KEPT = 8  # masters kept in the cache, the most recently used


# ---------------------------------------------------------------------- the survey
class _Survey:
    """Every frame's brightness and sharpness (on a 640-px copy), and where single pixels
    stand above their neighbours in a sample of frames (at full size)."""

    def __init__(self) -> None:
        self.brightness: dict[int, float] = {}
        self.sharpness: dict[int, float] = {}
        self.names: dict[int, str] = {}
        self.candidates: np.ndarray | None = None  # per pixel: frames it stood out in
        self.sampled = 0

    def hot_pixels(self, dark: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        hot = self.candidates >= max(1, HOT_SHARE * self.sampled) if self.sampled else None
        if dark is not None:  # the master dark's outliers too
            grey = dark.max(axis=2)
            median = float(np.median(grey))
            sigma = 1.4826 * float(np.median(np.abs(grey - median))) + 1e-6
            in_dark = grey > median + DARK_HOT_SIGMA * sigma
            hot = in_dark if hot is None else hot | in_dark
        if hot is None:
            return np.empty(0, int), np.empty(0, int)
        return np.nonzero(hot)

    def rejected(self, rules: tuple[str, ...]) -> dict[int, str]:
        typical = (float(np.median(list(self.brightness.values()))),
                   float(np.median(list(self.sharpness.values()))))
        out = {index: judge(rules, (self.brightness[index], self.sharpness[index]), typical)
               for index in self.brightness}
        return {index: why for index, why in out.items() if why}


def measures(linear: np.ndarray) -> tuple[float, float]:
    """A frame's (background, sharpness) on its 640-px copy: the median light, and the
    variance of the Laplacian of its grey."""
    import cv2

    grey = _small(linear).mean(axis=2)
    return float(np.median(grey)), float(cv2.Laplacian(grey, cv2.CV_32F).var())


def judge(rules, frame: tuple[float, float], typical: tuple[float, float]) -> str | None:
    """Why ``--reject``'s ``rules`` leave out a frame of these :func:`measures`, against
    the typical frame's (the median frame's), or None."""
    (background, sharpness), (usual_background, usual_sharpness) = frame, typical
    if "bright" in rules and usual_background > 0 and \
            background > BRIGHT_FACTOR * usual_background:
        return f"bright: its background {background / usual_background:.1f}× the median " \
               f"frame's (over {BRIGHT_FACTOR}×)"
    if "blur" in rules and usual_sharpness > 0 and sharpness < BLUR_FACTOR * usual_sharpness:
        return f"blur: {sharpness / usual_sharpness:.2f}× the median frame's sharpness " \
               f"(under {BLUR_FACTOR}×)"
    return None


def _survey(clip: Clip, config: RenderConfig, transfer: str, masters: Masters,
            reopen) -> _Survey:
    opened = reopen()
    if opened is None:
        raise UsageError("--hot-pixels and --reject read the clip twice, and a stream on "
                         "stdin cannot be", hint="save the stream to a file first")
    survey = _Survey()
    count = clip.info.frame_count or 0
    every = max(1, count // HOT_SURVEY) if count else 1
    files = getattr(clip, "files", None)
    with opened as again:
        lut = colour.decode_lut(transfer, again.info.bit_depth)
        for index, frame in again.frames():
            linear = apply_masters(lut[frame], Masters(masters.dark, masters.flat))
            survey.brightness[index], survey.sharpness[index] = measures(linear)
            if files is not None:
                survey.names[index] = files[index].name
            if config.hot_pixels and index % every == 0 and survey.sampled < HOT_SURVEY:
                stands_out = _stands_out(linear)
                survey.candidates = stands_out.astype(np.uint16) if survey.candidates is None \
                    else survey.candidates + stands_out
                survey.sampled += 1
    return survey


def _small(linear: np.ndarray) -> np.ndarray:
    import cv2

    h, w = linear.shape[:2]
    if w <= SURVEY_WIDTH:
        return linear
    return cv2.resize(linear, (SURVEY_WIDTH, max(1, round(h * SURVEY_WIDTH / w))),
                      interpolation=cv2.INTER_AREA)


def _stands_out(linear: np.ndarray) -> np.ndarray:
    """H×W bool: pixels brighter than every one of their 8 neighbours by HOT_EXCESS, in
    some channel (a hot pixel is often one colour of the mosaic)."""
    import cv2

    kernel = np.ones((3, 3), np.uint8)
    kernel[1, 1] = 0
    out = np.zeros(linear.shape[:2], bool)
    for channel in range(3):
        plane = np.ascontiguousarray(linear[..., channel])
        neighbours = cv2.dilate(plane, kernel)  # the brightest of the 8 around each
        out |= plane > neighbours + HOT_EXCESS
    return out
