"""The flow render's frames and sums on a torch device (a GPU): what
resolution.HostFrames does with numpy and OpenCV on the CPU — linear light through the
transfer's table, the flows resized, the exposure's sums at full size — on
tensors that stay on the device. Each decoded frame goes there once, as uint8 (a quarter
of its linear floats), and the exposure comes back once, at the end.

Without this, a GPU render synthesised its instants on the GPU but did everything else at
full size with numpy: the frames in linear light, the plain blends, the running sums —
about 50 ms a 1080p frame on this 2-core CPU, more than a 30 frames/s render has.

What stays on the CPU is small: decoding, the uint8 copy of each frame the flow
estimator reads (at the flow size), and the per-interval decisions read from the flows
(the count of instants and segments); the path bends are worked out here, from the flows
sent up. An interval is integrated whole, not tile by tile (``tiled = False``): on a GPU
a frame's worth of instants is one batch, where tiles would be dozens of small launches
and copies. The whole frame's count of instants is set by its fast pixels (the 99.5th
percentile, as before tiles), where a tile's is by its own, so a fast tile may get fewer
instants than on the CPU: measured through this code on the CPU
(scripts/same_image_on_cpu.py), every shared clip, protocol and method scored within
0.001 dB of the numpy path (before segments; tests/test_segments.py compares the two
integrations' sums).

Images here are float32 H×W×3 tensors (the layout of the numpy path, so the same
arithmetic in resolution.Composer and interpolate.interval_sum serves both).
"""

from __future__ import annotations

import numpy as np

from lexp.renderers.resolution import Composer


