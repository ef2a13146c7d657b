"""Master darks and flats (:mod:`lexp.renderers.calibrate` says what each is for): made
from their frames in linear light, streamed (a few arrays whatever the number of
frames), cached in ``masters/`` in lexp's cache under their files' names, sizes and
times and the settings that develop them; and applied to a frame (:func:`apply_masters`)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lexp import colour
from lexp.config import RenderConfig
from lexp.errors import InputError, UsageError


@dataclass
class Masters:
    dark: np.ndarray | None = None  # float32 H×W×3 linear light
    flat: np.ndarray | None = None  # float32 H×W×3, each channel's mean in the centre 1
    hot: tuple[np.ndarray, np.ndarray] | None = None  # (ys, xs) of hot pixels


def apply_masters(linear: np.ndarray, masters: Masters) -> np.ndarray:
    """Linear light (float32 H×W×3, modified in place) minus the dark, over the flat,
    hot pixels repaired, nothing below 0."""
    if masters.dark is not None:
        linear -= masters.dark
        np.maximum(linear, 0, out=linear)
    if masters.flat is not None:
        linear /= masters.flat
    if masters.hot is not None and len(masters.hot[0]):
        import cv2

        ys, xs = masters.hot
        linear[ys, xs] = cv2.medianBlur(linear, 3)[ys, xs]
    return linear


def master(kind: str, names: tuple[str, ...], config: RenderConfig, transfer: str,
            lights, light_files=None) -> tuple[np.ndarray, int]:
    """The master dark (the mean without each pixel's extremes) or flat (the mean) of the
    frames ``names`` lists, in linear light, from lexp's cache when the same files made
    it before. ``lights``: the lights' ClipInfo; ``light_files``: their files, which a
    master may not share (``--dark`` naming the lights' folder would make them black)."""
    from lexp.inputs import resolve_inputs
    from lexp.media import open_clip

    try:
        sources = resolve_inputs(list(names))
    except InputError as err:
        raise InputError(f"--{kind}: {err.message}", hint=err.hint) from None
    files = [p for s in sources for p in s.paths]
    if light_files and {p.resolve() for p in files} & {p.resolve() for p in light_files}:
        raise UsageError(f"--{kind} {' '.join(names)} names the lights themselves",
                         hint=f"keep the {kind} frames in a folder of their own")
    key = _master_key(kind, files, config, transfer)
    cached = _cache_file(key)
    if cached is not None and cached.exists():
        try:
            with np.load(cached, allow_pickle=False) as data:
                made, count = data["master"], int(data["count"])
            _check_size(kind, made.shape, lights, names)
            os.utime(cached)  # recently used: pruned last
            return made, count
        except (OSError, ValueError, KeyError):
            pass  # damaged: made again
    total = brightest = darkest = None
    count = 0
    for source in sources:
        try:
            with open_clip(source, config.fps, config.raw) as clip:
                _check_size(kind, (clip.info.height, clip.info.width), lights, names)
                lut = colour.decode_lut(transfer, clip.info.bit_depth)
                for _, frame in clip.frames():
                    light = lut[frame]
                    extremes = kind == "dark"  # (a flat's mean keeps them)
                    if total is None:
                        total = light.astype(np.float64)
                        if extremes:
                            brightest, darkest = light.copy(), light.copy()
                    else:
                        total += light
                        if extremes:
                            np.maximum(brightest, light, out=brightest)
                            np.minimum(darkest, light, out=darkest)
                    count += 1
        except InputError as err:
            raise InputError(f"--{kind}: {err.message}", hint=err.hint) from None
    if not count:
        raise InputError(f"--{kind}: no frames in {' '.join(names)}")
    if kind == "dark" and count >= 3:  # each pixel's extremes out: a cosmic ray with them
        total -= brightest
        total -= darkest
        made = total / (count - 2)
    else:
        made = total / count
    made = made.astype(np.float32)
    if cached is not None:
        _save_master(cached, made, count)
    return made, count


def _check_size(kind: str, shape, lights, names) -> None:
    h, w = shape[:2]
    if (h, w) != (lights.height, lights.width):
        raise UsageError(f"the {kind} frames ({' '.join(names)}) are {w}x{h}, the lights "
                         f"({lights.name}) {lights.width}x{lights.height}",
                         hint=f"shoot the {kind} frames with the same camera, size and "
                              "orientation as the lights")


def normalised_flat(flat: np.ndarray, names) -> np.ndarray:
    """Each channel over its own mean in the frame's centre (a fifth of each side: the
    flat's light may be tinted), so the centre keeps its light and the corners are lifted
    to it; a flat with dead (zero) pixels refused: dividing by them would make them
    infinite."""
    h, w = flat.shape[:2]
    centre = flat[2 * h // 5:3 * h // 5 + 1, 2 * w // 5:3 * w // 5 + 1]
    means = centre.reshape(-1, 3).mean(axis=0)
    if (means <= 0).any():
        raise InputError(f"the flat ({' '.join(names)}) is black in a channel",
                         hint="a flat is an evenly lit white field: check the files")
    normalised = flat / means
    dead = normalised.min(axis=2) < 0.02
    if dead.any():
        raise InputError(f"the flat ({' '.join(names)}) has {int(dead.sum())} pixels at "
                         "zero, which would divide into infinity",
                         hint="a flat is an evenly lit white field, bright everywhere: "
                              "shoot it again (not saturated, not black anywhere)")
    return normalised.astype(np.float32)


def _master_key(kind: str, files: list[Path], config: RenderConfig, transfer: str) -> str:
    described = []
    for path in files:
        stat = path.stat()
        described.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    text = json.dumps([kind, described, transfer, config.raw_draft, config.white_balance,
                       MASTER_VERSION])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _cache_file(key: str) -> Path | None:
    from lexp.paths import cache_dir

    try:
        folder = cache_dir() / "masters"
        folder.mkdir(parents=True, exist_ok=True)
    except (OSError, InputError, UsageError):
        return None  # no cache: the master is made each time
    return folder / f"{key}.npz"


def _save_master(path: Path, master: np.ndarray, count: int) -> None:
    import contextlib

    from lexp.errors import OutputError
    from lexp.paths import atomic_write

    with contextlib.suppress(OutputError), atomic_write(path) as file:
        np.savez(file, master=master, count=np.array(count))
    # A camera's master is its frame size in float32 (288 MB at 24 MP): keep the few
    # used last.
    kept = sorted(path.parent.glob("*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in kept[MASTERS_KEPT:]:
        with contextlib.suppress(OSError):
            old.unlink()


MASTER_VERSION = 2  # how a master is made (2: a dark's extremes left out); in its key
MASTERS_KEPT = 8  # masters kept in the cache, the most recently used


def exposures_differ(darks: tuple[str, ...], lights) -> list[str]:
    """A warning when the darks' exposure (EXIF) is not the lights' (by over 10 %): a
    dark's thermal signal grows with its exposure, but it also holds the bias, which
    does not, so it is subtracted as it is, not scaled."""
    from lexp.inputs import resolve_inputs
    from lexp.media.camera_files import exposure_time

    dark_files = [p for s in resolve_inputs(list(darks)) for p in s.paths]
    if not lights or not dark_files:
        return []
    dark_s, light_s = exposure_time(dark_files[0]), exposure_time(lights[0])
    if dark_s is None or light_s is None or abs(dark_s / light_s - 1) <= 0.1:
        return []
    return [f"the dark frames were exposed {dark_s:g} s, the lights {light_s:g} s: the "
            "dark is subtracted as it is, not scaled (its bias would scale with it); "
            "shoot darks as long as the lights"]
