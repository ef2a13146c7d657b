"""Optical flow on synthetic pairs whose motion is known exactly."""

import cv2
import numpy as np
import pytest

from lexp import flow
from lexp.errors import UsageError

H, W = 240, 320


@pytest.fixture(scope="module")
def texture() -> np.ndarray:
    """A smooth random texture, uint8 RGB (something for flow to lock on to)."""
    rng = np.random.default_rng(0)
    grey = cv2.GaussianBlur(rng.random((2 * H, 2 * W)).astype(np.float32), (0, 0), 2.0)
    grey = cv2.resize(grey, (W, H), interpolation=cv2.INTER_AREA)
    grey = (grey - grey.min()) / (grey.max() - grey.min())
    tint = np.float32([1.0, 0.8, 0.6])
    return np.rint(grey[..., None] * tint * 255).astype(np.uint8)


def moved(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return cv2.warpAffine(image, matrix, (W, H), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REFLECT)


def true_flow(matrix: np.ndarray) -> np.ndarray:
    """Where an affine warp sends each pixel: (2, H, W)."""
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    nx = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]
    ny = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]
    return np.stack([nx - xs, ny - ys])


SHIFT = np.float64([[1, 0, 1.3], [0, 1, -0.7]])  # a sub-pixel translation
ROTATION = cv2.getRotationMatrix2D((W / 2, H / 2), 1.5, 1.0)  # up to ~5 px at the corners


@pytest.mark.parametrize("name", ["dis", "dis-fast", "dis-ultrafast", "farneback"])
@pytest.mark.parametrize("motion", [SHIFT, ROTATION], ids=["shift", "rotation"])
def test_endpoint_error_under_a_quarter_pixel(texture, name, motion):
    estimate = flow.make_estimator(name).pair(texture, moved(texture, motion))
    assert estimate.shape == (2, H, W) and estimate.dtype == np.float32
    assert flow.endpoint_error(estimate, true_flow(motion), margin=16) < 0.25


def test_sign_convention(texture):
    right = np.float64([[1, 0, 3.0], [0, 1, 0.0]])  # content moves 3 px to the right
    estimate = flow.make_estimator("dis").pair(texture, moved(texture, right))
    assert np.median(estimate[0]) == pytest.approx(3.0, abs=0.1)
    assert np.median(estimate[1]) == pytest.approx(0.0, abs=0.1)


def test_half_scale_reports_full_frame_pixels(texture):
    motion = np.float64([[1, 0, 4.0], [0, 1, 2.0]])
    estimate = flow.make_estimator("dis", scale=0.5).pair(texture, moved(texture, motion))
    assert flow.endpoint_error(estimate, true_flow(motion), margin=24) < 0.25


def test_warping_the_next_frame_back_recovers_this_one(texture):
    b = moved(texture, SHIFT)
    estimate = flow.make_estimator("dis").pair(texture, b)
    back = flow.warp_backward(b, estimate)
    error = np.abs(back.astype(int) - texture.astype(int))[16:-16, 16:-16].mean()
    plain = np.abs(b.astype(int) - texture.astype(int))[16:-16, 16:-16].mean()
    assert error < 0.2 * plain  # 2.6 against 18.4 levels; the wrong sign gives 25.6


def test_bad_parameters():
    with pytest.raises(UsageError):
        flow.make_estimator("raft-tiny")
    with pytest.raises(UsageError):
        flow.make_estimator("dis", scale=0)
    with pytest.raises(UsageError):
        flow.DISFlow("slow")
    assert flow.make_estimator("dis-fast").key() == {"estimator": "dis", "scale": 1.0,
                                                    "preset": "fast"}
