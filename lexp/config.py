"""Frozen configuration records, saved with every output so any result can be reproduced.

Every field carries a one-line comment. ``to_dict()`` gives the JSON-ready form that
goes into the image metadata.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from lexp.errors import UsageError

STACK_METHODS: tuple[str, ...] = ("mean", "max", "min", "median")
# flow: integration along optical flow (lexp.renderers.flow); learned: the flow render refined
# by the trained generator (lexp.renderers.learned); auto: chosen per clip.
RENDER_METHODS: tuple[str, ...] = ("auto", "flow", "learned") + STACK_METHODS
# Photographers' names for the same operations.
METHOD_ALIASES = {"lighten": "max", "darken": "min", "average": "mean"}
IMAGE_FORMATS: tuple[str, ...] = ("jpeg", "png", "tiff")
ALIGN_MODELS: tuple[str, ...] = ("similarity", "homography")
ALIGN_BORDERS: tuple[str, ...] = ("crop", "fill")
STILL_BELOW_PX = 0.5  # keep-sharp's default: still = moving less than this per frame


def guide_direction(text: str) -> tuple[str, float | int | None]:
    """--motion-guide: ("flow", None), ("quantise", 4 or 8) for 4way/8way, or
    ("angle", radians).

    Angles are in degrees, counter-clockwise from pointing right, as on a compass rose
    drawn on the picture: 0 = right, 90 = up, 270 (or -90) = down.
    """
    value = str(text).strip().lower().removesuffix("deg").removesuffix("°")
    if value == "flow":
        return "flow", None
    if value in ("4way", "8way"):
        return "quantise", int(value[0])
    try:
        degrees = float(value)
    except ValueError:
        raise UsageError(f"--motion-guide {text!r} is not flow, 4way, 8way or an angle",
                         hint="e.g. --motion-guide 270 (everything moves down)") from None
    if not math.isfinite(degrees):
        raise UsageError(f"--motion-guide {text!r} is not an angle")
    return "angle", math.radians(degrees)


MAX_TIME = {"f": 1e9, "s": 1e7}  # the largest time an option takes, per unit (~4 months)


DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:\d{1,3})?")


def check_device(spec: str) -> None:
    """A UsageError for a --device that lexp never takes, before any work (whether it is
    on this machine is asked of torch when a model runs)."""
    if not DEVICE_RE.fullmatch((spec or "auto").strip().lower()):
        raise UsageError(f"unknown device {spec!r}", hint="auto, cpu, cuda, cuda:N or mps")


@dataclass(frozen=True)
class TimeSpec:
    """A point in a clip: seconds (``2.5``, ``2.5s``) or a frame number (``48f``)."""

    value: float  # seconds, or a frame number when unit == "f"
    unit: str  # "s" or "f"

    @classmethod
    def parse(cls, text: str, option: str) -> TimeSpec:
        m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|f)?\s*", str(text))
        if not m:
            raise UsageError(
                f"{option} {text!r} is not a time",
                hint="use seconds (2.5 or 2.5s) or a frame number (48f)",
            )
        unit = m.group(2) or "s"
        value = float(m.group(1))
        if value > MAX_TIME[unit]:  # no clip is that long; as an int it would overflow
            raise UsageError(f"{option} {text!r} is longer than lexp can use",
                             hint=f"at most {MAX_TIME['f']:.0e} frames or "
                                  f"{MAX_TIME['s']:.0e} seconds")
        if unit == "f" and not value.is_integer():
            raise UsageError(f"{option} {text!r}: a frame number must be whole", hint="e.g. 48f")
        return cls(value, unit)

    def to_frame(self, fps: float | None, option: str) -> int:
        """The index of the first frame at or after this point (frame i sits at i/fps)."""
        if self.unit == "f":
            return int(self.value)
        if not fps:
            raise UsageError(
                f"{option} is in seconds but this clip has no frame rate",
                hint="give a frame number (e.g. 48f) or the rate with --fps",
            )
        # The epsilon keeps 2.0 s at 30 fps on frame 60 despite float rounding.
        return max(0, math.ceil(self.value * fps - 1e-6))

    def __str__(self) -> str:
        return f"{int(self.value)}f" if self.unit == "f" else f"{self.value:g}s"


def check_type(value: Any, kind: type, name: str, optional: bool = False) -> None:
    """A UsageError naming ``name`` when ``value`` is not a ``kind`` (int: an integer,
    float: any real number; never a bool, never text): the Python API takes settings
    as values, and "30" for fps failed deep inside as a TypeError."""
    import numbers

    if value is None and optional:
        return
    wanted = numbers.Integral if kind is int else numbers.Real
    if isinstance(value, bool) or not isinstance(value, wanted):
        what = "an integer" if kind is int else "a number"
        raise UsageError(f"{name}={value!r} must be {what}, not {type(value).__name__}",
                         hint=f"e.g. {name}=2" if kind is int else f"e.g. {name}=1.5")


@dataclass(frozen=True)
class Window:
    """Which frames of a clip take part: [start, end) then every stride-th, at most max_frames."""

    start: TimeSpec | None = None  # first frame (inclusive); None = the clip's start
    end: TimeSpec | None = None  # end point (exclusive); None = the clip's end
    stride: int = 1  # use every stride-th frame of the window
    max_frames: int | None = None  # stop after this many frames (None = no limit)

    def __post_init__(self) -> None:
        check_type(self.stride, int, "stride")
        check_type(self.max_frames, int, "max_frames", optional=True)
        if self.stride < 1:
            raise UsageError(f"--stride {self.stride} must be 1 or more")
        if self.max_frames is not None and self.max_frames < 1:
            raise UsageError(f"--max-frames {self.max_frames} must be 1 or more")

    @classmethod
    def from_options(cls, start: str | None, end: str | None, stride: int = 1,
                     max_frames: int | None = None) -> Window:
        """A window from the command line's --start/--end text (seconds or 48f)."""
        return cls(start=TimeSpec.parse(start, "--start") if start is not None else None,
                   end=TimeSpec.parse(end, "--end") if end is not None else None,
                   stride=stride, max_frames=max_frames)

    def frame_range(self, fps: float | None) -> tuple[int, int | None]:
        """(first index, end index or None) for a clip at ``fps``; end is exclusive."""
        first = self.start.to_frame(fps, "--start") if self.start else 0
        end = self.end.to_frame(fps, "--end") if self.end else None
        if end is not None and end <= first:
            raise UsageError(
                f"--end ({self.end}) is not after --start ({self.start or '0'})",
                hint="the window is [start, end): end must come later",
            )
        return first, end

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": str(self.start) if self.start else None,
            "end": str(self.end) if self.end else None,
            "stride": self.stride,
            "max_frames": self.max_frames,
        }


