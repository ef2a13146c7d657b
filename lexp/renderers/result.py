"""What every renderer returns — a long exposure in linear light, before encoding — and a
typed account of how it was made: :class:`RenderResult` and its :class:`RenderDetails`.

Its own module so that the renderers (stacking, flow, the generator), the frame
preparation steps (align, deflicker, keep-sharp) and the dispatcher over them share these
types without importing each other. ``RenderDetails.to_dict`` is the one place their JSON
shape (``--json`` "details", the settings embedded in image files) is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from lexp.config import RenderConfig
from lexp.media import ClipInfo


class Why(NamedTuple):
    """A reason ``auto`` gives: in a photographer's words, and the figures behind them
    (for ``--verbose`` and ``--json``)."""

    words: str
    figures: str = ""

    def __str__(self) -> str:
        return self.words + (f" ({self.figures})" if self.figures else "")

    def then(self, other: Why) -> Why:
        """This reason followed by ``other`` (the camera's, then the method's)."""
        return Why(f"{self.words}; {other.words}",
                   "; ".join(f for f in (self.figures, other.figures) if f))


@dataclass
class FlowStats:
    """What the flow renderer (and the generator riding on it) did."""

    estimator: str  # e.g. "dis-medium"
    pairs: int = 0  # intervals integrated
    samples: int = 0  # in-between instants synthesised
    extrapolated: float = 0.0  # frame periods added after the last frame
    steady: float = 0.0  # mean extrapolation weight (0 = stationary, 1 = all moving)
    cache_hits: int = 0
    cache_misses: int = 0
    integrated_on: str | None = None  # "cuda" or "mps" when the instants ran on a GPU
    # (lexp.renderers.interpolate_torch); None: on the CPU, through OpenCV

    def to_dict(self) -> dict:
        return {"flow": self.estimator, "pairs": self.pairs, "samples": self.samples,
                "extrapolated_frames": round(self.extrapolated, 3),
                "steady": round(self.steady, 3), "cache_hits": self.cache_hits,
                "cache_misses": self.cache_misses,
                **({"integrated_on": self.integrated_on} if self.integrated_on else {})}


@dataclass(frozen=True)
class GeneratorStats:
    """What ``-m learned``'s generator did."""

    checkpoint: str  # the checkpoint file's name
    arch: str  # "lexp" or "seed"
    blend: list[float] | None = None  # lexp: the mean weight of each candidate; None when
    # the generator was not needed (nothing to extrapolate) or not trusted (fallback)
    fallback: str | None = None  # why the flow render was kept although there was
    # something to extrapolate: the checkpoint measured below it (checkpoint.measured)

    def to_dict(self) -> dict:
        return {"checkpoint": self.checkpoint, "arch": self.arch,
                **({"blend": self.blend} if self.blend is not None else {}),
                **({"fallback": self.fallback} if self.fallback is not None else {})}


@dataclass
class AlignStats:
    """What ``--align`` did."""

    model: str
    aligned: int = 0  # frames registered (the reference included)
    skipped: list[int] = field(default_factory=list)  # indices that could not be registered
    max_shift_px: float = 0.0  # the largest corner displacement corrected
    crop: tuple[int, int, int, int] | None = None  # x, y, width, height of the kept area

    def to_dict(self) -> dict:
        return {"model": self.model, "aligned": self.aligned, "skipped": self.skipped,
                "max_shift_px": round(self.max_shift_px, 1),
                "crop": list(self.crop) if self.crop else None}


@dataclass(frozen=True)
class DeflickerStats:
    """What ``--deflicker`` did."""

    frames: int  # frames given a gain
    max_correction_stops: float  # the largest gain, in stops (log2)
    corrected_frames: int  # frames corrected by more than 0.05 stop

    def to_dict(self) -> dict:
        return {"frames": self.frames, "max_correction_stops": self.max_correction_stops,
                "corrected_frames": self.corrected_frames}


@dataclass(frozen=True)
class SharpStats:
    """What ``--keep-sharp`` did."""

    frame: int | str  # the frame kept sharp, or "median" (the frames' median)
    mask_mean: float  # the share of the image taken from it, in [0, 1]

    def to_dict(self) -> dict:
        return {"frame": self.frame, "mask_mean": self.mask_mean}


