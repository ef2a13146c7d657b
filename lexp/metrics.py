"""Image quality metrics: PSNR (whole frame and a region) and SSIM.

Images are float H×W×3 *encoded* values in [0, 1] (what a viewer sees), compared in
float64 with a data range of 1.

- :func:`psnr`: 10·log10(1 / MSE), over every pixel and channel, or only over the pixels
  where ``mask`` (H×W bool) is set. Identical images give +inf.
- :func:`ssim`: Wang, Bovik, Sheikh & Simoncelli (2004), eq. 13, with their constants
  (K1 = 0.01, K2 = 0.03) and an 11×11 Gaussian window of σ = 1.5, computed per channel and
  averaged: the conventional settings (as in scikit-image with ``gaussian_weights=True``).
- :func:`moving_mask`: where the ground truth differs from the first frame by more than
  a threshold in any channel: the region a long exposure must get right.
"""

from __future__ import annotations

import numpy as np

SSIM_K1, SSIM_K2, SSIM_SIGMA, SSIM_WINDOW = 0.01, 0.03, 1.5, 11
MOVING_THRESHOLD = 2.0 / 255


def psnr(image: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of ``image`` against ``reference`` (H×W×3 in [0, 1]); NaN if mask is empty."""
    diff = np.asarray(image, np.float64) - np.asarray(reference, np.float64)
    squared = diff * diff
    if mask is not None:
        if not mask.any():
            return float("nan")
        squared = squared[mask]
    mse = float(squared.mean())
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


LOCAL_SIGMA = 6.0  # px: the neighbourhood local_psnr weighs (a Gaussian's sigma)
LOCAL_QUANTILE = 0.999  # local_psnr's worst neighbourhoods: the picture's worst 0.1 %


def local_psnr(image: np.ndarray, reference: np.ndarray, sigma: float = LOCAL_SIGMA,
               quantile: float = LOCAL_QUANTILE) -> float:
    """PSNR in dB of the worst neighbourhoods of ``image`` against ``reference`` (H×W×3
    in [0, 1]): the squared error averaged over a Gaussian neighbourhood (``sigma`` px)
    at every pixel, taken at its ``quantile``. A whole-frame or moving-region PSNR
    dilutes a defect that is visible in one place (a string of beads along one light
    trail) with everything that is right; this one does not."""
    import cv2

    diff = np.asarray(image, np.float32) - np.asarray(reference, np.float32)
    local = cv2.GaussianBlur((diff * diff).mean(axis=2), (0, 0), sigma)
    mse = float(np.quantile(local, quantile))
    return float("inf") if mse <= 0 else 10.0 * np.log10(1.0 / mse)


def ssim(image: np.ndarray, reference: np.ndarray) -> float:
    """Mean SSIM of two H×W×3 images in [0, 1] (per channel, then averaged)."""
    import cv2

    x = np.asarray(image, np.float64)
    y = np.asarray(reference, np.float64)

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(a, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA,
                                borderType=cv2.BORDER_REFLECT)

    s = ssim_map(x, y, blur)
    # Like scikit-image, leave out the border where the window does not fit.
    pad = SSIM_WINDOW // 2
    if min(s.shape[:2]) <= 2 * pad:  # a frame smaller than the window: all of it counts
        return float(s.mean())
    return float(s[pad:-pad, pad:-pad].mean())


def ssim_map(x, y, blur):
    """SSIM at every pixel (eq. 13, data range 1) of ``x`` and ``y``: numpy arrays or torch
    tensors alike, with ``blur`` the Gaussian window (σ = ``SSIM_SIGMA``, ``SSIM_WINDOW``
    wide) in that array library. The one SSIM: :func:`ssim` scores with it and the
    training loss (``lexp.training.losses``) descends on it."""
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov = blur(x * y) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    return numerator / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))


def moving_mask(truth: np.ndarray, first: np.ndarray,
                threshold: float = MOVING_THRESHOLD) -> np.ndarray:
    """H×W bool: where the truth differs from the first frame by > threshold (any channel)."""
    return (np.abs(np.asarray(truth, np.float64) - np.asarray(first, np.float64))
            > threshold).any(axis=-1)