# --reject's rules (lexp.renderers.calibrate says what each measures).
REJECT_RULES = ("bright", "blur", "streaks")
WHITE_BALANCES = ("camera", "daylight", "auto")  # or a colour temperature: 3200, 5600K
KELVIN_RANGE = (1700, 25000)  # where the temperature's locus is known (lexp.colour)


def kelvin_of(white_balance: str) -> int | None:
    """The colour temperature a white balance names ('3200', '3200K', '3200k'), or None
    for a named one (:data:`WHITE_BALANCES`). Raises UsageError outside KELVIN_RANGE."""
    text = white_balance.strip().upper().removesuffix("K")
    if not text.isdigit():
        return None
    kelvin = int(text)
    if not KELVIN_RANGE[0] <= kelvin <= KELVIN_RANGE[1]:
        raise UsageError(f"white balance {white_balance} is outside "
                         f"{KELVIN_RANGE[0]}-{KELVIN_RANGE[1]} K",
                         hint="e.g. --white-balance 3200 (tungsten) or 5600 (daylight)")
    return kelvin


@dataclass(frozen=True)
class RawOptions:
    """How RAW frames are developed: at half size (``draft``), with which white balance
    (:data:`WHITE_BALANCES`, taken from the first frame for all)."""

    draft: bool = False
    white_balance: str = "camera"


