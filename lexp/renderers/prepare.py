"""Frames on their way to a renderer: aligned, deflickered, timed; and the finishing
touches that need the whole clip (keep-sharp, exposure level, crop).

Every renderer (stacking and flow) reads its frames through a :class:`FrameStream`:

1. ``--align``: each frame is warped onto the reference (lexp.renderers.align); frames that cannot
   be registered are dropped and reported.
2. ``--deflicker``: each frame gets a gain in linear light (lexp.renderers.deflicker).
3. timestamps: each frame gets its time in frame periods and the span of time it stands
   for (lexp.timing). With evenly spaced frames, time = index and weight = the stride.
4. ``--keep-sharp``: the chosen sharp frame is kept, and a motion map is measured.

:meth:`FrameStream.finish` then applies, to the renderer's linear result: the
deflicker level, the keep-sharp composite, and the alignment crop, in that order.

Frames stay uint8 (16-bit sources: uint16) H×W×3 in whatever channel order the decoder
gave (every step here treats channels alike); times and weights are floats in frame
periods.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from lexp.config import RenderConfig
from lexp.renderers.result import RenderDetails, SharpStats


@dataclass
class Frame:
    """One frame ready to render."""

    index: int  # position in the clip (0-based)
    rgb: np.ndarray  # uint8 H×W×3, aligned when --align
    time: float  # when it was taken, in frame periods (= index without timestamps)
    weight: float  # frame periods it stands for in the exposure
    gain: float = 1.0  # deflicker's factor in linear light


@dataclass
class FramesUsed:
    """Which frames of the window went into a render, counted as they come."""

    count: int = 0
    first: int = -1  # the first one's index in the clip (-1: none yet)
    last: int = -1

    def add(self, index: int, on_progress=None, total: int | None = None) -> None:
        """Count frame ``index``, and tell ``on_progress(done, total)`` when given."""
        self.count += 1
        if self.first < 0:
            self.first = index
        self.last = index
        if on_progress is not None:
            on_progress(self.count, total)


@dataclass
class StreamNotes:
    """What the stream did, for messages and metadata."""

    warnings: list[str] = field(default_factory=list)
    details: RenderDetails = field(default_factory=RenderDetails)


class FrameStream:
    """Wraps an iterator of (index, uint8 frame); iterate it once for :class:`Frame` s.

    ``reused``: the iterator may refill one buffer for every frame, so anything kept
    past the next frame is copied.
    """

    def __init__(self, clip, config: RenderConfig, frames, lut: np.ndarray,
                 reused: bool = False) -> None:
        self.clip, self.config, self.frames = clip, config, frames
        self.lut, self.reused = lut, reused
        self.notes = StreamNotes()
        self.aligner = None
        if config.align:
            from lexp.renderers.align import Aligner

            self.aligner = Aligner(config.align, config.align_border)
        self.deflicker = None
        if config.deflicker:
            from lexp.renderers.deflicker import Deflicker

            self.deflicker = Deflicker(lut)
        self.motion = None
        self.sharp: tuple[int, np.ndarray, float] | None = None  # index, frame, gain
        self._sharp_target: int | str | None = None
        if config.keep_sharp:
            from lexp.renderers.sharp import MotionMeter

            # (the median's mask is measured in light, not by flow: sharp.agrees_mask)
            self.motion = MotionMeter() if config.still_below > 0 and \
                config.keep_sharp != "median" else None
            self._sharp_target = (
                config.keep_sharp if config.keep_sharp in ("first", "last", "median")
                else config.keep_sharp_spec().to_frame(clip.info.fps, "--keep-sharp"))
        self.median = None  # --keep-sharp median: a MedianStacker of every frame
        self.user_mask = None  # read before any frame, so a bad mask costs no render
        if config.sharp_mask:
            from lexp.renderers.sharp import user_mask

            self.user_mask = user_mask(config.sharp_mask, clip.info.height, clip.info.width)
        self.broken_times: list[int] = []  # frames whose timestamp went backwards

    @property
    def holds_frames(self) -> bool:
        """True when a frame is yielded only after the next one arrives (its time weight
        needs that one's time), so reused buffers are copied. The motion meter and the
        sharp frame keep copies of their own."""
        return self.config.timestamps

    @property
    def sharp_wanted(self) -> bool:
        return self._sharp_target is not None

    def __iter__(self) -> Iterator[Frame]:
        from lexp.timing import VoronoiWeights

        weights = VoronoiWeights(float(self.config.window.stride))
        # Frames held past the next one are copied into two alternating buffers: by the
        # time a buffer is refilled, the frame in it has been yielded and used (stackers
        # that keep frames never get reused buffers). Warm buffers copy in ~0.2 ms at
        # 720p, where a fresh array per frame costs page faults.
        ring: list[np.ndarray | None] = [None, None]
        slot = 0
        pending: Frame | None = None
        last_time = None
        for index, rgb in self.frames:
            if self.aligner is not None:
                warped = self.aligner.warp(index, rgb)
                if warped is None:
                    continue
                rgb = warped.copy() if warped is rgb and self.reused and self.holds_frames \
                    else warped
            elif self.reused and self.holds_frames:
                if ring[slot] is None or ring[slot].shape != rgb.shape:
                    ring[slot] = np.empty_like(rgb)
                np.copyto(ring[slot], rgb)
                rgb, slot = ring[slot], slot ^ 1
            gain = self.deflicker.gain(rgb) if self.deflicker is not None else 1.0
            time = self._time(index, last_time)
            last_time = time
            self._observe(index, rgb, time, gain)
            frame = Frame(index, rgb, time, float(self.config.window.stride), gain)
            if not self.config.timestamps:
                yield frame
                continue
            weight = weights.add(time)
            if pending is not None:
                pending.weight = weight
                yield pending
            pending = frame
        if pending is not None:
            pending.weight = weights.last()
            yield pending
        self._summarise()

    def _time(self, index: int, last: float | None) -> float:
        if not self.config.timestamps:
            return float(index)
        time = self.clip.frame_time(index)
        if time is None:
            return float(index)
        if last is not None and time <= last:  # a broken timestamp: assume the nominal gap
            self.broken_times.append(index)
            return last + self.config.window.stride
        return float(time)

    def _observe(self, index: int, rgb: np.ndarray, time: float, gain: float) -> None:
        if self.motion is not None:
            self.motion.add(time, rgb)
        target = self._sharp_target
        if target is None:
            return
        if target == "median":  # the still parts from every frame: noise averaged out
            if self.median is None:
                from lexp.renderers.stack import MedianStacker

                h, w = rgb.shape[:2]
                self.median = MedianStacker(h, w, self.lut, self.config.median_memory_mb)
            self.median.add(rgb.copy() if self.reused else rgb, gain=gain)
            self.sharp = ("median", rgb, gain)
            return
        if (target == "first" and self.sharp is None) or target == "last" or (
                isinstance(target, int) and self.sharp is None and index >= target):
            self.sharp = (index, rgb.copy() if self.reused else rgb, gain)

    def _summarise(self) -> None:
        if self.broken_times:
            self.notes.warnings.append(
                f"{len(self.broken_times)} frame(s) had a timestamp at or before the one "
                f"before (first: frame {self.broken_times[0]}); they were taken as evenly "
                "spaced")
        if self.aligner is not None:
            stats = self.aligner.stats
            if stats.skipped:
                shown = ", ".join(map(str, stats.skipped[:8])) + (
                    ", ..." if len(stats.skipped) > 8 else "")
                self.notes.warnings.append(
                    f"--align skipped {len(stats.skipped)} frame(s) that could not be "
                    f"registered: {shown}")
        if self.deflicker is not None:
            self.notes.details.deflicker = self.deflicker.describe()

    # ------------------------------------------------------------- after the render

    def level(self) -> float:
        """Deflicker's exposure level so far (1 without deflicker)."""
        return self.deflicker.level() if self.deflicker is not None else 1.0

    def finish(self, linear: np.ndarray) -> np.ndarray:
        """The renderer's float32 H×W×3 linear result -> level, keep-sharp, crop."""
        level = self.level()
        if level != 1.0:
            linear = linear * np.float32(level)
        if self.sharp_wanted:
            linear = self._keep_sharp(linear, level)
        if self.aligner is not None:
            box = self.aligner.crop_box()
            if box is not None:
                x, y, w, h = box
                linear = np.ascontiguousarray(linear[y:y + h, x:x + w])
            self.notes.details.align = self.aligner.stats
        return linear

    def crop_box(self) -> tuple[int, int, int, int] | None:
        return self.aligner.stats.crop if self.aligner is not None else None

    def _keep_sharp(self, linear: np.ndarray, level: float) -> np.ndarray:
        from lexp.renderers import sharp

        if self.sharp is None:
            from lexp.errors import InputError

            raise InputError(f"--keep-sharp {self.config.keep_sharp}: the window has no "
                             "such frame", hint="choose first, last, or a time inside the window")
        index, rgb, gain = self.sharp
        h, w = linear.shape[:2]
        frame = self.median.result() * np.float32(level) if self.median is not None else \
            self.lut[rgb] * np.float32(gain * level)
        feather = max(2.0, 0.01 * max(h, w))
        if self.median is not None:  # still: what only noise tells from the median
            mask = sharp.feathered(sharp.agrees_mask(linear, frame), feather)
        elif self.motion is not None:
            motion = sharp.upsample(self.motion.per_period((h, w)), h, w)
            mask = np.minimum(sharp.still_mask(motion, self.config.still_below),
                              sharp.unchanged_mask(frame, linear, self.config.transfer))
            mask = sharp.feathered(mask, feather)
        else:
            mask = np.zeros((h, w), np.float32)
        if self.user_mask is not None:
            mask = np.maximum(mask, self.user_mask)
        if self.config.rear_curtain:
            mask = np.maximum(mask, np.float32(sharp.REAR_CURTAIN_FLASH))
        self.notes.details.keep_sharp = SharpStats(index, round(float(mask.mean()), 3))
        return sharp.composite(linear, frame, mask)