@dataclass
class RenderDetails:
    """How a render was made, beyond its settings: what each step did, and why ``auto``
    chose the method it chose. ``None`` for a step that did not run."""

    flow: FlowStats | None = None  # flow and learned renders
    generator: GeneratorStats | None = None  # learned renders
    align: AlignStats | None = None
    deflicker: DeflickerStats | None = None
    keep_sharp: SharpStats | None = None
    hdr: tuple[str, str] | None = None  # (transfer, tone) of an HDR clip's conversion
    trails: int | None = None  # max with gap filling: the instants taken between frames
    auto: Why | None = None  # auto's reason for its choice (None: the method was asked for)
    raw: bool = False  # the frames were RAW files, developed to linear light
    live_photo: str | None = None  # the Live Photo's still, when its video was rendered
    camera: dict | None = None  # the first frame's camera: make, model, lens (EXIF)
    calibration: object = None  # calibrate.CalibrationStats: darks, flats, hot, rejected

    def to_dict(self) -> dict:
        """The JSON shape: the flow figures at the top level, one key per other step."""
        out: dict = self.flow.to_dict() if self.flow is not None else {}
        if self.generator is not None:
            out.update(self.generator.to_dict())
        for key in ("align", "deflicker", "keep_sharp"):
            step = getattr(self, key)
            if step is not None:
                out[key] = step.to_dict()
        if self.hdr is not None:
            out["hdr"] = {"transfer": self.hdr[0], "tone": self.hdr[1]}
        if self.trails is not None:
            out["gap_fill_instants"] = self.trails
        if self.auto:
            out["auto"] = str(self.auto)
        if self.raw:
            out["raw"] = True
        if self.live_photo:
            out["live_photo"] = self.live_photo
        if self.camera:
            out["camera"] = self.camera
        if self.calibration is not None:
            out["calibration"] = self.calibration.to_dict()
        return out

    def summary(self) -> list[str]:
        """The details as an engineer reads them (``--verbose``): ['dis-medium',
        '15 frames extrapolated', 'chosen by auto: ...']."""
        parts = []
        one_frame = self.flow is not None and self.flow.pairs == 0  # nothing was estimated
        if self.flow is not None and not one_frame:
            parts.append(self.flow.estimator)
            if self.flow.integrated_on:
                parts.append(f"on {self.flow.integrated_on}")
        extrapolated = round(self.flow.extrapolated, 3) if self.flow is not None else 0
        if extrapolated:
            frames = f"{extrapolated:g} frame{'' if extrapolated == 1 else 's'}"
            parts.append(f"held still for {frames} more" if one_frame
                         else f"{frames} extrapolated")
        if self.align is not None:
            parts.append(f"aligned {self.align.aligned} frames" + (
                f", cropped to {self.align.crop[2]}×{self.align.crop[3]}"
                if self.align.crop else ""))
        if self.deflicker is not None:
            parts.append(f"deflickered {self.deflicker.corrected_frames} frames")
        if self.keep_sharp is not None:
            parts.append(_sharp_words(self.keep_sharp.frame))
        if self.hdr is not None:
            parts.append(f"{self.hdr[0].upper()} HDR to sRGB, tone {self.hdr[1]}")
        if self.trails is not None:
            parts.append(f"gaps filled along the flow ({self.trails} instants)")
        if self.generator is not None and self.generator.fallback:
            parts.append(self.generator.fallback)
        if self.calibration is not None:
            done = self.calibration
            parts += [f"{n} {what}" for n, what in (
                (done.dark_frames, "dark frames"), (done.flat_frames, "flat frames"),
                (done.hot_pixels, "hot pixels repaired"),
                (len(done.rejected), "frames rejected")) if n]
            if done.masked:
                parts.append(f"streaks masked in {len(done.masked)} "
                             f"frame{'s' if len(done.masked) > 1 else ''}")
        if self.auto and self.auto.figures:
            parts.append(f"auto: {self.auto.figures}")
        return parts


# What each method does to the frames, in a camera manual's words.
METHOD_WORDS = {
    "mean": "{n} stacked",
    "flow": "{n} traced along their motion",
    "learned": "{n} traced along their motion",
    "max": "light trails from {n}",
    "lighten": "light trails from {n}",
    "min": "the darkest of {n} (bright movers removed)",
    "darken": "the darkest of {n} (bright movers removed)",
    "median": "the median of {n} (passers-by removed)",
}
TONE_WORDS = {"clip": "highlights clipped", "soft": "highlights rolled off",
              "reinhard": "highlights compressed"}


def _sharp_words(frame: int | str) -> str:
    return "the frames' median kept where still" if frame == "median" else \
        f"frame {frame} kept sharp"


