"""RAFT optical flow (Teed & Deng, ECCV 2020) through torchvision, as a lexp estimator.

- Weights come only from the lexp cache (``lexp download raft-small`` / ``raft-large``:
  the files torchvision publishes, checked against the sha256 prefix in their names).
  The model is built with ``weights=None``, so torchvision never downloads on its own.
  The weights' sha256 is part of the estimator's key, so the flow cache never mixes
  flows from two sets of weights.
- Input: RGB scaled to [-1, 1] (torchvision's ``OpticalFlow`` transform), padded with
  replicated edges to a multiple of 8 (RAFT works at 1/8 resolution) and to at least
  128 px (its 4-level correlation pyramid halves 1/8 three more times); the flow is
  cropped back. The processing ``scale`` of :class:`lexp.flow.FlowEstimator` applies
  (1080p RAFT needs GBs: its all-pairs correlation volume grows with the square of the
  pixel count).
- Run under ``torch.inference_mode()``, float16 autocast on CUDA, in batches sized from
  the GPU's free memory (one pair at a time on a CPU, where batching gains nothing).
- torch and the model load on the first flow that is not in the cache, so a run whose
  flows are all cached never imports torch.
"""

from __future__ import annotations

import numpy as np

from lexp.errors import InputError
from lexp.flow.base import FlowEstimator

VARIANTS = {"raft-small": "raft_small", "raft-large": "raft_large"}
DEFAULT_ITERATIONS = 12  # torchvision's default number of flow updates
_MIN_SIDE = 128  # pixels: the smallest input RAFT's correlation pyramid accepts, rounded up


class RAFTFlow(FlowEstimator):
    """RAFT small (1.0 M parameters) or large (5.3 M), on ``device`` (auto/cpu/cuda[:n]/mps)."""

    def __init__(self, variant: str = "raft-small", scale: float = 1.0, device: str = "auto",
                 iterations: int = DEFAULT_ITERATIONS, cache=None) -> None:
        from lexp import weights

        if variant not in VARIANTS:
            raise ValueError(f"unknown RAFT variant {variant!r}")
        path, digest = weights.verified(variant, cache)
        super().__init__(variant, scale, {"iterations": iterations, "weights": digest})
        object.__setattr__(self, "weights_path", path)
        object.__setattr__(self, "device_spec", device)
        object.__setattr__(self, "_loaded", None)  # (model, torch.device) once loaded

    # ---------------------------------------------------------------- loading

    @property
    def device(self):
        """The torch.device the model runs on (imports torch and loads the model)."""
        return self._load()[1]

    @property
    def device_used(self) -> str | None:
        """The device's name once the model has run, else None (every flow was cached)."""
        return str(self._loaded[1]) if self._loaded is not None else None

    def _load(self):
        if self._loaded is not None:
            return self._loaded
        import torch

        from lexp import torch_env

        device = torch_env.resolve_device(self.device_spec)
        builder = getattr(torch_env.torchvision().models.optical_flow, VARIANTS[self.name])
        model = builder(weights=None, progress=False)
        hint = f"run: lexp download {self.name} --force"
        try:
            state = torch.load(self.weights_path, map_location="cpu", weights_only=True)
        except Exception as err:  # pickle, zip and torch errors all mean "not loadable"
            raise InputError(f"{self.weights_path} is not a loadable checkpoint: "
                             f"{str(err).splitlines()[0]}", hint=hint) from None
        if not isinstance(state, dict):
            raise InputError(f"{self.weights_path} does not hold a state dict", hint=hint)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise InputError(f"{self.weights_path} is not a {self.name} checkpoint "
                             f"({str(err).splitlines()[0]})", hint=hint) from None
        model.eval().to(device)
        object.__setattr__(self, "_loaded", (model, device))
        return self._loaded

    # ---------------------------------------------------------------- running

    def batch_limit(self, size: tuple[int, int]) -> int:
        """Pairs per batch for frames of ``size`` (w, h): from free GPU memory, 1 on a CPU."""
        from lexp import torch_env

        free = torch_env.free_memory(self.device)
        if free is None:
            return 1
        w, h = (max(_MIN_SIDE, round(side * self.scale)) for side in size)
        cells = (-(-h // 8)) * (-(-w // 8))
        # The correlation volume (cells² float16 values, plus its pyramid's third more)
        # dominates; features, GRU state and upsampling add a few hundred MB per pair.
        per_pair = int(cells * cells * 2 * 1.34) + (300 << 20)
        return int(max(1, min(16, free * 0.6 // per_pair)))

    def _prepare(self, frame: np.ndarray) -> np.ndarray:
        return frame  # RAFT takes RGB

    def _estimate_batch(self, inputs):
        import torch

        from lexp import torch_env

        model, device = self._load()
        h, w = inputs[0][0].shape[:2]
        pad_h = max(_MIN_SIDE, -(-h // 8) * 8) - h
        pad_w = max(_MIN_SIDE, -(-w // 8) * 8) - w
        # Centred padding with replicated edges, as in RAFT's own InputPadder.
        pads = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)

        def tensor(images):
            batch = torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2)
            batch = batch.float().div_(127.5).sub_(1.0)  # [-1, 1], as torchvision's transform
            return torch.nn.functional.pad(batch, pads, mode="replicate")

        with torch.inference_mode(), torch_env.autocast(device):
            first = tensor([a for a, _ in inputs])
            second = tensor([b for _, b in inputs])
            flow = model(first, second, num_flow_updates=self.params["iterations"])[-1]
        flow = flow.float()[:, :, pads[2]:pads[2] + h, pads[0]:pads[0] + w]
        flow = flow.permute(0, 2, 3, 1).cpu().numpy()
        return [np.ascontiguousarray(f) for f in flow]
