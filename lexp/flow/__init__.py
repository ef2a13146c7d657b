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

Estimators: OpenCV's DIS (Kroeger et al., ECCV 2016; presets ``ultrafast``, ``fast``,
``medium``), Farnebäck (2003), and RAFT small/large from torchvision (:mod:`lexp.flow.raft`).

Layout: :mod:`~lexp.flow.base` (the interface), :mod:`~lexp.flow.opencv` (DIS,
Farnebäck), :mod:`~lexp.flow.raft` (RAFT, imported only when asked for: it brings
torch), :mod:`~lexp.flow.cache` (the on-disk cache), :mod:`~lexp.flow.run` (a clip's
flows, a pair's through the cache), :mod:`~lexp.flow.export` (.flo, colour images and
video). This module is the registry: :func:`make_estimator`, :func:`auto_estimator`.
"""

from __future__ import annotations

from lexp.errors import UsageError
from lexp.flow.base import FlowEstimator
from lexp.flow.export import FlowExporter, flo_bytes, flow_to_rgb
from lexp.flow.opencv import DIS_PRESETS, DISFlow, FarnebackFlow
from lexp.flow.run import FlowRun, cached_pair, clip_flows, endpoint_error, warp_backward

__all__ = [
    "DIS_PRESETS", "ESTIMATORS", "DISFlow", "FarnebackFlow", "FlowEstimator", "FlowExporter",
    "FlowRun", "auto_estimator", "cached_pair", "clip_flows", "endpoint_error", "flo_bytes",
    "flow_to_rgb", "make_estimator", "warp_backward",
]


ESTIMATORS = ("dis", "dis-fast", "dis-ultrafast", "farneback", "raft-small", "raft-large")


def make_estimator(name: str, *, scale: float = 1.0, device: str = "auto",
                   cache=None) -> FlowEstimator:
    """``dis`` (= ``dis-medium``), ``dis-fast``, ``dis-ultrafast``, ``farneback``,
    ``raft-small`` or ``raft-large`` (weights from the lexp cache ``cache``; ``device``
    applies to RAFT only)."""
    if name == "farneback":
        return FarnebackFlow(scale)
    if name == "dis" or name.startswith("dis-"):
        return DISFlow(name.split("-", 1)[1] if "-" in name else "medium", scale)
    if name in ("raft-small", "raft-large"):
        from lexp.flow.raft import RAFTFlow

        return RAFTFlow(name, scale, device, cache=cache)
    raise UsageError(f"unknown flow estimator {name!r}", hint=", ".join(ESTIMATORS))


def auto_estimator(*, scale: float = 1.0, device: str = "auto", cache=None,
                   raft_on_cpu: bool = True) -> FlowEstimator:
    """The best estimator available: RAFT when its weights are in the cache (large on a
    GPU, small on a CPU, where large costs twice the time for a little accuracy), else
    DIS medium. ``raft_on_cpu=False`` keeps DIS on a CPU (renders: RAFT measured 0.22
    pairs/s at 720p there, DIS 16). Needs no torch unless RAFT weights are there."""
    from lexp import weights

    cached = [n for n in ("raft-large", "raft-small") if weights.is_cached(weights.get(n), cache)]
    if not cached:
        return DISFlow("medium", scale)
    from lexp import torch_env

    on_gpu = torch_env.resolve_device(device).type != "cpu"
    if not on_gpu and not raft_on_cpu:
        return DISFlow("medium", scale)
    name = cached[0] if on_gpu or len(cached) == 1 else cached[1]
    return make_estimator(name, scale=scale, device=device, cache=cache)
