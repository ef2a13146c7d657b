"""Looking images up along flows: the pixel grid, bilinear sampling, and how well two
images agree locally. Shared by the flow render's interpolation (:mod:`lexp.renderers.flow`)
and its extrapolation (:mod:`lexp.renderers.extrapolate`).
"""

from __future__ import annotations

import functools

import numpy as np

SAMPLE_STEP_PX = 1.0  # at most this far between samples along a trail (pixels)
ERROR_BLUR_SIGMA = 3.0  # pixels: the neighbourhood over which warps are judged
# How far that blur reaches: cv2.GaussianBlur with ksize (0, 0) on float images takes
# 2·round(4σ) + 1 taps (25 at σ = 3).
ERROR_BLUR_RADIUS = round(4 * ERROR_BLUR_SIGMA)


@functools.lru_cache(maxsize=16)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel x and y coordinates, float32 H×W each (meshgrid of aranges: 30× faster than
    np.mgrid's int64 grid cast to float), read-only: made once per size (an interval's
    instants, boxes and tiles ask for the same ones again and again)."""
    grid = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    for axis in grid:
        axis.setflags(write=False)
    return grid[0], grid[1]


_CHANNEL_MEAN = np.full((1, 3), 1 / 3, np.float32)


def _local_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Gaussian-blurred mean squared difference of two H×W×3 images: H×W float32."""
    import cv2

    d = a - b
    d *= d
    # The channel mean by cv2.transform: 8× numpy's mean over a last axis of 3 (it is
    # run for every instant of every pair).
    return cv2.GaussianBlur(cv2.transform(d, _CHANNEL_MEAN), (0, 0), ERROR_BLUR_SIGMA)


def _sample(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """``image`` looked up at (``map_x``, ``map_y``) (H×W float32 pixel coordinates each),
    bilinear, edges repeated outwards."""
    import cv2

    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
