"""Handheld alignment: register every frame to a reference so the camera holds still.

Model
-----
The camera's motion between two frames is one global transform: a **similarity**
(shift, rotation, zoom: 4 degrees of freedom; right for a hand-held phone, robust), or a
**homography** (8: also tilt and keystone, for wide lenses and close scenes). It is
fitted to ORB features matched between the frame and the reference (the window's first
frame), with RANSAC, whose consensus is the static scene: features on moving things
(water, leaves, people) disagree with the camera's motion and fall out as outliers. We
match against the reference, not the previous frame, so errors do not accumulate; a
frame that no longer matches it (the hand wandered, the view changed) is chained through
the last frame that did. Features are found on a greyscale copy at most
``WORK_SIDE`` pixels on its long side; the fit is scaled back to full resolution.

A frame is **skipped** (and reported) when too few features support any transform, or
the transform is implausible (it would shrink, grow or shear the frame by more than
``MAX_ZOOM``): a blurred or blank frame must not smear the picture.

Borders
-------
Warped frames leave parts of the reference's rectangle uncovered. They are filled from
the reference frame itself (so flow and blending see a whole picture), and we track the
area every used frame covers. ``crop`` (the default) cuts the result to the largest
axis-aligned rectangle inside it; ``fill`` keeps the full frame with those filled
borders.
"""

from __future__ import annotations

import math

import numpy as np

from lexp.errors import InputError
from lexp.renderers.result import AlignStats

ALIGN_MODELS = ("similarity", "homography")
ALIGN_BORDERS = ("crop", "fill")
WORK_SIDE = 960  # pixels: features are found on a copy this size at most
FEATURES = 2000
MIN_INLIERS = 15  # matched features that must agree on the camera's motion
RANSAC_PX = 2.0  # work-image pixels: a feature within this of the fit agrees with it
MAX_ZOOM = 1.25  # a frame more than this much larger/smaller than the reference is wrong
IDENTITY_PX = 0.05  # a transform moving no corner more than this is the identity


