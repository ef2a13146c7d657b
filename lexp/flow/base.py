"""The interface every optical-flow estimator implements (see :mod:`lexp.flow` for the
data contract). Its own module so that estimators kept elsewhere (RAFT, :mod:`lexp.flow.raft`)
subclass it without importing the registry in :mod:`lexp.flow`, which imports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lexp.errors import UsageError


@dataclass(frozen=True)
class FlowEstimator:
    """Base: an estimator's name and parameters (what a cache key needs), and the
    resizing that every estimator shares. Subclasses implement :meth:`_estimate_batch`."""

    name: str  # "dis", "farneback", "raft-small", "raft-large"
    scale: float = 1.0  # processing scale (0 < scale <= 1)
    params: dict = field(default_factory=dict)  # the method's own settings

    def __post_init__(self) -> None:
        if not 0 < self.scale <= 1:
            raise UsageError(f"flow scale {self.scale} must be in (0, 1]")

    def key(self) -> dict:
        """Everything that decides the result, for cache keys and metadata."""
        return {"estimator": self.name, "scale": self.scale, **self.params}

    def label(self) -> str:
        """The name users type: ``dis-medium``, ``farneback``, ``raft-small``."""
        preset = self.params.get("preset")
        return f"{self.name}-{preset}" if preset else self.name

    def batch_limit(self, size: tuple[int, int]) -> int:
        """How many pairs of frames of ``size`` (w, h) :meth:`pairs` should get at once."""
        return 1

    def pair(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Flow from frame ``a`` to frame ``b`` (uint8 H×W×3 RGB): float32 (2, H, W) pixels."""
        return self.pairs([(a, b)])[0]

    def pairs(self, frames: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """:meth:`pair` for several pairs of one size at once (RAFT batches them)."""
        import cv2

        from lexp.media import to_8bit

        h, w = frames[0][0].shape[:2]
        for a, b in frames:
            if a.shape[:2] != (h, w) or b.shape[:2] != (h, w):
                raise UsageError(f"frames of different sizes: {a.shape[:2]} and {b.shape[:2]}")
        # Every estimator works on 8 bits (16-bit frames' extra bits are for the light).
        inputs = [(self._prepare(to_8bit(a)), self._prepare(to_8bit(b))) for a, b in frames]
        if self.scale != 1:
            size = (max(8, round(w * self.scale)), max(8, round(h * self.scale)))
            inputs = [tuple(cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in pair)
                      for pair in inputs]
        flows = []
        for flow in self._estimate_batch(inputs):  # each h' × w' × 2
            if flow.shape[:2] != (h, w):
                sx, sy = w / flow.shape[1], h / flow.shape[0]
                flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
                flow[..., 0] *= sx
                flow[..., 1] *= sy
            flows.append(np.ascontiguousarray(flow.transpose(2, 0, 1), dtype=np.float32))
        return flows

    def _prepare(self, frame: np.ndarray) -> np.ndarray:
        """The estimator's input image from an RGB frame (OpenCV's methods take grey)."""
        import cv2

        return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)

    def _estimate_batch(self, inputs: list[tuple]) -> list[np.ndarray]:
        """Flows (h × w × 2 float32) for prepared, resized pairs."""
        return [self._estimate(a, b) for a, b in inputs]

    def _estimate(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError
