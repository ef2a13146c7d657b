"""The interval integration of :mod:`lexp.renderers.interpolate` on torch tensors: the
same instants, warps, trust and sums, on any device torch has (CUDA, MPS, CPU).

A flow render with a TorchIntegrator keeps its frames and sums on the same device
(``frames``: lexp.renderers.on_device) and sums each interval with
``integrate_tensors``; ``integrate`` takes and returns numpy arrays (the tests compare it
with OpenCV's). Inside, an interval's instants are worked on in batches (``chunk_for``),
each a handful of tensor operations:

- where each instant looks A and B up is one matrix product of the (K, F) instant
  weights with the (F, H·W·2) fields (grid, flows, bends), already in grid_sample's
  normalised coordinates;
- the lookups are ``grid_sample`` (bilinear, edges repeated: cv2.remap's
  INTER_LINEAR + BORDER_REPLICATE);
- the local error's Gaussian blur is OpenCV's own kernel (σ = 3 px, 25 taps) as two
  1-D convolutions, its borders mirrored as OpenCV's default (BORDER_REFLECT_101) by
  an index table, so any image size works.

Results agree with the OpenCV path to float rounding (141 dB PSNR on the tests' pairs;
tests/test_interpolate_torch.py asks for 50).
"""

from __future__ import annotations

import numpy as np

from lexp.renderers.warp import ERROR_BLUR_RADIUS, ERROR_BLUR_SIGMA

# Bytes of working tensors a batch of instants may take: a batch of K instants at H×W
# holds about 14 floats a pixel per instant (coordinates, two warped images, their
# error, the blend). On a GPU more instants a batch keep it busy; on a CPU they only
# cost cache.
_BATCH_BYTES = {"cuda": 2 << 30, "mps": 1 << 30, "cpu": 96 << 20}
_FLOATS_PER_PIXEL_INSTANT = 14


