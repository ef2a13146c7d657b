"""Deflicker: per-frame exposure matching in linear light.

Time-lapses flicker: auto-exposure hunts, aperture blades stop down unevenly, clouds
pass. In linear light an exposure change is one factor for the whole frame, so each
frame gets one gain: the median over pixels of reference / frame (in logs, so a few
moving or changing pixels cannot pull it), where the reference is a running average of
the frames already corrected. Pixels near black (noise, quantisation) or near white
(clipped: their ratio is a lie) take no part.

Matching every frame to the running reference would leave the whole result at the
first frame's exposure; if that frame was itself a jump, everything would be off by it.
So the result is scaled at the end by :meth:`Deflicker.level`, the median of the
inverse gains: the exposure most frames had.
"""

from __future__ import annotations

import math

import numpy as np

from lexp.renderers.result import DeflickerStats

SAMPLES = 40_000  # pixels measured per frame (a regular subsample): plenty for a median
DARK, BRIGHT = 0.004, 0.85  # linear: usable pixels lie between these, in both images
REFERENCE_RATE = 0.25  # how fast the reference follows the (corrected) frames
MIN_PIXELS = 64  # fewer usable pixels than this: leave the frame alone


class Deflicker:
    """Gains for frames (uint8 H×W×3, any channel order) decoded through ``lut``."""

    def __init__(self, lut: np.ndarray) -> None:
        self.lut = lut.astype(np.float32)
        self.reference: np.ndarray | None = None
        self.gains: list[float] = []

    def gain(self, frame: np.ndarray) -> float:
        """The factor that brings this frame to the reference's exposure (linear)."""
        step = max(1, round(math.sqrt(frame.shape[0] * frame.shape[1] / SAMPLES)))
        sample = self.lut[frame[::step, ::step]].mean(axis=2)
        gain = 1.0
        if self.reference is not None and sample.shape == self.reference.shape:
            ref = self.reference
            usable = (sample > DARK) & (sample < BRIGHT) & (ref > DARK) & (ref < BRIGHT)
            if int(usable.sum()) >= MIN_PIXELS:
                gain = float(np.exp(np.median(np.log(ref[usable]) - np.log(sample[usable]))))
        corrected = sample * np.float32(gain)
        if self.reference is None or sample.shape != self.reference.shape:
            self.reference = corrected
        else:
            self.reference += REFERENCE_RATE * (corrected - self.reference)
        self.gains.append(gain)
        return gain

    def level(self) -> float:
        """The factor that takes the matched result back to the usual exposure."""
        if not self.gains:
            return 1.0
        return float(np.median([1.0 / g for g in self.gains]))

    def describe(self) -> DeflickerStats:
        stops = [abs(math.log2(g)) for g in self.gains]
        return DeflickerStats(len(self.gains), round(max(stops, default=0.0), 2),
                              sum(s > 0.05 for s in stops))
