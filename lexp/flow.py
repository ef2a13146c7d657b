"""Optical flow estimators behind one small interface, and helpers to use flow.

Data contract
-------------
Flow is ``float32 (2, H, W)`` in pixels, from frame t to frame t+1: ``flow[0]`` is the
horizontal motion (x, to the right), ``flow[1]`` the vertical (y, down), so that the
content at pixel p of frame t is found at ``p + flow[:, p]`` in frame t+1.

Estimators take two ``uint8 H×W×3`` RGB frames and return that array. A ``scale`` below
1 estimates on frames resized by that factor (cheaper; RAFT at 1080p needs GBs), then
resizes the flow back and multiplies its vectors by ``1/scale``, so the units stay pixels
of the full frame.

Here so far: OpenCV's DIS (Kroeger et al., ECCV 2016; presets ``ultrafast``, ``fast``,
``medium``) and Farnebäck (2003). RAFT from torchvision joins this interface with the
flow issue; see that issue's notes on torchvision for CPU machines.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lexp.errors import UsageError

DIS_PRESETS = ("ultrafast", "fast", "medium")


@dataclass(frozen=True)
class FlowEstimator:
    """Base: an estimator's name and parameters (what a cache key needs)."""

    name: str  # "dis" or "farneback"
    scale: float = 1.0  # processing scale (0 < scale <= 1)
    params: dict = field(default_factory=dict)  # the method's own settings

    def __post_init__(self) -> None:
        if not 0 < self.scale <= 1:
            raise UsageError(f"flow scale {self.scale} must be in (0, 1]")

    def key(self) -> dict:
        """Everything that decides the result, for cache keys and metadata."""
        return {"estimator": self.name, "scale": self.scale, **self.params}

    def pair(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Flow from frame ``a`` to frame ``b`` (uint8 H×W×3 RGB): float32 (2, H, W) pixels."""
        import cv2

        h, w = a.shape[:2]
        if b.shape[:2] != (h, w):
            raise UsageError(f"frames of different sizes: {a.shape[:2]} and {b.shape[:2]}")
        ga, gb = (cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in (a, b))
        if self.scale != 1:
            size = (max(8, round(w * self.scale)), max(8, round(h * self.scale)))
            ga, gb = (cv2.resize(g, size, interpolation=cv2.INTER_AREA) for g in (ga, gb))
        flow = self._estimate(ga, gb)  # h' × w' × 2
        if self.scale != 1:
            sx, sy = w / flow.shape[1], h / flow.shape[0]
            flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
            flow[..., 0] *= sx
            flow[..., 1] *= sy
        return np.ascontiguousarray(flow.transpose(2, 0, 1), dtype=np.float32)

    def _estimate(self, ga: np.ndarray, gb: np.ndarray) -> np.ndarray:
        raise NotImplementedError


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


def make_estimator(name: str, *, scale: float = 1.0) -> FlowEstimator:
    """``dis`` (= ``dis-medium``), ``dis-fast``, ``dis-ultrafast``, or ``farneback``."""
    if name == "farneback":
        return FarnebackFlow(scale)
    if name == "dis" or name.startswith("dis-"):
        return DISFlow(name.split("-", 1)[1] if "-" in name else "medium", scale)
    raise UsageError(f"unknown flow estimator {name!r}",
                     hint="dis, dis-fast, dis-ultrafast or farneback")


def warp_backward(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``image`` at p + flow(p): with the flow t→t+1 and ``image`` = frame t+1,
    this brings frame t+1 back onto frame t. image: H×W×C (any dtype), flow (2, H, W)."""
    import cv2

    h, w = flow.shape[1:]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(image, xs + flow[0], ys + flow[1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def endpoint_error(flow: np.ndarray, truth: np.ndarray, margin: int = 0) -> float:
    """Mean endpoint error in pixels between two (2, H, W) flows (borders trimmed)."""
    d = np.sqrt(((np.asarray(flow, np.float64) - truth) ** 2).sum(axis=0))
    if margin:
        d = d[margin:-margin, margin:-margin]
    return float(d.mean())