def chunk_for(device_type: str, height: int, width: int, instants: int) -> int:
    """How many instants to work on at once at H×W (at least 1, at most ``instants``)."""
    per_instant = height * width * _FLOATS_PER_PIXEL_INSTANT * 4
    budget = _BATCH_BYTES.get(device_type, _BATCH_BYTES["cpu"])
    return max(1, min(instants, budget // per_instant))


def _reflect_101(size: int, radius: int) -> np.ndarray:
    """Indices of a row of ``size`` padded by ``radius`` each side, mirrored without
    repeating the edge (OpenCV's BORDER_REFLECT_101: … 2 1 | 0 1 2 … n−1 | n−2 …),
    folding again as often as a small image needs."""
    index = np.arange(-radius, size + radius)
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    index = np.abs(index) % period
    return np.where(index >= size, period - index, index)


class TorchIntegrator:
    """integrate_interval on ``device`` (a torch.device). One per render: it keeps the
    blur kernel and the border tables it has made."""

    def __init__(self, device) -> None:
        import cv2
        import torch

        self.torch = torch
        self.device = device
        # OpenCV's own kernel, the one warp._local_error's GaussianBlur uses
        kernel = cv2.getGaussianKernel(2 * ERROR_BLUR_RADIUS + 1, ERROR_BLUR_SIGMA,
                                       ktype=cv2.CV_32F).ravel()
        k = torch.from_numpy(kernel).to(device)
        self.kernel_x = k.view(1, 1, 1, -1)
        self.kernel_y = k.view(1, 1, -1, 1)
        self._borders: dict[tuple[int, int], tuple] = {}

    def _tensor(self, array):
        """A numpy array as a tensor here (a tensor as it is: the bends may be one)."""
        if isinstance(array, self.torch.Tensor):
            return array
        return self.torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    def _blur(self, x):
        """(K, 1, H, W) blurred as cv2.GaussianBlur(σ = ERROR_BLUR_SIGMA) blurs it."""
        torch = self.torch
        h, w = x.shape[-2:]
        if (h, w) not in self._borders:
            self._borders[(h, w)] = tuple(
                torch.from_numpy(_reflect_101(n, ERROR_BLUR_RADIUS)).to(self.device)
                for n in (h, w))
        rows, cols = self._borders[(h, w)]
        x = torch.nn.functional.conv2d(x.index_select(3, cols), self.kernel_x)
        return torch.nn.functional.conv2d(x.index_select(2, rows), self.kernel_y)

    def _local_error(self, a, b):
        """(K, 3, H, W) pair → (K, 1, H, W): warp.py's _local_error."""
        d = a - b
        return self._blur((d * d).mean(dim=1, keepdim=True))

    def integrate(self, a: np.ndarray, b: np.ndarray, forward: np.ndarray,
                  backward: np.ndarray, n: int, bends=None) -> np.ndarray:
        """interpolate.integrate_interval's sum (float32 H×W×3 numpy), here."""
        if n == 1:
            return a.copy()
        total = self.integrate_tensors(self._tensor(a), self._tensor(b), forward, backward,
                                       n, bends)
        return total.cpu().numpy()

    def integrate_tensors(self, a, b, forward: np.ndarray, backward: np.ndarray, n: int,
                          bends=None):
        """The same sum of frames already here (float32 H×W×3 tensors on the device, as
        on_device.DeviceFrames keeps them): an H×W×3 tensor. The flows and bends are
        (2, H, W), numpy or tensors here (the bends are, on that path)."""
        torch = self.torch
        if n == 1:
            return a.clone()
        h, w = a.shape[:2]
        # no_grad, not inference_mode: the sums this feeds are updated in place outside it
        with torch.no_grad():
            ta, tb, basis, plain_error = self._setup(a, b, forward, backward, bends)
            total = ta + (ta + tb) * ((n - 1) / 2)
            step = chunk_for(self.device.type, h, w, n - 1)
            for first in range(1, n, step):
                times = [k / n for k in range(first, min(n, first + step))]
                total += self._instants(ta, tb, basis, plain_error, times, bends is not None)
            return total.squeeze(0).permute(1, 2, 0)

    def _setup(self, a, b, forward, backward, bends):
        """An interval's frames as (1, 3, H, W), its lookup basis and its plain error."""
        h, w = a.shape[:2]
        ta = a.permute(2, 0, 1).unsqueeze(0)
        tb = b.permute(2, 0, 1).unsqueeze(0)
        basis = self._basis(h, w, [forward, backward, *(bends or ())])
        return ta, tb, basis, self._local_error(ta, tb)

    def frames(self, lut: np.ndarray, exact: bool = False):
        """An on_device.DeviceFrames here: a flow render's frames and sums kept on this
        device, summed by ``integrate_tensors`` (``exact``: the reference render) or
        ``integrate_segments_tensors``."""
        from lexp.renderers.on_device import DeviceFrames

        return DeviceFrames(self.device, lut, self.integrate_tensors if exact else
                            self.integrate_segments_tensors, exact)

    def _basis(self, h: int, w: int, flows: list[np.ndarray]):
        """(F, H·W·2): the pixel grid and each (2, H, W) field, in grid_sample's
        coordinates (−1 … 1 across the image, align_corners=True), x and y interleaved."""
        torch = self.torch
        sx, sy = 2 / max(w - 1, 1), 2 / max(h - 1, 1)
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=self.device),
                                torch.arange(w, dtype=torch.float32, device=self.device),
                                indexing="ij")
        grid = torch.stack([xs * sx - 1, ys * sy - 1], dim=-1)
        scale = torch.tensor([sx, sy], dtype=torch.float32, device=self.device)
        fields = [grid] + [self._tensor(f).permute(1, 2, 0) * scale for f in flows]
        return torch.stack(fields).reshape(len(fields), -1)

    def _instants(self, ta, tb, basis, plain_error, times, bent: bool, look_a=None,
                  look_b=None):
        """Σ over the instants s in ``times`` of trust·((1−s)(A'−a) + s(B'−b)): (1, 3, H, W).
        A' and B' are looked up in ``look_a``/``look_b`` (default: a and b themselves;
        the segments' boxes otherwise)."""
        from lexp.renderers.interpolate import instant_weights

        torch = self.torch
        h, w = ta.shape[-2:]
        look_a = ta if look_a is None else look_a
        look_b = tb if look_b is None else look_b
        weights = np.float32([instant_weights(s, bent) for s in times])  # (K, 2, F)
        coords = torch.from_numpy(weights.reshape(-1, weights.shape[-1])).to(self.device) @ basis
        coords = coords.view(len(times), 2, h, w, 2)
        sample = torch.nn.functional.grid_sample
        count = len(times)
        from_a = sample(look_a.expand(count, -1, -1, -1), coords[:, 0], mode="bilinear",
                        padding_mode="border", align_corners=True)
        from_b = sample(look_b.expand(count, -1, -1, -1), coords[:, 1], mode="bilinear",
                        padding_mode="border", align_corners=True)
        trust = plain_error / (self._local_error(from_a, from_b) + plain_error + 1e-8)
        s = torch.tensor(list(times), dtype=torch.float32, device=self.device).view(-1, 1, 1, 1)
        from_a -= ta
        from_a *= 1 - s
        from_b -= tb
        from_b *= s
        from_a += from_b
        from_a *= trust
        return from_a.sum(dim=0, keepdim=True)

    def motion_box(self, image, vectors):
        """segments.motion_box on a (1, C, H, W) tensor along (2, H, W) ``vectors``
        (pixels; numpy or a tensor here): the same direct taps (bilinear) and doublings
        (bicubic)."""
        from lexp.renderers.segments import box_plan

        torch = self.torch
        vectors = self._tensor(vectors)
        longest = float(vectors.square().sum(dim=0).sqrt().max()) if vectors.numel() else 0.0
        taps, doublings = box_plan(np.float32([[[longest]], [[0.0]]]))
        if taps == 1 and doublings == 0:
            return image
        h, w = image.shape[-2:]
        grid = self._basis(h, w, [])[0].view(1, h, w, 2)
        scale = torch.tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)], dtype=torch.float32,
                             device=self.device)
        base = (vectors.permute(1, 2, 0) * scale / 2 ** doublings).unsqueeze(0)  # (1, H, W, 2)
        sample = torch.nn.functional.grid_sample
        offsets = torch.tensor([i + 0.5 - taps / 2 for i in range(taps)], dtype=torch.float32,
                               device=self.device).view(-1, 1, 1, 1)
        coords = grid + offsets * (base / taps)  # (taps, H, W, 2)
        out = torch.zeros_like(image)
        for first in range(0, taps, 4):  # a few taps a batch: memory stays a few images
            chunk = coords[first:first + 4]
            out += sample(image.expand(len(chunk), -1, -1, -1), chunk, mode="bilinear",
                          padding_mode="border", align_corners=True).sum(dim=0, keepdim=True)
        out /= taps
        for j in range(1, doublings + 1):
            step = base * 2.0 ** (j - 2)
            both = sample(out.expand(2, -1, -1, -1), torch.cat([grid - step, grid + step]),
                          mode="bicubic", padding_mode="border", align_corners=True)
            out = both.mean(dim=0, keepdim=True)
        return out

    def integrate_segments(self, a: np.ndarray, b: np.ndarray, forward: np.ndarray,
                           backward: np.ndarray, n: int, bends=None) -> np.ndarray:
        """segments.integrate_segments' sum (float32 H×W×3 numpy), here."""
        if n == 1:
            return a.copy()
        total = self.integrate_segments_tensors(self._tensor(a), self._tensor(b), forward,
                                                backward, n, bends)
        return total.cpu().numpy()

    def integrate_segments_tensors(self, a, b, forward, backward, n: int, bends=None):
        """segments.integrate_segments on H×W×3 tensors here (integrate_tensors' form)."""
        from lexp.renderers.segments import SHORT_TRAIL, segments_for

        torch = self.torch
        if n <= SHORT_TRAIL:  # the exact integral (segments.integrate_segments)
            return self.integrate_tensors(a, b, forward, backward, n, bends)
        h, w = a.shape[:2]
        with torch.no_grad():
            ta, tb, basis, plain_error = self._setup(a, b, forward, backward, bends)
            m = segments_for(n)
            box_a = self.motion_box(ta, self._tensor(forward) / m)
            box_b = self.motion_box(tb, self._tensor(backward) / m)
            departure = torch.zeros_like(ta)
            step = chunk_for(self.device.type, h, w, m)
            for first in range(0, m, step):
                times = [(k + 0.5) / m for k in range(first, min(m, first + step))]
                departure += self._instants(ta, tb, basis, plain_error, times,
                                            bends is not None, box_a, box_b)
            # n·mean − (b − a)/2, as segments.integrate_segments returns it
            total = departure * (n / m) + ta * (n / 2 + 0.5) + tb * (n / 2 - 0.5)
            return total.squeeze(0).permute(1, 2, 0)


def integrator_for(device_spec: str) -> TorchIntegrator | None:
    """Where a flow render synthesises its instants, from ``--device``: a TorchIntegrator
    on the GPU ``auto`` finds or ``cuda[:n]``/``mps`` names; None (OpenCV on the CPU) for
    ``cpu`` and for ``auto`` without a GPU. On a CPU this torch code is 1.8–2.3× slower
    than OpenCV's remap and blur (measured at 1280×720 and 480×270 on 2 cores), so the
    CPU keeps OpenCV; the tests run this code on the CPU against it."""
    from lexp import torch_env

    spec = (device_spec or "auto").strip().lower()
    if spec == "cpu" or (spec == "auto" and not torch_env.gpu_possible()):
        return None
    device = torch_env.resolve_device(spec)
    return None if device.type == "cpu" else TorchIntegrator(device)