class Aligner:
    """Registers frames (uint8 H×W×3, any channel order) to the first one it is given."""

    def __init__(self, model: str = "similarity", border: str = "crop") -> None:
        import cv2

        if model not in ALIGN_MODELS:
            raise ValueError(model)
        self.model, self.border = model, border
        self.stats = AlignStats(model)
        self._orb = cv2.ORB_create(FEATURES)
        self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
        self._reference = None  # (uint8 frame, keypoints xy, descriptors)
        self._last = None  # the last registered frame: (xy, descriptors, 3×3 to reference)
        self._covered: np.ndarray | None = None  # uint8 H×W, 255 where every frame reaches
        self._scale = 1.0

    def warp(self, index: int, frame: np.ndarray) -> np.ndarray | None:
        """The frame in the reference's coordinates, or None if it cannot be registered."""
        import cv2

        h, w = frame.shape[:2]
        if self._reference is not None and frame.shape != self._reference[0].shape:
            return frame  # the renderer reports the size mismatch itself
        xy, desc = self._features(frame)
        if self._reference is None:
            if desc is None or len(xy) < MIN_INLIERS:
                raise InputError(f"cannot align: frame {index} (the reference) has too few "
                                 "features to register the others against",
                                 hint="start the window on a sharper frame, or drop --align")
            self._reference = (frame.copy(), xy, desc)  # the caller may reuse its buffer
            self._last = (xy, desc, np.eye(3))
            self._covered = np.full((h, w), 255, np.uint8)
            self.stats.aligned = 1
            return frame
        to_reference = self._fit(xy, desc, *self._reference[1:], np.eye(3))
        if to_reference is None:
            to_reference = self._fit(xy, desc, *self._last)  # chained through the last one
        if to_reference is None:
            self.stats.skipped.append(index)
            return None
        self._last = (xy, desc, to_reference)
        self.stats.aligned += 1
        full = self._to_full(to_reference)
        corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float32).reshape(-1, 1, 2)
        shift = float(np.abs(cv2.perspectiveTransform(corners, full) - corners).max())
        self.stats.max_shift_px = max(self.stats.max_shift_px, shift)
        if shift <= IDENTITY_PX:
            return frame
        warped = cv2.warpPerspective(frame, full, (w, h), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        inside = cv2.warpPerspective(np.full((h, w), 255, np.uint8), full, (w, h),
                                     flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                     borderValue=0)
        inside = np.where(inside == 255, np.uint8(255), np.uint8(0))
        np.minimum(self._covered, inside, out=self._covered)
        outside = inside == 0
        warped[outside] = self._reference[0][outside]
        return warped

    def crop_box(self) -> tuple[int, int, int, int] | None:
        """(x, y, width, height) of the area every used frame covers, for ``crop``;
        None when nothing needs cutting (or the border is ``fill``)."""
        if self.border != "crop" or self._covered is None or self._covered.min() == 255:
            return None
        box = largest_rectangle(self._covered == 255)
        h, w = self._covered.shape
        if box[2] * box[3] < 0.05 * h * w:  # a pan across the view, not a steadied hand
            raise InputError(f"the aligned frames share only {box[2]}x{box[3]} of {w}x{h} "
                             "pixels: the camera pans further than a hand shakes",
                             hint="keep the camera's motion (--no-align), or keep every "
                                  "frame's view with --align-border fill")
        self.stats.crop = box
        return box

    # ---------------------------------------------------------------- internals

    def _features(self, frame: np.ndarray):
        import cv2

        h, w = frame.shape[:2]
        self._scale = min(1.0, WORK_SIDE / max(h, w))
        from lexp.media import to_8bit

        grey = cv2.cvtColor(to_8bit(frame), cv2.COLOR_RGB2GRAY)  # ORB works on 8 bits
        if self._scale < 1.0:
            grey = cv2.resize(grey, (round(w * self._scale), round(h * self._scale)),
                              interpolation=cv2.INTER_AREA)
        keypoints, desc = self._orb.detectAndCompute(grey, None)
        xy = np.array([k.pt for k in keypoints], np.float32).reshape(-1, 2)
        return xy, desc

    def _fit(self, xy, desc, ref_xy, ref_desc, ref_to_reference):
        """3×3 work-scale transform from this frame to the reference, through a frame
        whose own transform to the reference is ``ref_to_reference``; None if no fit."""
        import cv2

        if desc is None or ref_desc is None or len(xy) < MIN_INLIERS:
            return None
        pairs = self._matcher.knnMatch(desc, ref_desc, k=2)
        good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
        if len(good) < MIN_INLIERS:
            return None
        src = xy[[m.queryIdx for m in good]]
        dst = ref_xy[[m.trainIdx for m in good]]
        if self.model == "similarity":
            matrix, inliers = cv2.estimateAffinePartial2D(
                src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX,
                maxIters=4000, confidence=0.999)
            matrix = None if matrix is None else np.vstack([matrix, [0, 0, 1]])
        else:
            matrix, inliers = cv2.findHomography(src, dst, cv2.RANSAC, RANSAC_PX,
                                                 maxIters=4000, confidence=0.999)
        if matrix is None or inliers is None or int(inliers.sum()) < MIN_INLIERS:
            return None
        matrix = ref_to_reference @ matrix
        if not _plausible(matrix):
            return None
        return matrix

    def _to_full(self, matrix: np.ndarray) -> np.ndarray:
        s = self._scale
        scale, unscale = np.diag([s, s, 1.0]), np.diag([1 / s, 1 / s, 1.0])
        return unscale @ matrix @ scale


def _plausible(matrix: np.ndarray) -> bool:
    """A camera shake, not a degenerate fit: bounded zoom and shear, little perspective."""
    linear = matrix[:2, :2] / matrix[2, 2]
    singular = np.linalg.svd(linear, compute_uv=False)
    if singular.min() <= 0 or not np.isfinite(matrix).all():
        return False
    return (singular.max() <= MAX_ZOOM and singular.min() >= 1 / MAX_ZOOM
            and singular.max() / singular.min() <= 1.15
            and np.abs(matrix[2, :2]).max() < 2e-3)


def largest_rectangle(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The largest axis-aligned rectangle of True cells in a boolean H×W mask:
    (x, y, width, height). Found on a grid at most 256 cells on its long side (a cell
    counts only if all of it is True), so the answer is exact to a few pixels and always
    inside the mask."""
    import cv2

    h, w = mask.shape
    step = max(1, math.ceil(max(h, w) / 256))
    rows, cols = -(-h // step), -(-w // step)
    padded = np.zeros((rows * step, cols * step), np.float32)
    padded[:h, :w] = mask
    # An integer factor: INTER_AREA is the exact block mean, 1 only for all-True blocks.
    cells = cv2.resize(padded, (cols, rows), interpolation=cv2.INTER_AREA) >= 1 - 1e-6
    # Classic maximal rectangle: for each row, the histogram of True runs above it.
    heights = np.zeros(cols, np.int64)
    best = (0, 0, 0, 0, 0)  # area, x, y, w, h in cells
    for r in range(rows):
        heights = np.where(cells[r], heights + 1, 0)
        stack: list[int] = []
        for c in range(cols + 1):
            current = heights[c] if c < cols else 0
            while stack and heights[stack[-1]] >= current:
                top = stack.pop()
                left = stack[-1] + 1 if stack else 0
                area = heights[top] * (c - left)
                if area > best[0]:
                    best = (area, left, r - heights[top] + 1, c - left, heights[top])
            stack.append(c)
    _, x, y, bw, bh = best
    x0, y0 = x * step, y * step
    return int(x0), int(y0), int(min(bw * step, w - x0)), int(min(bh * step, h - y0))
