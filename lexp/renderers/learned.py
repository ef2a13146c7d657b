"""The learned renderer: the flow-guided render, refined by a trained generator.

``--method learned`` runs ``lexp.renderers.flow.render_flow`` with a :class:`Learner` riding
along. It acts only on exposures longer than the frames (extrapolation): between real
frames the flow render is kept as it is, because there it is the physics, and a blend
learned at 320 px measured 0.8–3.4 dB below it at 720p on the gap-fill protocol. When
there is something to extrapolate, the learner has seen every linear frame and the flow
into it, and kept a copy at the generator's *work size* (long side
``GeneratorConfig.work_size``, so a 1080p or 4K clip costs the network what a 320-px one
does); when the flow render is done it builds the
candidates in linear light at full resolution, runs the network at the work size, and
blends (``lexp`` architecture: per-pixel weights, upsampled; ``seed``: its own image,
upsampled). Crop, keep-sharp and the level then apply as for every method.

Training uses the same code: ``lexp.training.samples`` renders clips that are already at
the work size through the same path with a :class:`Capture`, which keeps the evidence and leaves the
flow render as it is. So what the network sees in training is what it sees in a render.

Checkpoints are read (and written, by training) in :mod:`lexp.checkpoint`.
"""

from __future__ import annotations

import math

import numpy as np

from lexp.errors import LexpError

# --------------------------------------------------------------------------- candidates

def work_scale(height: int, width: int, work_size: int) -> float:
    """Factor from full resolution to the work size (≤ 1)."""
    return min(1.0, work_size / max(height, width))


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """H×W×C float image to (width, height), area-averaged when shrinking."""
    import cv2

    if image.shape[1::-1] == size:
        return image
    shrink = size[0] < image.shape[1]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def candidates(flow_render: np.ndarray, mean: np.ndarray, sigmas, scale: float
               ) -> list[np.ndarray]:
    """The lexp generator's K candidates (linear H×W×3): the flow render, the linear mean
    of the inputs, and the flow render blurred by each sigma (work-size pixels, so
    ``sigma / scale`` at this resolution)."""
    from lexp.renderers.extrapolate import gaussian_blur

    return [flow_render, mean] + [gaussian_blur(flow_render, s / scale) for s in sigmas]


# --------------------------------------------------------------------------- evidence

class Capture:
    """Rides along a flow render (``render_flow(learner=...)``), keeping the frames, flows
    and candidates at the work size. ``refine`` keeps the evidence and returns the flow
    render unchanged: the training-data path."""

    def __init__(self, config) -> None:
        self.config = config  # model.GeneratorConfig
        self.frames: list[np.ndarray] = []  # work-size linear H×W×3
        self.flows: list[np.ndarray] = []  # work-size (2, H, W), per frame period
        self.times: list[float] = []
        self.total: np.ndarray | None = None  # full-size sum of linear frames
        self.scale = 1.0
        self.evidence: dict | None = None

    def observe(self, linear: np.ndarray, flow: np.ndarray | None, time: float) -> None:
        import cv2

        h, w = linear.shape[:2]
        if self.total is None:
            self.total = np.zeros(linear.shape, np.float32)
            self.scale = work_scale(h, w, self.config.work_size)
        self.total += linear
        size = self.work_shape(h, w)
        self.frames.append(resize(linear, size))
        if flow is None:
            self.flows.append(np.zeros((2, size[1], size[0]), np.float32))
        else:  # the flow's own grid: the flow render's working size, or the frame's
            sx, sy = size[0] / flow.shape[2], size[1] / flow.shape[1]
            self.flows.append(np.stack([
                cv2.resize(flow[0], size, interpolation=cv2.INTER_AREA) * sx,
                cv2.resize(flow[1], size, interpolation=cv2.INTER_AREA) * sy]))
        self.times.append(float(time))

    def work_shape(self, h: int, w: int) -> tuple[int, int]:
        """(width, height) at the work size."""
        return max(1, round(w * self.scale)), max(1, round(h * self.scale))

    def full_candidates(self, flow_render: np.ndarray) -> list[np.ndarray]:
        mean = self.total / np.float32(len(self.frames))
        return candidates(flow_render, mean, self.config.blur_sigmas, self.scale)

    def gather(self, flow_render: np.ndarray, periods: float) -> dict:
        """The evidence as numpy arrays (see model.Evidence), without the batch axis."""
        chosen = spread(len(self.frames), self.config.max_frames)
        flows = _chained_flows(self.flows, chosen)
        full = self.full_candidates(flow_render)
        h, w = flow_render.shape[:2]
        size = self.work_shape(h, w)
        covered = self.times[-1] - self.times[0] + 1.0
        between = (self.times[-1] - self.times[0]) / max(1, len(self.times) - 1) or 1.0
        return {
            "frames": np.stack([self.frames[i].transpose(2, 0, 1) for i in chosen]),
            "flows": np.stack(flows),
            "candidates": np.stack([resize(c, size).transpose(2, 0, 1) for c in full]),
            "context": np.array([math.log(max(periods, covered) / covered),
                                 math.log(max(between, 1e-3))], np.float32),
            "_full": full,
        }

    def refine(self, flow_render: np.ndarray, periods: float) -> np.ndarray:
        evidence = self.gather(flow_render, periods)
        evidence.pop("_full")
        self.evidence = evidence
        return flow_render


