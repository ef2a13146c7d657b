"""OpenCV's estimators: DIS (Kroeger et al., ECCV 2016; presets ultrafast, fast, medium)
and Farnebäck (2003)."""

from __future__ import annotations

from lexp.errors import UsageError
from lexp.flow.base import FlowEstimator

DIS_PRESETS = ("ultrafast", "fast", "medium")


class DISFlow(FlowEstimator):
    """OpenCV's Dense Inverse Search: fast, and good on textured motion."""

    def __init__(self, preset: str = "medium", scale: float = 1.0) -> None:
        if preset not in DIS_PRESETS:
            raise UsageError(f"unknown DIS preset {preset!r}", hint="ultrafast, fast or medium")
        super().__init__("dis", scale, {"preset": preset})

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

    def _estimate(self, ga, gb):
        import cv2

        p = self.params
        return cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, p["levels"], p["winsize"],
                                            p["iterations"], p["poly_n"], p["poly_sigma"],
                                            cv2.OPTFLOW_FARNEBACK_GAUSSIAN)
