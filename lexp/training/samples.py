"""Training data for the generator: pairs of (a few frames in, the long exposure out).

Every clip is free training data (../shared/DESIGN.md §3): from a window of its dense
frames, the input is a few of them and the truth is the linear-light mean of them all.
Two cases, as the protocols score them:

- ``extrapolate``: the first 5 frames of the window in, the mean of 64 frames out;
- ``gap-fill``: 8 frames, every 8th, in; the mean of the 57 they span out.

A clip too short for a 64-frame window, but of at least ``MIN_FRAMES`` frames, still gives
extrapolate samples: the first 5 frames in, the mean of all its frames out (a shorter
exposure, which the evidence's context states). Many of Sky Timelapse's short videos and
of phone clips are under 64 frames; without this they would give nothing. Gap-fill keeps
its protocol shape: ``lexp render -m learned`` only acts past the clip's end.

Augmentations. At build time (each makes a new sample): time reversal (the window played
backwards) and speed (every 2nd frame of the clip, so motion is twice as fast). At batch
time: random crops and flips (a flip negates its flow component).

Sources (:func:`find_sources`): video files; folders of them (searched recursively); frame
folders, including the Sky Timelapse layout ``sky_train/<video>/<clip>/*.jpg`` (every
folder of at least ``MIN_FRAMES`` images is one clip); and ``synthetic:N`` — N scenes the
project generates with known motion (:func:`synthetic_scene`: moving lights, drifting
textures, water-like noise).

Each clip is read at the generator's work size, and its samples (``lexp.renderers.learned.Capture``
evidence plus the truth) are cached on disk (:mod:`lexp.training.sample_cache`) under
``<cache>/train-data`` keyed
by the file's name, size and mtime and the build settings, so a second run starts at once.
Entries are named by ``DATA_VERSION``; writing one deletes those of other versions. A
cached sample is a :class:`StoredSample`: its arrays are read when a batch needs them, and
the most recent stay in memory up to a budget, so a dataset larger than memory trains.

A sample is a dict of numpy arrays: ``frames`` T×3×H×W, ``flows`` T×2×H×W, ``candidates``
K×3×H×W, ``context`` (2,), ``truth`` 3×H×W linear; plus ``clip`` and ``case`` strings. A
cache entry stores less than that (8-bit frames, the candidates that cannot be derived:
see "cache entries" below), and reading a sample back gives the same arrays to the bit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lexp import colour, media
from lexp.errors import InputError, UsageError
from lexp.inputs import clips_under
from lexp.renderers.learned import spread

DATA_VERSION = 7  # bump when the samples' content changes (invalidates the cache)
MIN_FRAMES = 24  # a frame folder with fewer images is not a clip; nor is a shorter window
CASES = {  # case: (input offsets from the window start, frames averaged into the truth)
    "extrapolate": (list(range(5)), 64),
    "gap-fill": (list(range(0, 57, 8)), 57),
}
WINDOW_STEP = 32  # frames between window starts in one clip
SPEEDS = (1, 2)  # build-time speed augmentation: every s-th frame
SYNTHETIC_KINDS = ("lights", "drift", "water")
SYNTHETIC_FRAMES = 160  # frames per generated scene


@dataclass(frozen=True)
class Source:
    """One training clip."""

    name: str  # shown in logs, and what the validation split is made by
    kind: str  # video | frames | synthetic
    path: Path | None  # the file or folder; None for synthetic
    seed: int = 0  # synthetic: the scene's seed


def find_sources(specs: list[str]) -> list[Source]:
    """Clips from the ``--data`` arguments (see the module docstring)."""
    found: list[Source] = []
    for spec in specs:
        if spec.startswith("synthetic:"):
            try:
                count = int(spec.split(":", 1)[1])
            except ValueError:
                count = -1
            if count < 1:  # what the user typed, not a clip: a usage error (exit 2)
                raise UsageError(f"--data {spec!r}: synthetic:N takes a whole number of "
                                 "scenes, at least 1", hint="e.g. synthetic:24")
            found += [Source(f"synthetic-{SYNTHETIC_KINDS[i % 3]}-{i}", "synthetic", None, i)
                      for i in range(count)]
            continue
        path = Path(spec).expanduser()
        media.refuse_special_file(path)
        if path.is_file():
            if not media.is_video(path):
                raise InputError(f"{path} is not a video", hint="give videos or folders")
            found.append(Source(path.stem, "video", path))
        elif path.is_dir():
            found += [Source(c.name, c.kind, c.paths[0] if c.kind == "video" else
                             c.paths[0].parent) for c in clips_under(path, MIN_FRAMES)]
        else:
            raise InputError(f"no such file or folder: {spec}")
    if not found:
        raise InputError("no training clips found in " + ", ".join(specs),
                         hint="give videos, folders of videos or frames, or synthetic:N")
    names = [s.name for s in found]
    if len(set(names)) != len(names):  # names pick the validation split: keep them unique
        found = [Source(f"{s.name}#{i}", s.kind, s.path, s.seed) for i, s in enumerate(found)]
    return found


# --------------------------------------------------------------------------- frames

def read_frames(source: Source, work_size: int, limit: int) -> tuple[list[np.ndarray], float]:
    """At most ``limit`` uint8 RGB frames at the work size, and the frame rate."""
    import cv2

    from lexp.renderers.learned import work_scale

    if source.kind == "synthetic":  # 160 frames: 16 samples, enough for one scene
        return synthetic_scene(SYNTHETIC_KINDS[source.seed % 3], source.seed,
                               frames=min(limit, SYNTHETIC_FRAMES), size=work_size), 30.0
    if source.kind == "frames":
        paths = sorted((p for p in source.path.iterdir() if media.is_image(p)),
                       key=media.natural_key)[:limit]
        raw = (media.read_image_rgb8(p) for p in paths)
        fps = 30.0
    else:
        clip = media.open_clip(media.ClipSource(str(source.path), "video", (source.path,)))
        fps = clip.info.fps or 30.0
        raw = (f for _, f in clip.frames(0, limit))
    frames: list[np.ndarray] = []
    for rgb in raw:
        h, w = rgb.shape[:2]
        scale = work_scale(h, w, work_size)
        if scale < 1.0:
            rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                             interpolation=cv2.INTER_AREA)
        if frames and rgb.shape != frames[0].shape:
            break  # a clip that changes size mid-way: keep the part before
        frames.append(np.ascontiguousarray(rgb))
    return frames, fps


def synthetic_scene(kind: str, seed: int, frames: int = 128, size: int = 320
                    ) -> list[np.ndarray]:
    """A generated clip with known motion, uint8 RGB, ``size`` px wide, 9:16 tall.

    ``lights``: the night street (lit cars, drifting clouds); ``drift``: two textured
    layers sliding at different steady velocities; ``water``: a static bank around a
    stream of noise that churns (three layers moving and evolving), whose long exposure is
    a smooth sheen — the case where motion is not steady."""
    from lexp import synthetic

    width, height = size, max(16, size * 9 // 16)
    rng = np.random.default_rng(10_000 + seed)
    if kind == "lights":  # the street needs room for its buildings: drawn at 160 px or more
        import cv2

        big = max(width, 160)
        return [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA)
                for f in synthetic.night_street(big, big * 9 // 16, frames, seed=seed)]
    noise = synthetic._smooth_noise
    if kind == "drift":
        back = noise(rng, height, width * 3, scale=rng.uniform(6, 20))
        front = noise(rng, height, width * 3, scale=rng.uniform(3, 10))
        tint_b, tint_f = rng.uniform(0.1, 0.8, 3), rng.uniform(0.2, 1.0, 3)
        vb, vf = rng.uniform(-1.5, 1.5), rng.uniform(-6, 6)
        band = slice(height // 3, height // 3 + max(4, int(height * rng.uniform(0.2, 0.4))))
        out = []
        for t in range(frames):
            img = _slide(back, width, vb * t)[..., None] * tint_b
            img[band] = _slide(front, width, vf * t)[band][..., None] * tint_f
            out.append(_encode(img))
        return out
    if kind == "water":
        bank = noise(rng, height, width, scale=rng.uniform(4, 12))[..., None] * \
            rng.uniform(0.1, 0.5, 3)
        layers = [(noise(rng, height, width * 3, scale=rng.uniform(2, 8)),
                   rng.uniform(0.5, 4), rng.uniform(0, 2 * np.pi)) for _ in range(3)]
        top, bottom = int(height * rng.uniform(0.2, 0.4)), int(height * rng.uniform(0.6, 0.9))
        out = []
        for t in range(frames):
            img = bank.copy()
            sheen = sum(_slide(layer, width, speed * t * np.cos(phase + 0.3 * t))
                        for layer, speed, phase in layers) / 3
            img[top:bottom] = (sheen[top:bottom, :, None] ** 2) * np.float32([0.7, 0.85, 1.0])
            out.append(_encode(img))
        return out
    raise ValueError(f"unknown synthetic scene {kind!r}")


def _slide(texture: np.ndarray, width: int, shift: float) -> np.ndarray:
    """A ``width``-wide view of a wider texture, shifted by ``shift`` px (wrapping)."""
    import cv2

    span = texture.shape[1] - width
    x = shift % span
    m = np.float32([[1, 0, x], [0, 1, 0]])
    return cv2.warpAffine(texture, m, (width, texture.shape[0]), flags=cv2.INTER_LINEAR |
                          cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)


def _encode(linear: np.ndarray) -> np.ndarray:
    return np.rint(colour.encode(np.asarray(linear, np.float32), "srgb") * 255).astype(np.uint8)


# --------------------------------------------------------------------------- samples

def windows(count: int, per_case: int | None = None
            ) -> Iterator[tuple[str, int, int, int, bool]]:
    """(case, start, length, speed, reversed) for every sample a clip of ``count`` frames
    gives: the window is frames start, start + speed, … (``length`` of them).

    ``per_case``: at most this many of each case, spread evenly over the clip's list
    (start, speed and direction all vary), so many clips fit a small machine's budget
    (a 384-frame clip otherwise gives 32 of each)."""
    for case, (_, truth_frames) in CASES.items():
        found = []
        for speed in SPEEDS:
            need = truth_frames * speed
            starts = list(range(0, count - need + 1, WINDOW_STEP * speed))
            length = truth_frames
            if not starts and case == "extrapolate":  # short clip: one shorter window
                length = -(-count // speed)  # frames 0, speed, … < count
                starts = [0] if length >= MIN_FRAMES else []
            found += [(case, start, length, speed, backwards)
                      for start in starts for backwards in (False, True)]
        keep = range(len(found)) if per_case is None else spread(len(found), per_case)
        yield from (found[i] for i in keep)


def make_sample(dense: list[np.ndarray], case: str, config, estimator) -> dict:
    """One sample from the dense frames of a window (already at the work size): the case's
    input frames in, the linear mean of all ``len(dense)`` frames out."""
    from lexp.config import RenderConfig, TimeSpec, Window
    from lexp.media import MemoryClip
    from lexp.renderers import flow as flow_render
    from lexp.renderers.learned import Capture

    offsets, truth_frames = CASES[case][0], len(dense)
    step = offsets[1] - offsets[0]
    sparse = [dense[i] if i in offsets else dense[0] for i in range(offsets[-1] + 1)]
    render = RenderConfig(method="flow", flow="dis",
                          window=Window(end=TimeSpec(float(offsets[-1] + 1), "f"), stride=step),
                          exposure=TimeSpec(float(truth_frames), "f"))
    capture = Capture(config)
    flow_render.render_flow(MemoryClip(sparse, 30.0), render, estimator, learner=capture)
    truth = np.zeros(dense[0].shape, np.float64)  # summed frame after frame, as np.mean
    for frame in dense[:truth_frames]:  # along the first axis does, in 1/6 of its time
        truth += _decoded(frame)
    truth /= truth_frames
    sample = {k: v.astype(np.float16) for k, v in capture.evidence.items()}
    sample["context"] = capture.evidence["context"].astype(np.float32)
    sample["truth"] = truth.transpose(2, 0, 1).astype(np.float16)
    # The blurs as a cache entry rebuilds them (from the stored render), so that a
    # sample is the same whether it was just built or read back.
    sample["candidates"][2:] = _blurs(sample["candidates"][0], config.blur_sigmas)
    return sample


def _blurs(render: np.ndarray, sigmas) -> np.ndarray:
    """The flow render (3×H×W, float16, work size) blurred by each sigma: the lexp
    candidates after the render and the mean (``lexp.renderers.learned.candidates``), S×3×H×W."""
    from lexp.renderers.extrapolate import gaussian_blur

    image = np.ascontiguousarray(render.transpose(1, 2, 0), dtype=np.float32)
    return np.stack([gaussian_blur(image, s).transpose(2, 0, 1) for s in sigmas]
                    ).astype(np.float16)


_SRGB32 = colour.decode_lut("srgb")  # code -> linear
_SRGB16 = _SRGB32.astype(np.float16)  # (strictly rising, as the codes)


def _decoded(codes: np.ndarray) -> np.ndarray:
    """8-bit sRGB codes (any shape) to linear float32, by OpenCV's table look-up (ten
    times as fast as numpy's indexing: reading a sample back is on the training loop's
    path)."""
    import cv2

    flat = codes.reshape(-1, codes.shape[-1])  # cv2.LUT takes a 2-D 8-bit image
    return cv2.LUT(flat, _SRGB32).reshape(codes.shape)


def _sha256_text(text: str) -> str:
    """The sha256 (hex) of text that may hold a file name's undecodable bytes (kept by
    Python as surrogates): they are hashed as the bytes they were."""
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


ARRAYS = ("frames", "flows", "candidates", "context", "truth")  # a sample's arrays


def split_by_clip(sources: list[Source], fraction: float) -> tuple[list[Source], list[Source]]:
    """(training, validation) sources: whole clips go to validation, never single frames.
    The choice is by a hash of the name, so it does not depend on the order given."""
    if fraction <= 0 or len(sources) < 2:
        return sources, []
    ranked = sorted(sources, key=lambda s: _sha256_text(s.name))
    count = min(len(sources) - 1, max(1, round(len(sources) * fraction)))
    chosen = {s.name for s in ranked[:count]}
    return ([s for s in sources if s.name not in chosen], [s for s in sources if s.name in chosen])
