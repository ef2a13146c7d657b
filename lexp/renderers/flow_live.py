"""The flow render fed one frame at a time (``lexp render --follow -m flow``): the same
walk as a finished clip's (:class:`lexp.renderers.flow.Walk`), with what it would give
if the frames ended now (a preview), and a state small enough to checkpoint and exact
to resume from.

The walk integrates each interval once the motion after it is known, so at any moment
it holds the sum of the settled intervals, the last frame read and the two intervals
before it. Its state is that sum (float32) and the last three frames' codes (a few
frames, not the night): resuming walks those three again into a scratch sum, which
rebuilds the two pending intervals and their flows exactly as they were, and then goes
on from the saved sum. Frames are a frame period apart (an intervalometer's are evenly
spaced), and the flow size is the one the first interval chose."""

from __future__ import annotations

import numpy as np

from lexp import colour
from lexp.config import RenderConfig
from lexp.renderers.prepare import Frame
from lexp.renderers.result import FlowStats

KEPT = 3  # frames kept for resuming: the last one and the two intervals before it


class _Steady:
    """The walk asks its frame stream for deflicker's level: none here."""

    @staticmethod
    def level() -> float:
        return 1.0


class LiveFlow:
    """A stacker-like flow render: :meth:`add` a frame's codes (uint8/uint16 H×W×3),
    :meth:`result` the linear light so far, :meth:`state` / :meth:`restore`, ``count``."""

    def __init__(self, config: RenderConfig, name: str, bit_depth: int) -> None:
        from lexp.renderers.flow import estimator_for
        from lexp.renderers.resolution import HostFrames

        self.config, self.name = config, name
        self.space = HostFrames(colour.decode_lut(config.transfer, bit_depth), config.exact)
        self.estimator = estimator_for(config)
        self.stats = FlowStats(self.estimator.label())
        self.walk = self._new_walk()
        self.kept: list[np.ndarray] = []  # the last KEPT frames' codes
        self.count = 0

    def _new_walk(self):
        from lexp.renderers.flow import Walk

        return Walk(self.name, self.estimator, None, None, self.space, self.stats, None,
                    None, _Steady(), None)

    def add(self, codes: np.ndarray) -> None:
        self.walk.push(Frame(self.count, codes, float(self.count), 1.0))
        self.kept = (self.kept + [codes.copy()])[-KEPT:]
        self.count += 1

    def result(self) -> np.ndarray:
        """The render if the frames ended now: float32 H×W×3 linear light. The walk goes
        on unchanged (the last interval is integrated into a scratch sum)."""
        from lexp.renderers.flow import Exposure

        scratch = Exposure(None, FlowStats(self.stats.estimator), self.walk.exposed.shape,
                           self.space)
        self.walk.finish(scratch)
        periods = self.walk.last_time - self.walk.first_time + 1
        return ((self.walk.exposed.total() + scratch.total()) / periods).astype(np.float32)

    def state(self) -> dict:
        walk = self.walk
        return {"total": walk.exposed.total().astype(np.float32), "count": self.count,
                "flow_scale": walk.flow_scale, "size": list(walk.size),
                "pairs": self.stats.pairs, "samples": self.stats.samples,
                **{f"kept{i}": codes for i, codes in enumerate(self.kept)}}

    def restore(self, state: dict) -> None:
        """Continue from :meth:`state`'s record: its last frames walked again into a
        scratch sum (their intervals and flows rebuilt), then the saved sum."""
        from lexp.renderers.flow import Exposure

        self.count = int(state["count"])
        self.kept = [np.array(state[f"kept{i}"]) for i in range(KEPT) if f"kept{i}" in state]
        walk = self.walk = self._new_walk()
        h, w = self.kept[0].shape[:2]
        walk.flow_scale, walk.size = float(state["flow_scale"]), tuple(state["size"])
        walk.flow_size_decided = True
        walk.exposed = Exposure(None, FlowStats(self.stats.estimator), (h, w, 3), self.space)
        first = self.count - len(self.kept)
        for offset, codes in enumerate(self.kept):
            walk.push(Frame(first + offset, codes, float(first + offset), 1.0))
        walk.exposed = Exposure(None, self.stats, (h, w, 3), self.space)
        walk.exposed.add(np.asarray(state["total"], np.float32))
        walk.first_time, walk.first_used, walk.used = 0.0, 0, self.count
        self.stats.pairs, self.stats.samples = int(state["pairs"]), int(state["samples"])
