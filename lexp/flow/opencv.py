"""OpenCV's estimators: DIS (Kroeger et al., ECCV 2016; presets ultrafast, fast, medium)
and Farnebäck (2003)."""

from __future__ import annotations

import numpy as np

from lexp.errors import UsageError
from lexp.flow.base import FlowEstimator

DIS_PRESETS = ("ultrafast", "fast", "medium")
# OpenCV refuses DIS on images under 12 px, and its pyramids (DIS's patches of 8 px,
# Farnebäck's 5 levels) need room: smaller frames are padded to this (edges replicated)
# and the flow cropped back. A frame that small has little motion to find, but a clip of
# them (a thumbnail, a 1-px strip) must render, not fail.
MIN_SIDE = 32


def _padded(estimate):
    """``estimate(ga, gb)`` on grey images padded to MIN_SIDE, cropped back."""
    def padded(self, ga, gb):
        import cv2

        h, w = ga.shape[:2]
        if h >= MIN_SIDE and w >= MIN_SIDE:
            return estimate(self, ga, gb)
        bottom, right = max(0, MIN_SIDE - h), max(0, MIN_SIDE - w)
        ga, gb = (cv2.copyMakeBorder(g, 0, bottom, 0, right, cv2.BORDER_REPLICATE)
                  for g in (ga, gb))
        return np.ascontiguousarray(estimate(self, ga, gb)[:h, :w])
    return padded


class DISFlow(FlowEstimator):
    """OpenCV's Dense Inverse Search: fast, and good on textured motion."""

    def __init__(self, preset: str = "medium", scale: float = 1.0) -> None:
        if preset not in DIS_PRESETS:
            raise UsageError(f"unknown DIS preset {preset!r}", hint="ultrafast, fast or medium")
        super().__init__("dis", scale, {"preset": preset})

    @_padded
    def _estimate(self, ga, gb):
        import cv2

        preset = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
                  "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                  "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[self.params["preset"]]
        return cv2.DISOpticalFlow_create(preset).calc(ga, gb, None)


class FarnebackFlow(FlowEstimator):
    """Farnebäck's polynomial expansion: smooth, slower, no texture needed at fine scale."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__("farneback", scale, {"levels": 5, "winsize": 15, "iterations": 5,
                                              "poly_n": 7, "poly_sigma": 1.5})

    @_padded
    def _estimate(self, ga, gb):
        import cv2

        p = self.params
        return cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, p["levels"], p["winsize"],
                                            p["iterations"], p["poly_n"], p["poly_sigma"],
                                            cv2.OPTFLOW_FARNEBACK_GAUSSIAN)
