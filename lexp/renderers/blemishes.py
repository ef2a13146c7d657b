"""What spoils a night's frames, found: hot pixels (from a survey of the clip's frames or
a dark's outliers), planes' and satellites' streaks, and frames to leave out as too
bright or blurred (:mod:`lexp.renderers.calibrate` says each rule)."""

from __future__ import annotations

import numpy as np

from lexp import colour
from lexp.config import RenderConfig
from lexp.errors import UsageError
from lexp.media import Clip
from lexp.renderers.masters import Masters, apply_masters

HOT_EXCESS = 0.05  # linear light above every neighbour: a hot pixel candidate in a frame
HOT_SHARE = 0.6  # of the surveyed frames in which a pixel must be a candidate
HOT_SURVEY = 16  # frames surveyed for hot pixels
DARK_HOT_SIGMA = 8.0  # a master dark's pixel this many robust sigmas above its median: hot
BRIGHT_FACTOR = 1.5  # --reject bright: background over this many times the median frame's
BLUR_FACTOR = 0.5  # --reject blur: sharpness under this share of the median frame's
SURVEY_WIDTH = 640


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


class Survey:
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


def survey(clip: Clip, config: RenderConfig, transfer: str, masters: Masters,
            reopen) -> Survey:
    opened = reopen()
    if opened is None:
        raise UsageError("--hot-pixels and --reject read the clip twice, and a stream on "
                         "stdin cannot be", hint="save the stream to a file first")
    found = Survey()
    count = clip.info.frame_count or 0
    every = max(1, count // HOT_SURVEY) if count else 1
    files = getattr(clip, "files", None)
    with opened as again:
        lut = colour.decode_lut(transfer, again.info.bit_depth)
        for index, frame in again.frames():
            linear = apply_masters(lut[frame], Masters(masters.dark, masters.flat))
            found.brightness[index], found.sharpness[index] = measures(linear)
            if files is not None:
                found.names[index] = files[index].name
            if config.hot_pixels and index % every == 0 and found.sampled < HOT_SURVEY:
                stands_out = _stands_out(linear)
                found.candidates = stands_out.astype(np.uint16) if found.candidates is None \
                    else found.candidates + stands_out
                found.sampled += 1
    return found


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