def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float32: cv2.resize's INTER_AREA along one axis as a matrix. Output
    pixel i covers [i·s, (i + 1)·s) of the input (s = n_in / n_out) and takes each input
    pixel by the share of it that range covers (whole factors: plain averages)."""
    scale = n_in / n_out
    low = np.arange(n_out)[:, None] * scale
    pixel = np.arange(n_in)[None, :]
    overlap = np.minimum(low + scale, pixel + 1) - np.maximum(low, pixel)
    return (np.clip(overlap, 0, None) / scale).astype(np.float32)


class DeviceFrames:
    """The flow render's frames on ``device`` (resolution.HostFrames' interface).
    ``integrate``: the TorchIntegrator's tensor method the intervals are summed with
    (its segments', or the exact render's with ``exact``)."""

    tiled = False  # the module docstring: a whole frame is one batch

    def __init__(self, device, lut: np.ndarray, integrate, exact: bool = False) -> None:
        import torch

        from lexp.renderers import interpolate

        self.torch, self.device, self.integrate = torch, device, integrate
        self.exact = exact  # the reference render (resolution.HostFrames)
        self.samples = interpolate.exact_samples_for if exact else interpolate.samples_for
        self.box_above = None  # tiles.plan's: no tiles here
        self.lut = torch.from_numpy(np.ascontiguousarray(lut, np.float32)).to(device)
        self._weights: dict[tuple[int, int], object] = {}  # (n_in, n_out) -> matrix

    def linear(self, rgb: np.ndarray, gain: float):
        """A decoded uint8 H×W×3 frame in linear light on the device, float32 (× ``gain``)."""
        if rgb.dtype == np.uint16:  # (torch's uint16 cannot index)
            rgb = rgb.astype(np.int32)
        codes = self.torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device)
        linear = self.lut[codes.long()]  # long: a uint8 index would be read as a mask
        if gain != 1.0:
            linear *= gain
        return linear

    def composer(self, full_shape: tuple[int, ...]) -> DeviceComposer:
        return DeviceComposer(full_shape, self)

    def flow(self, flow: np.ndarray):
        """A (2, H, W) numpy flow as a tensor here, for the path bends."""
        return self.on_device(flow)

    def sample_flow(self, flow, at):
        """interpolate._sample_flow on tensors: (2, H, W) ``flow`` looked up at each pixel
        displaced by ``at`` (2, H, W), bilinear with edges held (cv2.remap's
        BORDER_REPLICATE; grid_sample's coordinates run −1 … 1 over pixel centres)."""
        torch = self.torch
        _, h, w = flow.shape
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=self.device),
                                torch.arange(w, dtype=torch.float32, device=self.device),
                                indexing="ij")
        grid = torch.stack([(xs + at[0]) * (2 / max(w - 1, 1)) - 1,
                            (ys + at[1]) * (2 / max(h - 1, 1)) - 1], dim=-1)
        return torch.nn.functional.grid_sample(flow.unsqueeze(0), grid.unsqueeze(0),
                                               mode="bilinear", padding_mode="border",
                                               align_corners=True).squeeze(0)

    def flow_at(self, flow, size: tuple[int, int]):
        """resolution.flow_at on a (2, h, w) tensor: resampled to ``size`` (width, height),
        in that grid's pixels."""
        if (flow.shape[2], flow.shape[1]) == size:
            return flow
        resize = self.downscale if size[0] < flow.shape[2] else self.upscale
        scale = self.torch.tensor([size[0] / flow.shape[2], size[1] / flow.shape[1]],
                                  dtype=flow.dtype, device=self.device)
        return (resize(flow.permute(1, 2, 0), size) * scale).permute(2, 0, 1)

    def host(self, image) -> np.ndarray:
        """``image`` as a numpy array (for the trail video, extrapolation, the learner)."""
        return image.cpu().numpy() if isinstance(image, self.torch.Tensor) else image

    def on_device(self, image):
        """A numpy image (extrapolated light, a mask) as a tensor here."""
        if isinstance(image, self.torch.Tensor):
            return image
        return self.torch.from_numpy(np.ascontiguousarray(image)).to(self.device)

    def downscale(self, image, size: tuple[int, int]):
        """resolution.downscale's INTER_AREA on an H×W×C tensor: plain averages for whole
        factors (1080p and 4K to the 960-px flow size), one matrix per axis otherwise."""
        h, w, c = image.shape
        if h % size[1] == 0 and w % size[0] == 0:
            chw = image.permute(2, 0, 1).unsqueeze(0)
            pooled = self.torch.nn.functional.avg_pool2d(chw, (h // size[1], w // size[0]))
            return pooled.squeeze(0).permute(1, 2, 0)
        rows = self._weight(h, size[1]) @ image.reshape(h, w * c)  # (height out, w·c)
        return self.torch.einsum("xw,ywc->yxc", self._weight(w, size[0]),
                                 rows.view(size[1], w, c))

    def upscale(self, image, size: tuple[int, int]):
        """cv2.resize's bilinear (cv2.INTER_LINEAR: pixel centres, edges held) on
        an H×W×C tensor, as float32."""
        chw = image.float().permute(2, 0, 1).unsqueeze(0)
        out = self.torch.nn.functional.interpolate(chw, size=(size[1], size[0]),
                                                   mode="bilinear", align_corners=False)
        return out.squeeze(0).permute(1, 2, 0)

    def _weight(self, n_in: int, n_out: int):
        if (n_in, n_out) not in self._weights:
            self._weights[(n_in, n_out)] = self.on_device(area_weights(n_in, n_out))
        return self._weights[(n_in, n_out)]


class DeviceComposer(Composer):
    """resolution.Composer's sums as tensors on the device (float64 totals there too,
    but on MPS); ``total()`` brings the exposure back, as float64 numpy."""

    def __init__(self, full_shape: tuple[int, ...], frames: DeviceFrames) -> None:
        self.frames = frames
        super().__init__(full_shape)

    def add_full(self, part) -> None:
        super().add_full(self.frames.on_device(part))  # extrapolated light is numpy

    def _zeros(self, shape: tuple[int, ...], wide: bool = False):
        torch = self.frames.torch
        # MPS has no float64: there the totals are float32 too (still folded 32 terms at
        # a time, so a thousand-frame exposure keeps ~5 significant digits)
        wide = wide and self.frames.device.type != "mps"
        return torch.zeros(shape, dtype=torch.float64 if wide else torch.float32,
                           device=self.frames.device)

    def _host(self, image) -> np.ndarray:
        return self.frames.host(image).astype(np.float64, copy=False)