@dataclass(frozen=True)
class RenderConfig:
    """Everything that decides the pixels of a rendered long exposure."""

    method: str = "mean"  # mean | max | min | median (stacking in linear light)
    window: Window = field(default_factory=Window)  # which frames of the clip are used
    fps: float | None = None  # frame rate for clips that carry none (image folders)
    transfer: str = "srgb"  # transfer function of the clip: srgb | rec709 | none
    ev: float = 0.0  # exposure compensation in stops (+1 doubles the light)
    tone: str = "clip"  # tone curve for highlights above 1: clip | soft | reinhard
    median_memory_mb: int = 512  # median keeps at most this many MB of frames (then samples)
    exposure: TimeSpec | None = None  # flow: exposure length (None = the window's length)
    flow: str = "auto"  # flow: the estimator (auto, dis, dis-fast, raft-small, ...)
    device: str = "auto"  # flow: where RAFT runs (auto, cpu, cuda[:n], mps)
    # flow: the reference render (flow and every instant at full size, a pixel apart): slow
    exact: bool = False
    align: str | None = None  # register frames to the first: similarity | homography | None
    align_border: str = "crop"  # aligned result: crop to the common area | fill the borders
    # auto (the method) aligns when the camera drifts (off: --no-align, to keep
    # a deliberate pan); only while ``align`` is None
    align_auto: bool = True
    # max: also over the instants between frames, along the flow (unbroken light trails);
    # None: where the gaps would show on the first frames (and no trail video is made)
    gap_fill: bool | None = None
    deflicker: bool = False  # match every frame's exposure in linear light
    timestamps: bool = True  # weigh frames by the time each covers (video pts, EXIF times)
    # blended in where still: a frame (first | last | TIME) or the frames' median
    keep_sharp: str | None = None
    still_below: float = STILL_BELOW_PX  # keep-sharp: still = moving less than this (px per frame)
    sharp_mask: str | None = None  # keep-sharp: a mask image, white = the sharp frame
    rear_curtain: bool = False  # blur plus the last frame as a flash at half strength
    motion_guide: str = "flow"  # extrapolation direction: flow | 4way | 8way | degrees
    checkpoint: str | None = None  # learned: a shipped name (lexp, seed) or a .pt file
    # learned: keep the flow render where the checkpoint measured below it (bench turns
    # this off to score the network itself)
    learned_fallback: bool = True
    raw_draft: bool = False  # RAW frames developed at half size (2×2 binned): previews
    # RAW frames' white balance, one for the whole clip, from its first frame: camera (its
    # as-shot) | daylight (the camera's daylight) | auto (grey world) | kelvin ('3200')
    white_balance: str = "camera"
    # Night-sky calibration (lexp.renderers.calibrate), before anything else: dark and
    # flat frames (files, folders or globs), hot pixels repaired, frames rejected by rule
    dark: tuple[str, ...] = ()
    flat: tuple[str, ...] = ()
    hot_pixels: bool = False
    reject: tuple[str, ...] = ()  # REJECT_RULES

    @property
    def raw(self) -> RawOptions:
        """How RAW frames are developed (lexp.media.camera_files)."""
        return RawOptions(self.raw_draft, self.white_balance)

    def __post_init__(self) -> None:
        from lexp.colour import TONES, TRANSFERS

        check_type(self.fps, float, "fps", optional=True)
        check_type(self.ev, float, "ev")
        check_type(self.median_memory_mb, int, "median_memory_mb")
        if isinstance(self.white_balance, int) and not isinstance(self.white_balance, bool):
            object.__setattr__(self, "white_balance", str(self.white_balance))  # kelvin
        if not isinstance(self.white_balance, str) or (
                self.white_balance not in WHITE_BALANCES and
                kelvin_of(self.white_balance) is None):
            raise UsageError(f"unknown white balance {self.white_balance!r}",
                             hint="choose one of: " + ", ".join(WHITE_BALANCES)
                             + ", or a temperature in kelvin (3200)")
        for name, value, choices in (("transfer", self.transfer, TRANSFERS),
                                     ("tone", self.tone, TONES)):
            if value != "auto" and value not in choices:
                raise UsageError(f"unknown {name} {value!r}",
                                 hint="choose one of: auto, " + ", ".join(choices))
        method = METHOD_ALIASES.get(self.method, self.method)
        if method not in RENDER_METHODS:
            raise UsageError(
                f"unknown method {self.method!r}",
                hint="choose one of: " + ", ".join(RENDER_METHODS + tuple(METHOD_ALIASES)),
            )
        if self.exposure is not None and self.exposure.value <= 0:
            raise UsageError("--exposure must be longer than 0", hint="e.g. 2s or 64f")
        object.__setattr__(self, "method", method)
        if self.align is not None and self.align not in ALIGN_MODELS:
            raise UsageError(f"unknown --align model {self.align!r}",
                             hint="similarity (shake) or homography (also tilt)")
        if self.align_border not in ALIGN_BORDERS:
            raise UsageError(f"unknown --align-border {self.align_border!r}", hint="crop or fill")
        if self.rear_curtain and self.keep_sharp is None:
            object.__setattr__(self, "keep_sharp", "last")
        if self.keep_sharp is not None and self.keep_sharp not in ("first", "last", "median"):
            self.keep_sharp_spec()
        if not (math.isfinite(self.still_below) and self.still_below >= 0):
            raise UsageError(f"--still-below {self.still_below} must be 0 or more")
        if (self.sharp_mask or self.still_below != STILL_BELOW_PX) and self.keep_sharp is None:
            raise UsageError("--sharp-mask and --still-below shape --keep-sharp",
                             hint="add --keep-sharp first, last or a time (2s, 48f)")
        guide_direction(self.motion_guide)
        if self.gap_fill is not None and method != "max":
            raise UsageError("--gap-fill and --no-gap-fill are for --method max",
                             hint="add -m max (lighten), or drop the option")
        if self.checkpoint is not None and method not in ("learned", "auto"):
            raise UsageError("--checkpoint is for --method learned (or auto, which uses "
                             "the generator past the clip's end where it measured better)",
                             hint="add -m learned, or drop --checkpoint")
        if self.fps is not None and not (self.fps > 0 and math.isfinite(self.fps)):
            raise UsageError(f"--fps {self.fps} must be a positive number")
        if not math.isfinite(self.ev) or abs(self.ev) > 20:
            raise UsageError(f"--ev {self.ev} is out of range", hint="use -20 to 20 stops")
        check_device(self.device)
        for name in ("dark", "flat", "reject"):  # lists from the API and the CLI alike
            value = getattr(self, name)
            if value is None:
                value = ()
            elif isinstance(value, str | os.PathLike):  # one path; rules as 'bright,blur'
                value = str(value).split(",") if name == "reject" else (value,)
            elif not isinstance(value, list | tuple) or \
                    not all(isinstance(v, str | os.PathLike) for v in value):
                raise UsageError(f"{name}={value!r} must be text or a list of it",
                                 hint='e.g. reject="bright,streaks"' if name == "reject"
                                 else f'e.g. {name}="{name}s/"')
            object.__setattr__(self, name, tuple(str(v).strip() for v in value if str(v)))
        if not isinstance(self.hot_pixels, bool):
            raise UsageError(f"hot_pixels={self.hot_pixels!r} must be True or False")
        if unknown := [r for r in self.reject if r not in REJECT_RULES]:
            raise UsageError(f"unknown --reject rule {unknown[0]!r}",
                             hint="choose from: " + ", ".join(REJECT_RULES))

    def keep_sharp_spec(self) -> TimeSpec:
        """--keep-sharp as a time (when it is not first or last)."""
        return TimeSpec.parse(self.keep_sharp, "--keep-sharp")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["window"] = self.window.to_dict()
        d["exposure"] = str(self.exposure) if self.exposure is not None else None
        return d


@dataclass(frozen=True)
class OutputConfig:
    """How the rendered image is written."""

    format: str | None = None  # jpeg | png | tiff; None = from the file extension
    bit_depth: int | None = None  # 8 or 16; None = the format's default (tiff: 16)
    quality: int = 95  # JPEG quality, 1-100
    comet: TimeSpec | None = None  # trail video: light fades with this half-life (None: builds)

    def __post_init__(self) -> None:
        if self.format is not None and self.format not in IMAGE_FORMATS:
            raise UsageError(
                f"unknown image format {self.format!r}", hint="choose jpeg, png or tiff"
            )
        if self.bit_depth not in (None, 8, 16, 32):
            raise UsageError(f"--bit-depth {self.bit_depth} must be 8, 16 or 32",
                             hint="32: a float TIFF in linear light, for editing")
        if not 1 <= self.quality <= 100:
            raise UsageError(f"--quality {self.quality} must be between 1 and 100")
        if self.comet is not None and self.comet.value <= 0:
            raise UsageError("--comet must be longer than 0", hint="e.g. 1s or 30f")


TRAIN_PRESETS: dict[str, tuple[int, int]] = {  # preset: (batch size, crop in work-size px)
    "cpu": (8, 96),
    "gpu-small": (16, 128),  # under 16 GB
    "gpu-medium": (32, 160),  # 16-40 GB
    "gpu-large": (64, 192),  # 40 GB and more (an H100's 80 GB)
}


TRAIN_CASES = ("extrapolate", "gap-fill")  # the sample cases (lexp.training.samples.CASES)
TRAIN_LOSSES = ("charbonnier", "psnr")  # lexp.training.losses.reconstruction_loss kinds