def in_words(method: str, frames: int, exposure_s: float | None, fps: float | None,
             details: RenderDetails) -> str:
    """What a render made, for the line it prints, in a photographer's words:
    '4.0 s exposure, 120 frames traced along their motion; the camera steadied (auto:
    stacked frames would show copies of what moves)'. ``exposure_s``: the time the
    exposure spans, ``fps`` the clip's rate (None without one). The engineering detail is
    :meth:`RenderDetails.summary`."""
    kind = "RAW frame" if details.raw else "frame"
    count = f"1 {kind}" if frames == 1 else f"{frames} {kind}s"
    what = METHOD_WORDS.get(method, method + " of {n}").format(n=count)
    if method in ("mean", "flow", "learned") and exposure_s:
        what = f"{_seconds(exposure_s)} exposure, {what}"
    if details.live_photo:
        what += f" of the Live Photo {details.live_photo}"
    parts = [what]
    flow = details.flow
    if flow is not None and flow.extrapolated:
        periods = round(flow.extrapolated, 3)
        more = _seconds(periods / fps) if fps else \
            f"{periods:g} frame{'' if periods == 1 else 's'}"
        by = " by the trained generator" if details.generator is not None and \
            details.generator.blend is not None else ""
        parts.append(f"held still for {more} more" if flow.pairs == 0
                     else f"its motion continued {more} past the last frame{by}")
    if details.trails is not None:
        parts.append("the gaps between frames filled along the motion")
    if details.align is not None:
        parts.append("the camera steadied" + (
            f" (cropped to {details.align.crop[2]}×{details.align.crop[3]})"
            if details.align.crop else ""))
    if details.deflicker is not None and details.deflicker.corrected_frames:
        parts.append(f"brightness evened over {details.deflicker.corrected_frames} frames")
    if details.keep_sharp is not None:
        parts.append(_sharp_words(details.keep_sharp.frame))
    if details.hdr is not None:
        parts.append(f"{details.hdr[0].upper()} HDR brought into sRGB, "
                     f"{TONE_WORDS.get(details.hdr[1], details.hdr[1])}")
    if details.generator is not None and details.generator.fallback:
        parts.append("the trained generator left out (it measured worse than tracing "
                     "the motion here)")
    if (done := details.calibration) is not None:
        steps = [what for n, what in ((done.dark_frames, "dark subtracted"),
                                      (done.flat_frames, "flat divided"),
                                      (done.hot_pixels, f"{done.hot_pixels} hot pixels "
                                                        "repaired")) if n]
        if done.rejected:
            steps.append(f"{len(done.rejected)} frame{'s' if len(done.rejected) > 1 else ''}"
                         " rejected")
        if done.masked:
            steps.append(f"{len(done.masked)} plane or satellite streak"
                         f"{'s' if len(done.masked) > 1 else ''} masked")
        if steps:
            parts.append(", ".join(steps))
    line = "; ".join(parts)
    if details.auto:
        line += f" (auto: {details.auto.words})"
    return line


def exposure_seconds(first_frame: int, last_frame: int, fps: float | None,
                     details: RenderDetails) -> float | None:
    """The time an exposure of frames ``first_frame``..``last_frame`` spans, from the
    first to the end of the last one's period, and past the clip's end where the motion
    was continued; None for a clip without a frame rate."""
    if not fps:
        return None
    periods = last_frame - first_frame + 1
    if details.flow is not None:
        periods += details.flow.extrapolated
    return periods / fps


def _seconds(s: float) -> str:
    """'4.0 s', '0.5 s', '1 min 30 s' for an exposure."""
    if s >= 60:
        return f"{int(s // 60)} min {round(s % 60):d} s"
    return f"{s:.1f} s" if s >= 0.1 else f"1/{round(1 / s)} s"


@dataclass
class RenderResult:
    """A rendered long exposure, before encoding."""

    linear: np.ndarray  # float32 H×W×3 linear light
    clip: ClipInfo  # the clip it came from
    frames_used: int  # frames that went into the result
    first_frame: int  # index of the first frame used
    last_frame: int  # index of the last frame used
    seconds: float  # wall time of decoding + rendering
    warnings: list[str] = field(default_factory=list)  # non-fatal problems noticed
    method: str = ""  # the method that ran (auto resolved), e.g. "flow"
    details: RenderDetails = field(default_factory=RenderDetails)
    # The settings it was made with: ``auto`` transfer and tone resolved for the clip, the
    # method as asked (``method`` says what ran). Set by render_clip.
    config: RenderConfig | None = None
