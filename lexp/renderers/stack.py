"""The stackers: the renderers that need only the frames themselves.

A renderer ("stacker") receives frames one at a time and returns a linear-light image:

- ``mean``   the long exposure proper: the average of the frames in linear light.
             Frames are decoded through a table (256 entries, 65536 for 16-bit
             frames: colour.linearise) and summed band by band (a
             band of rows stays in the CPU cache), in float32 blocks of at most 64
             frames that are folded into a float64 total, so precision does not depend
             on clip length. Memory: three H×W×3 arrays whatever the length.
- ``max`` / ``min`` (lighten / darken): the transfer curves are monotonic, so the
             brightest code value is also the brightest light. We keep a running
             max/min of code values and decode once at the end: exact, and the
             cheapest method.
- ``median`` the per-pixel median, in linear light (for an even count, the mean of the
             two middle values, taken in linear light). It needs the frames themselves;
             it keeps at most ``median_memory_mb`` of them. When the window holds more,
             it keeps an evenly spaced sample: every 2nd, then every 4th, ... frame.

Linear images are float32 H×W×3 in [0, ∞); :func:`finish` applies exposure, the tone
curve and the transfer function to give encoded values in [0, 1] for the writer.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from lexp import colour
from lexp.config import RenderConfig

ProgressCallback = Callable[..., None]

# Rows per band for the mean: ~32 rows of 720p float32 is about 0.5 MB, cache-sized.
_BAND_BYTES = 512 * 1024
# Frames summed in float32 before folding into the float64 total.
_BLOCK_FRAMES = 64


class Stacker:
    """Accumulates frames (uint8, or uint16, H×W×3 RGB) into a linear-light result.

    ``add(frame, weight, gain)``: ``weight`` is the time the frame stands for (frame
    periods; only the mean weighs time, the others are order statistics), ``gain`` a
    factor in linear light (deflicker).
    """

    #: True if the stacker keeps references to the frames it is given.
    keeps_frames = False

    def __init__(self, height: int, width: int, lut: np.ndarray) -> None:
        self.height, self.width, self.lut = height, width, lut
        self.count = 0

    def add(self, frame: np.ndarray, weight: float = 1.0, gain: float = 1.0) -> None:
        raise NotImplementedError

    def result(self) -> np.ndarray:
        """The stacked image: float32 H×W×3 linear light."""
        raise NotImplementedError


class MeanStacker(Stacker):
    def __init__(self, height, width, lut):
        super().__init__(height, width, lut)
        self.total: np.ndarray | None = None  # float64, from the first fold on
        self.block = np.zeros((height, width, 3), np.float32)
        self.block_count = 0
        self.weight = 0.0
        self.band = max(1, _BAND_BYTES // (width * 3 * 4))
        self.scratch = np.empty((self.band, width, 3), np.float32)

    def add(self, frame, weight=1.0, gain=1.0):
        import cv2

        lut, band, block, scratch = self.lut, self.band, self.block, self.scratch
        factor = weight * gain
        for top in range(0, self.height, band):
            rows = frame[top:top + band]
            linear = scratch[: rows.shape[0]]
            colour.linearise(rows, lut, out=linear)
            target = block[top:top + band]
            if factor == 1.0:
                cv2.add(target, linear, dst=target)
            else:
                cv2.scaleAdd(linear, factor, target, dst=target)
        self.count += 1
        self.weight += weight
        self.block_count += 1
        if self.block_count == _BLOCK_FRAMES:
            self._fold()

    def _fold(self):
        if self.total is None:
            self.total = self.block.astype(np.float64)
        else:
            self.total += self.block
        self.block.fill(0)
        self.block_count = 0

    def result(self):
        if self.total is None:  # one block: float32 holds its sum exactly enough
            return self.block / np.float32(self.weight)
        if self.block_count:
            self._fold()
        return (self.total / self.weight).astype(np.float32)

    def state(self) -> dict:
        """What resuming needs (lexp.follow's checkpoints): the mean so far as float32
        (its precision, 1e-7, is far below the 1/1000 a resumed exposure must match;
        half the size of the float64 sum) and the weight and count behind it."""
        return {"mean": self.result(), "weight": self.weight, "count": self.count}

    def restore(self, state: dict) -> None:
        """Continue from :meth:`state`'s record."""
        self.weight, self.count = float(state["weight"]), int(state["count"])
        self.total = state["mean"].astype(np.float64) * self.weight
        self.block.fill(0)
        self.block_count = 0


class ExtremeStacker(Stacker):
    """max (lighten) or min (darken) on code values, decoded once at the end; in linear
    light from the first frame with a gain other than 1 (code values no longer order
    light then)."""

    def __init__(self, height, width, lut, pick_max: bool):
        super().__init__(height, width, lut)
        self.pick = np.maximum if pick_max else np.minimum
        self.best: np.ndarray | None = None  # uint8 code values, until a gain appears
        self.best_linear: np.ndarray | None = None

    def add(self, frame, weight=1.0, gain=1.0):
        if gain != 1.0 and self.best_linear is None and self.best is not None:
            self.best_linear = self.lut[self.best]
        if self.best_linear is not None or gain != 1.0:
            linear = self.lut[frame] * np.float32(gain)
            if self.best_linear is None:
                self.best_linear = linear
            else:
                self.pick(self.best_linear, linear, out=self.best_linear)
        elif self.best is None:
            self.best = frame.copy()
        else:
            self.pick(self.best, frame, out=self.best)
        self.count += 1

    def result(self):
        return self.best_linear if self.best_linear is not None else self.lut[self.best]

    def state(self) -> dict:
        """What resuming needs: the brightest (darkest) code values so far, or the light
        once a gain was seen, and the count."""
        linear = self.best_linear is not None
        return {"best": self.best_linear if linear else self.best, "linear": linear,
                "count": self.count}

    def restore(self, state: dict) -> None:
        """Continue from :meth:`state`'s record."""
        best = np.array(state["best"])
        self.best_linear, self.best = (best, None) if bool(state["linear"]) else (None, best)
        self.count = int(state["count"])


class MedianStacker(Stacker):
    keeps_frames = True

    def __init__(self, height, width, lut, memory_mb: int):
        super().__init__(height, width, lut)
        code_bytes = 1 if len(lut) <= 256 else 2  # 8- or 16-bit frames
        self.capacity = max(3, (memory_mb << 20) // (height * width * 3 * code_bytes))
        self.kept: list[np.ndarray] = []
        self.gains: list[float] = []
        self.sample_every = 1

    def add(self, frame, weight=1.0, gain=1.0):
        if self.count % self.sample_every == 0:
            self.kept.append(frame)
            self.gains.append(gain)
            if len(self.kept) > self.capacity:
                self.kept, self.gains = self.kept[::2], self.gains[::2]
                self.sample_every *= 2
        self.count += 1

    def result(self):
        from concurrent.futures import ThreadPoolExecutor

        n = len(self.kept)
        lo, hi = (n - 1) // 2, n // 2
        out = np.empty((self.height, self.width, 3), np.float32)
        gains = None if all(g == 1.0 for g in self.gains) else \
            np.array(self.gains, np.float32)[:, None, None, None]
        # Select a band of rows at a time so the temporary stack stays small (~64 MB per
        # worker); np.partition releases the GIL, so bands run on every core.
        rows = max(1, (64 << 20) // (n * self.width * 3 * (1 if gains is None else 4)))

        def band(top: int) -> None:
            stack = np.stack([f[top:top + rows] for f in self.kept])
            if gains is not None:  # deflickered: order light, not code values
                stack = self.lut[stack] * gains
            part = np.partition(stack, (lo, hi) if hi != lo else lo, axis=0)
            if gains is not None:
                out[top:top + rows] = 0.5 * (part[lo] + part[hi])
            else:
                out[top:top + rows] = 0.5 * (self.lut[part[lo]] + self.lut[part[hi]])

        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            list(pool.map(band, range(0, self.height, rows)))
        return out

    @property
    def frames_sampled(self) -> int:
        return len(self.kept)


def make_stacker(method: str, height: int, width: int, config: RenderConfig,
                 bits: int = 8) -> Stacker:
    """The stacker for ``method``, for frames of ``bits`` per channel (8 or 16)."""
    lut = colour.decode_lut(config.transfer, bits)
    if method == "mean":
        return MeanStacker(height, width, lut)
    if method in ("max", "min"):
        return ExtremeStacker(height, width, lut, pick_max=(method == "max"))
    if method == "median":
        return MedianStacker(height, width, lut, config.median_memory_mb)
    raise ValueError(f"not a stacking method: {method}")


def finish(linear: np.ndarray, config: RenderConfig) -> np.ndarray:
    """Linear light -> encoded float32 H×W×3 in [0, 1]: exposure, the output's primaries,
    tone curve, transfer (``config`` resolved by :func:`for_clip`)."""
    linear = colour.to_output_primaries(linear, config.transfer)
    if config.ev:
        linear = linear * np.float32(2.0 ** config.ev)
    return colour.encode(colour.tone_map(linear, config.tone),
                         colour.output_transfer(config.transfer))
