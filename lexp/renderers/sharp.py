"""Keep-sharp compositing: one sharp frame where the scene holds still, the long
exposure everywhere else (Tabellion et al., SIGGRAPH 2023, the Pixel's Motion Mode).

A long exposure softens everything a little: residual hand shake, a person who sways,
sensor noise averaged into smoothness. Photographers want the rock sharp and the water
silky. So:

- a **motion map** measures how far each pixel moves per frame period, averaged over the
  clip (DIS optical flow at half resolution, fast preset: a mask needs no fine flow);
- flow cannot see motion that changes texture instead of moving it (white water,
  sparkle, leaves in the wind), so a pixel is also checked against the result: the
  sharp frame must already look like the long exposure there (local RMS difference
  under 2 code values), since the blur is exactly what moved;
- the **still mask** is 1 where both hold (motion below ``below`` px, difference below
  2 codes), 0 at twice either, a ramp between; it is eroded and then feathered
  (Gaussian) by ``feather`` px so the sharp frame never reaches into moving things and
  leaves no seam;
- a **user mask** (an image: white = sharp) adds to it (the larger of the two wins);
- the result is ``mask · sharp + (1 − mask) · long exposure``, in linear light.

The **rear-curtain** look is the flash photographer's: a long exposure and a flash at
its very end, which freezes the subject where it ended up. The last frame is the flash:
it is blended in at half strength everywhere (a sharp, slightly transparent subject at
the head of its own trail), and fully where the scene is still.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lexp.errors import InputError, UsageError

MOTION_SCALE = 0.5  # the motion map is measured at half resolution
UNCHANGED_CODES = 2.0  # 8-bit code values: a sharp frame this close to the blur is still
CHANGE_SIGMA = 4.0  # pixels: the neighbourhood over which that difference is measured
REAR_CURTAIN_FLASH = 0.5  # the flash frame's weight over the whole picture


class MotionMeter:
    """Mean flow magnitude per frame period at each pixel, over a stream of frames."""

    def __init__(self) -> None:
        from lexp.flow import DISFlow

        self.flow = DISFlow("fast", scale=MOTION_SCALE)
        self.total: np.ndarray | None = None
        self.periods = 0.0
        self.previous: tuple[float, np.ndarray] | None = None

    def add(self, time: float, frame: np.ndarray) -> None:
        """``time`` in frame periods; ``frame`` uint8 H×W×3."""
        if self.previous is not None:
            start, earlier = self.previous
            if frame.shape == earlier.shape and time > start:
                fx, fy = self.flow.pair(earlier, frame)
                magnitude = np.sqrt(fx * fx + fy * fy)
                self.total = magnitude if self.total is None else self.total + magnitude
                self.periods += time - start
        self.previous = (time, frame.copy())

    def per_period(self, shape: tuple[int, int]) -> np.ndarray:
        """float32 H×W: mean motion in pixels per frame period (zeros for one frame)."""
        if self.total is None:
            return np.zeros(shape, np.float32)
        return (self.total / self.periods).astype(np.float32)


def still_mask(motion: np.ndarray, below: float) -> np.ndarray:
    """float32 H×W in [0, 1]: 1 where ``motion`` (px/period) is under ``below``, 0 above
    twice that, a ramp between."""
    if below <= 0:
        return np.zeros(motion.shape, np.float32)
    return np.clip((2 * below - motion) / below, 0, 1).astype(np.float32)


def unchanged_mask(sharp: np.ndarray, blurred: np.ndarray, transfer: str) -> np.ndarray:
    """float32 H×W in [0, 1]: 1 where the sharp frame already looks like the long
    exposure (local RMS difference under ``UNCHANGED_CODES`` code values), 0 at twice
    that. Flow misses motion that changes texture rather than moving it (white water,
    sparkle, fluttering leaves); this sees it, since the blur is what moved."""
    import cv2

    from lexp import colour

    d = colour.encode(sharp, transfer) - colour.encode(blurred, transfer)
    rms = np.sqrt(cv2.GaussianBlur((d * d).mean(axis=2), (0, 0), CHANGE_SIGMA)) * 255
    return np.clip((2 * UNCHANGED_CODES - rms) / UNCHANGED_CODES, 0, 1).astype(np.float32)


AGREES_SPREAD = 2.5  # --keep-sharp median: "the same" up to this many times the typical gap


def agrees_mask(render: np.ndarray, median: np.ndarray) -> np.ndarray:
    """float32 H×W in [0, 1], for ``--keep-sharp median``: 1 where the render differs
    from the frames' median by no more than AGREES_SPREAD times the typical difference
    over the frame, 0 at twice that. Most of a picture only holds noise between the two
    (a lighten blend keeps each pixel's brightest noise, a mean its average), which sets
    the typical gap; a trail, a passing light or moving water stands far above it, in
    light, however small it is (a star trail of one pixel, which optical flow does not
    see)."""
    gap = np.abs(render - median).max(axis=2)
    typical = float(np.median(gap[::2, ::2])) + 1e-6
    limit = AGREES_SPREAD * typical
    return np.clip((2 * limit - gap) / limit, 0, 1).astype(np.float32)


def feathered(mask: np.ndarray, feather: float) -> np.ndarray:
    """Erode a [0, 1] mask by ``feather`` px, then blur it as much: the sharp frame
    never reaches into moving things, and leaves no seam."""
    import cv2

    radius = max(1, round(feather))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.GaussianBlur(cv2.erode(mask, kernel), (0, 0), max(0.5, feather / 2))


def user_mask(path: str, height: int, width: int) -> np.ndarray:
    """A mask image (white = sharp frame) as float32 H×W in [0, 1], resized to the
    frame when it has the frame's shape at another size."""
    import cv2

    from lexp.media import read_image_rgb8

    file = Path(path)
    if not file.is_file():
        raise UsageError(f"--sharp-mask {path}: no such file")
    try:
        grey = read_image_rgb8(file).mean(axis=2).astype(np.float32) / 255.0
    except InputError as err:
        raise UsageError(f"--sharp-mask {path}: {err.message}",
                         hint="give a black-and-white image the size of the frames") from None
    h, w = grey.shape
    if abs(w / h - width / height) > 0.01:
        raise InputError(f"--sharp-mask is {w}×{h}, the frames are {width}×{height}",
                         hint="draw the mask on a frame of the clip (same aspect ratio)")
    if (h, w) != (height, width):
        grey = cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA)
    return grey


def composite(blurred: np.ndarray, sharp: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """mask · sharp + (1 − mask) · blurred: float32 H×W×3 linear."""
    return blurred + mask[..., None] * (sharp - blurred)


def upsample(motion: np.ndarray, height: int, width: int) -> np.ndarray:
    import cv2

    if motion.shape == (height, width):
        return motion
    return cv2.resize(motion, (width, height), interpolation=cv2.INTER_LINEAR)