@dataclass(frozen=True)
class TrainConfig:
    """One training run of the generator (lexp.training.train); saved in its checkpoints."""

    data: tuple[str, ...] = ("synthetic:12",)  # clips, folders of clips or frames, synthetic:N
    run_dir: str = "runs/generator"  # checkpoints, metrics.jsonl and config.json go here
    arch: str = "lexp"  # lexp | seed (the original system, for comparison)
    steps: int = 2000  # optimiser steps (the budget)
    minutes: float | None = None  # wall-clock budget: stop (after a validation pass) past it
    preset: str = "auto"  # batch and crop: auto (from the device's memory) or a TRAIN_PRESETS name
    batch: int | None = None  # samples per step per process (None: from the preset)
    crop: int | None = None  # training crop in work-size pixels (None: from the preset)
    lr: float = 2e-3  # AdamW learning rate (cosine decay to 5 % over the steps)
    weight_decay: float = 1e-4  # AdamW weight decay
    ssim_weight: float = 0.2  # the structural term: weight of (1 - SSIM) next to Charbonnier
    perceptual_weight: float = 0.0  # VGG-16 feature L1 (needs `lexp download vgg16`)
    adversarial_weight: float = 0.0  # PatchGAN (pix2pix) adversarial term
    harm_weight: float = 0.0  # extra weight on what a sample loses against the flow render
    loss: str = "charbonnier"  # charbonnier (+ ssim_weight·(1 − SSIM)) | psnr (dB lost to flow)
    clip_grad: float = 1.0  # gradient norm clipping
    val_fraction: float = 0.2  # share of clips held out (whole clips) for validation
    windows_per_clip: int | None = None  # at most this many samples of each case per clip
    # The cases trained on. -m learned acts only past the clip's end, so by default the
    # network learns that case alone (gap-fill samples teach it one it never renders).
    cases: tuple[str, ...] = ("extrapolate",)
    init: str | None = None  # start from this checkpoint's weights (a file, lexp or seed)
    eval_every: int = 100  # steps between validation passes
    patience: int = 5  # stop after this many validation passes without improvement
    seed: int = 0  # RNG seed (each DDP process adds its rank)
    device: str = "auto"  # auto | cpu | cuda[:n] | mps
    amp: bool = True  # bfloat16 autocast on CUDA (ignored elsewhere)
    work_size: int = 320  # the generator's long side in pixels

    def __post_init__(self) -> None:
        if self.arch not in ("lexp", "seed"):
            raise UsageError(f"unknown --arch {self.arch!r}", hint="lexp or seed")
        if self.preset != "auto" and self.preset not in TRAIN_PRESETS:
            raise UsageError(f"unknown --preset {self.preset!r}",
                             hint="auto or one of: " + ", ".join(TRAIN_PRESETS))
        for name in ("steps", "eval_every", "patience", "work_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
        if self.windows_per_clip is not None and self.windows_per_clip < 1:
            raise UsageError("--windows-per-clip must be at least 1")
        if self.loss not in TRAIN_LOSSES:
            raise UsageError(f"unknown --loss {self.loss!r}", hint=" or ".join(TRAIN_LOSSES))
        unknown = [c for c in self.cases if c not in TRAIN_CASES]
        if unknown or not self.cases:
            raise UsageError(f"unknown --case {unknown[0]!r}" if unknown else
                             "--case needs at least one case",
                             hint="extrapolate or gap-fill (repeatable)")
        for name in ("batch", "crop"):
            value = getattr(self, name)
            if value is not None and value < (1 if name == "batch" else 16):
                raise UsageError(f"--{name} {value} is too small")
        if self.minutes is not None and not self.minutes > 0:
            raise UsageError("--minutes must be more than 0")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UsageError(f"--lr {self.lr} must be a positive number")
        if not 0 <= self.val_fraction < 1:  # (NaN fails this too)
            raise UsageError("--val-fraction must be in [0, 1)")
        for name in ("weight_decay", "ssim_weight", "perceptual_weight", "adversarial_weight",
                     "harm_weight", "clip_grad"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise UsageError(f"--{name.replace('_', '-')} {value} must be a number ≥ 0")
        if self.minutes is not None and not math.isfinite(self.minutes):
            raise UsageError(f"--minutes {self.minutes} must be a finite number")
        check_device(self.device)
        if not self.data:
            raise UsageError("no training data", hint="give clips, folders or synthetic:N")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["data"] = list(self.data)
        d["cases"] = list(self.cases)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["data"] = tuple(d.get("data", ()))
        if "cases" in d:
            d["cases"] = tuple(d["cases"])
        return cls(**d)