def spread(count: int, most: int) -> list[int]:
    """At most ``most`` indices of ``count``, evenly spread, first and last included (the
    middle one when ``most`` is 1)."""
    if count <= most:
        return list(range(count))
    if most == 1:
        return [count // 2]
    return sorted({round(i * (count - 1) / (most - 1)) for i in range(most)})


def _chained_flows(flows: list[np.ndarray], chosen: list[int]) -> list[np.ndarray]:
    """Flows into each chosen frame from the previous chosen one, per frame period: the
    mean of the per-period flows in between (a steady-motion approximation)."""
    out = [np.zeros_like(flows[0])]
    for a, b in zip(chosen, chosen[1:], strict=False):
        out.append(np.mean(flows[a + 1:b + 1], axis=0))
    return out


class Learner(Capture):
    """Rides along a flow render and replaces its result with the generator's."""

    def __init__(self, network, config, device) -> None:
        super().__init__(config)
        self.network = network
        self.device = device
        self.weights_mean: list[float] | None = None  # for metadata: the blend used

    def refine(self, flow_render: np.ndarray, periods: float) -> np.ndarray:
        import torch

        from lexp import colour
        from lexp.model import Evidence

        if periods <= self.times[-1] - self.times[0] + 1.0 + 1e-6:
            # Nothing to extrapolate: between real frames the flow render is the physics,
            # and the generator (measured) only loses detail there at full resolution.
            self.weights_mean = None
            return flow_render
        evidence = self.gather(flow_render, periods)
        full = evidence.pop("_full")
        batch = Evidence(*(torch.from_numpy(np.ascontiguousarray(evidence[k]))[None]
                           for k in ("frames", "flows", "candidates", "context")))
        batch = batch.to(self.device)
        h, w = flow_render.shape[:2]
        with torch.inference_mode():
            if self.config.arch == "lexp":
                weights = _finite(self.network.weights(batch)[0].float().cpu().numpy())
                self.weights_mean = [round(float(x), 4) for x in weights.mean(axis=(1, 2))]
                out = np.zeros_like(flow_render)
                for k, candidate in enumerate(full):
                    out += resize(np.ascontiguousarray(weights[k]), (w, h))[..., None] * candidate
                return out
            image = _finite(self.network(batch)[0].float().cpu().numpy()).transpose(1, 2, 0)
        return colour.decode(resize(np.ascontiguousarray(image), (w, h)), "srgb")


def _finite(values: np.ndarray) -> np.ndarray:
    """``values``, checked: a generator whose output is NaN or infinite (weights that
    overflow on this clip) would write a black image as a success."""
    if not np.isfinite(values).all():
        raise LexpError("the generator produced values that are not numbers on this clip",
                        hint="render with -m flow, or use another --checkpoint")
    return values


def render_learned(clip, config, estimator, *, cache=None, source=None, frames=None,
                   on_progress=None):
    """``--method learned``: the flow render refined by the generator in
    ``config.checkpoint``. Returns a result.RenderResult. A checkpoint whose record says
    it measured below the flow render past the clip's end (``checkpoint.measured``)
    is not used: the flow render is kept and the details say why (unless
    ``config.learned_fallback`` is off, as bench sets it to score the network)."""
    from lexp import checkpoint
    from lexp.renderers import flow as flow_render
    from lexp.renderers.interpolate_torch import integrator_for
    from lexp.renderers.result import GeneratorStats
    from lexp.torch_env import resolve_device

    device = resolve_device(config.device)
    path = checkpoint.resolve(config.checkpoint)
    network, model_config = checkpoint.load_network(path, device)
    gain = checkpoint.measured(path) if config.learned_fallback else None
    trusted = gain is None or gain.median_db > 0  # measured below the physics: keep it
    learner = Learner(network, model_config, device) if trusted else None
    result = flow_render.render_flow(clip, config, estimator, cache=cache, source=source,
                                     frames=frames, on_progress=on_progress,
                                     learner=learner, integrator=integrator_for(config.device))
    fallback = None
    if not trusted and result.details.flow is not None and result.details.flow.extrapolated:
        fallback = (f"flow render kept: {path.name} measured {gain.median_db:+.2f} dB against it "
                    "past the clip's end")
    result.details.generator = GeneratorStats(
        path.name, model_config.arch, learner.weights_mean if learner else None, fallback)
    return result

