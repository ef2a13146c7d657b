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

Each clip is read at the generator's work size, and its samples (``lexp.learned.Capture``
evidence plus the truth, float16) are cached on disk under ``<cache>/train-data`` keyed
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
import io
import json
import os
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lexp import colour, media
from lexp.errors import InputError, LexpError, OutputError, UsageError

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
            found += _sources_in(path)
        else:
            raise InputError(f"no such file or folder: {spec}")
    if not found:
        raise InputError("no training clips found in " + ", ".join(specs),
                         hint="give videos, folders of videos or frames, or synthetic:N")
    names = [s.name for s in found]
    if len(set(names)) != len(names):  # names pick the validation split: keep them unique
        found = [Source(f"{s.name}#{i}", s.kind, s.path, s.seed) for i, s in enumerate(found)]
    return found


def _sources_in(folder: Path) -> list[Source]:
    out: list[Source] = []
    for directory, _, files in sorted(os.walk(folder)):
        images = [f for f in files if media.is_image(Path(f))]
        if len(images) >= MIN_FRAMES:
            rel = Path(directory).relative_to(folder)
            out.append(Source(str(rel) if str(rel) != "." else folder.name, "frames",
                              Path(directory)))
        out += [Source(Path(f).stem, "video", Path(directory) / f)
                for f in sorted(files, key=media.natural_key) if media.is_video(Path(f))]
    return out


# --------------------------------------------------------------------------- frames

def read_frames(source: Source, work_size: int, limit: int) -> tuple[list[np.ndarray], float]:
    """At most ``limit`` uint8 RGB frames at the work size, and the frame rate."""
    import cv2

    from lexp.learned import work_scale

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

def windows(count: int) -> Iterator[tuple[str, int, int, int, bool]]:
    """(case, start, length, speed, reversed) for every sample a clip of ``count`` frames
    gives: the window is frames start, start + speed, … (``length`` of them)."""
    for case, (_, truth_frames) in CASES.items():
        for speed in SPEEDS:
            need = truth_frames * speed
            starts = list(range(0, count - need + 1, WINDOW_STEP * speed))
            length = truth_frames
            if not starts and case == "extrapolate":  # short clip: one shorter window
                length = -(-count // speed)  # frames 0, speed, … < count
                starts = [0] if length >= MIN_FRAMES else []
            for start in starts:
                for backwards in (False, True):
                    yield case, start, length, speed, backwards


def make_sample(dense: list[np.ndarray], case: str, config, estimator) -> dict:
    """One sample from the dense frames of a window (already at the work size): the case's
    input frames in, the linear mean of all ``len(dense)`` frames out."""
    from lexp import flow_render
    from lexp.config import RenderConfig, TimeSpec, Window
    from lexp.learned import Capture
    from lexp.media import MemoryClip

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
    candidates after the render and the mean (``lexp.learned.candidates``), S×3×H×W."""
    from lexp.extrapolate import gaussian_blur

    image = np.ascontiguousarray(render.transpose(1, 2, 0), dtype=np.float32)
    return np.stack([gaussian_blur(image, s).transpose(2, 0, 1) for s in sigmas]
                    ).astype(np.float16)


# --------------------------------------------------------------------------- cache entries
#
# An entry (one clip's samples, an uncompressed .npz) keeps only what cannot be derived:
# the input frames as the 8-bit sRGB codes they were decoded from (linear float16 is
# twice the bytes and no more exact), and of the candidates only the flow render: the
# mean is the mean of the frames (stored too when the network sees fewer frames than the
# render did) and the blurs are recomputed. A sample takes 43 % less disk than in
# float16 throughout (3.4 MB instead of 6.0 MB, on average over the project's training
# clips at the default work size), which decides whether a large dataset (Sky
# Timelapse) fits on a training machine's disk; reading one back costs ~9 ms instead of
# ~3 (decoding and blurring), paid only when it is not among the samples in memory.

_SRGB32 = colour.decode_lut("srgb")  # code -> linear
_SRGB16 = _SRGB32.astype(np.float16)  # (strictly rising, as the codes)


def _packed(sample: dict) -> dict[str, np.ndarray]:
    """The arrays a cache entry stores for ``sample`` (see above)."""
    codes = np.searchsorted(_SRGB16, sample["frames"]).clip(0, 255).astype(np.uint8)
    if not np.array_equal(_SRGB16[codes], sample["frames"]):
        raise ValueError("a sample's frames are not decoded 8-bit sRGB")  # a lexp bug
    stored = {"frames": codes, "flows": sample["flows"], "render": sample["candidates"][0],
              "context": sample["context"], "truth": sample["truth"]}
    if not np.array_equal(_mean_of(_decoded(codes)), sample["candidates"][1]):
        stored["mean"] = sample["candidates"][1]
    return stored


def _unpacked(entry, index: int, sigmas) -> dict[str, np.ndarray]:
    """Sample ``index``'s arrays (``ARRAYS``) from an open cache entry."""
    linear = _decoded(entry[f"{index}/frames"])
    render = entry[f"{index}/render"]
    mean_key = f"{index}/mean"
    mean = entry[mean_key] if mean_key in entry.files else _mean_of(linear)
    return {"frames": linear.astype(np.float16), "flows": entry[f"{index}/flows"],
            "candidates": np.concatenate([render[None], mean[None], _blurs(render, sigmas)]),
            "context": entry[f"{index}/context"], "truth": entry[f"{index}/truth"]}


def _decoded(codes: np.ndarray) -> np.ndarray:
    """8-bit sRGB codes (any shape) to linear float32, by OpenCV's table look-up (ten
    times as fast as numpy's indexing: reading a sample back is on the training loop's
    path)."""
    import cv2

    flat = codes.reshape(-1, codes.shape[-1])  # cv2.LUT takes a 2-D 8-bit image
    return cv2.LUT(flat, _SRGB32).reshape(codes.shape)


def _mean_of(linear: np.ndarray) -> np.ndarray:
    """The mean of T×3×H×W linear float32 frames, float16, summed frame after frame as
    ``lexp.learned.Capture`` does (so it is the same to the bit)."""
    total = np.zeros(linear.shape[1:], np.float32)
    for frame in linear:
        total += frame
    return (total / np.float32(len(linear))).astype(np.float16)


# What reading a truncated, rewritten or vanished cache entry raises.
UNREADABLE_ENTRY = (OSError, ValueError, KeyError, zipfile.BadZipFile)


def entry_path(source: Source, config, cache_root: Path) -> Path:
    """Where the cache keeps ``source``'s samples (one archive per clip)."""
    return cache_root / f"{_VERSION_PREFIX}{_cache_key(source, config)}.npz"


def clip_samples(source: Source, config, *, cache_root: Path | None = None,
                 on_sample: Callable[[], None] | None = None) -> list[dict]:
    """Every sample of one clip, from the cache when it has them."""
    from lexp import flow, paths

    cached = entry_path(source, config, cache_root) if cache_root is not None else None
    if cached is not None and cached.is_file():
        try:
            return stored_samples(cached, source.name)
        except UNREADABLE_ENTRY:
            cached.unlink(missing_ok=True)  # a damaged entry is rebuilt
    need = max(truth for _, truth in CASES.values()) * max(SPEEDS)
    frames, _ = read_frames(source, config.work_size, need + WINDOW_STEP * 8)
    estimator = flow.make_estimator("dis")
    samples = []
    for case, start, length, speed, backwards in windows(len(frames)):
        dense = frames[start:start + length * speed:speed]
        if backwards:
            dense = dense[::-1]
        sample = make_sample(dense, case, config, estimator)
        sample["clip"], sample["case"] = source.name, case
        samples.append(sample)
        if on_sample is not None:
            on_sample()
    if cached is not None:
        buffer = io.BytesIO()
        arrays = {f"{i}/{k}": v for i, s in enumerate(samples) for k, v in _packed(s).items()}
        arrays.update({f"{i}/case": np.array(s["case"]) for i, s in enumerate(samples)})
        np.savez(buffer, count=np.array(len(samples)),
                 blur_sigmas=np.array(config.blur_sigmas, np.float64), **arrays)
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            paths.write_bytes_atomic(cached, buffer.getvalue())
        except (OSError, OutputError) as err:
            problem = err if isinstance(err, OutputError) else \
                paths.describe_os_error(err, cached.parent)
            raise OutputError(f"cannot cache the training samples: {problem.message}",
                              hint="free some space, or set LEXP_CACHE_DIR to a writable "
                              "folder on a disk with room (about 3 MB a sample)") from None
        prune_stale_samples(cache_root)
        _recent.forget(cached)  # what was read from a damaged entry of that name
        return stored_samples(cached, source.name)  # (what is built is not all kept)
    return samples


def build_samples(sources: list[Source], config, cache_root: Path, jobs: int = 1,
                  on_source: Callable[[Source, int], None] | None = None,
                  on_skip: Callable[[Source, LexpError], None] | None = None) -> list[list]:
    """Every source's samples (:func:`clip_samples`), in the order given. Sources not in
    the cache yet are built by ``jobs`` processes at once: a sample is a flow render and
    a clip gives dozens, so building is the long part of a first run on many clips (Sky
    Timelapse has tens of thousands). ``on_source(source, count)``: called as each
    source's samples are ready, built ones first, as they finish. A source that cannot
    be read (a damaged video among thousands) gives no samples and ``on_skip(source,
    error)``; when none can be read, the first error is raised. Any other error (the
    cache cannot be written: a full disk) stops the build."""
    announced: set[Source] = set()
    errors: dict[Source, LexpError] = {}
    missing = [s for s in sources if not entry_path(s, config, cache_root).is_file()]
    if jobs > 1 and len(missing) > 1:
        import multiprocessing

        # spawn, not fork: the parent may hold torch's threads, which a fork would copy
        # half-way through whatever they were doing.
        context = multiprocessing.get_context("spawn")
        pool = context.Pool(min(jobs, len(missing)), initializer=_builder_started)
        try:
            for source, outcome in pool.imap_unordered(
                    _build, [(s, config, cache_root) for s in missing]):
                if isinstance(outcome, InputError):
                    errors[source] = outcome
                elif isinstance(outcome, LexpError):
                    raise outcome
                else:
                    announced.add(source)
                    if on_source is not None:
                        on_source(source, outcome)
            pool.close()
        except BaseException:  # Ctrl-C, an error: stop the builders, each removing
            pool.terminate()  # the entry it was writing
            raise
        finally:
            pool.join()
    out = []
    for source in sources:
        samples = []
        if source not in errors:
            try:
                samples = clip_samples(source, config, cache_root=cache_root)
            except InputError as exc:
                errors[source] = exc
        if on_source is not None and source not in errors and source not in announced:
            on_source(source, len(samples))
        out.append(samples)
    if errors and len(errors) == len(sources):
        raise errors[sources[0]]
    for source, error in errors.items():
        if on_skip is not None:
            on_skip(source, error)
    return out


def _builder_started() -> None:
    """In each building process: one thread (there is a process per core), and Ctrl-C
    left to the parent. SIGTERM (the parent stopping the pool) keeps its default action,
    death on the spot, except inside :func:`_build`."""
    import signal

    import cv2

    cv2.setNumThreads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop_building(signum, frame) -> None:
    raise SystemExit(1)  # unwinding runs paths.atomic_write's clean-up of its temp file


def _build(job: tuple) -> tuple[Source, int | LexpError]:
    """One source's cache entry; (source, sample count or why it cannot be read).

    A SIGTERM while building unwinds (removing the entry being written) and then leaves
    with os._exit; outside this function it kills at once. A Python-level handler only
    runs between bytecodes of the main thread, so a builder that took SIGTERM while
    exiting or waiting in C could outlive it, and the parent's pool.terminate() waits
    for every builder: a stopped build hung about once in 25 runs on a loaded machine
    when the handler was installed for the builder's whole life."""
    import signal

    source, config, cache_root = job
    try:
        signal.signal(signal.SIGTERM, _stop_building)
        return source, len(clip_samples(source, config, cache_root=cache_root))
    except LexpError as exc:
        return source, exc
    except SystemExit:
        os._exit(1)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


_VERSION_PREFIX = f"v{DATA_VERSION}-"  # cache entries are named v<DATA_VERSION>-<key>.npz


def prune_stale_samples(cache_root: Path) -> None:
    """Delete the cached samples of other data versions (no lexp of this version can read
    them; each version of a dataset is gigabytes)."""
    for entry in cache_root.glob("*.npz"):
        if not entry.name.startswith(_VERSION_PREFIX):
            try:
                entry.unlink()
            except OSError:  # another process got there first, or it is not ours to remove
                pass


ARRAYS = ("frames", "flows", "candidates", "context", "truth")  # a sample's arrays


def stored_samples(path: Path, name: str) -> list[StoredSample]:
    """The samples in one cache entry, as references: only their cases and shapes are
    read now (from the archive's headers), their arrays when a batch needs them."""
    with np.load(path, allow_pickle=False) as archive:
        count = int(archive["count"])
        blurs = len(archive["blur_sigmas"])
        cases = [str(archive[f"{i}/case"]) for i in range(count)]
    shapes = []
    with zipfile.ZipFile(path) as archive:
        for i in range(count):
            shape = {key: _stored_shape(archive, f"{i}/{key}.npy")
                     for key in ("frames", "flows", "render", "context", "truth")}
            shape["candidates"] = (2 + blurs, *shape.pop("render"))
            shapes.append(shape)
    return [StoredSample(path, i, case, name, shape)
            for i, (case, shape) in enumerate(zip(cases, shapes, strict=True))]


def _stored_shape(archive: zipfile.ZipFile, member: str) -> tuple[int, ...]:
    with archive.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        return tuple(read_header(stream)[0])


class StoredSample(Mapping):
    """A cached sample (the dict of the module docstring), read from its clip's cache
    entry when one of its arrays is asked for. Training thus needs memory for the
    samples of one batch, not the dataset's: Sky Timelapse's samples are hundreds of
    gigabytes. Samples read recently stay in memory, up to :func:`memory_budget` bytes
    in all, so a dataset that fits is read from disk once."""

    def __init__(self, path: Path, index: int, case: str, clip: str,
                 shapes: dict[str, tuple[int, ...]]) -> None:
        self.path, self.index, self.shapes = path, index, shapes
        self.strings = {"case": case, "clip": clip}

    def __getitem__(self, key: str):
        if key in self.strings:
            return self.strings[key]
        if key not in self.shapes:
            raise KeyError(key)
        return _recent.read(self)[key]

    def __iter__(self) -> Iterator[str]:
        return iter((*ARRAYS, *self.strings))

    def __len__(self) -> int:
        return len(ARRAYS) + len(self.strings)


def memory_budget() -> int:
    """Bytes of recently read samples a training process keeps: half the machine's
    memory, shared by the processes ``torchrun`` starts on it (4 GiB where the memory
    cannot be read)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        total = 8 << 30
    return total // 2 // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


class _RecentSamples:
    """The arrays of the samples read most recently (least recently used go first), and
    a few open cache entries (an entry is one clip's archive)."""

    OPEN_ENTRIES = 16

    def __init__(self) -> None:
        self.arrays: OrderedDict[tuple, dict[str, np.ndarray]] = OrderedDict()
        self.bytes = 0
        self.budget: int | None = None  # memory_budget() when first needed
        self.entries: OrderedDict[Path, np.lib.npyio.NpzFile] = OrderedDict()

    def forget(self, path: Path) -> None:
        """Drop what was read from the entry at ``path`` (it is being replaced)."""
        for key in [k for k in self.arrays if k[0] == path]:
            self.bytes -= sum(a.nbytes for a in self.arrays.pop(key).values())
        entry = self.entries.pop(path, None)
        if entry is not None:
            entry.close()

    def read(self, sample: StoredSample) -> dict[str, np.ndarray]:
        key = (sample.path, sample.index)
        if key in self.arrays:
            self.arrays.move_to_end(key)
            return self.arrays[key]
        entry = self.entries.pop(sample.path, None)
        try:
            if entry is None:
                entry = np.load(sample.path, allow_pickle=False)
            arrays = _unpacked(entry, sample.index, entry["blur_sigmas"])
        except UNREADABLE_ENTRY as exc:
            if entry is not None:
                entry.close()
            # Deleted or rewritten under this run (another lexp version pruning the
            # cache, or a user clearing it): one line, not a traceback mid-training.
            raise InputError(f"the cached samples of {sample.strings['clip']} "
                             f"({sample.path.name}) changed during the run: {exc}",
                             hint="run again: missing samples are rebuilt; let one lexp "
                             "version use a cache at a time") from None
        self.entries[sample.path] = entry
        while len(self.entries) > self.OPEN_ENTRIES:
            self.entries.popitem(last=False)[1].close()
        if self.budget is None:
            self.budget = memory_budget()
        self.arrays[key] = arrays
        self.bytes += sum(a.nbytes for a in arrays.values())
        while self.bytes > self.budget and len(self.arrays) > 1:
            _, dropped = self.arrays.popitem(last=False)
            self.bytes -= sum(a.nbytes for a in dropped.values())
        return arrays


_recent = _RecentSamples()


def _cache_key(source: Source, config) -> str:
    if source.path is None:
        identity = f"synthetic:{source.seed}"
    else:
        stat = source.path.stat()
        identity = f"{source.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        if source.kind == "frames":
            files = sorted(p.name for p in source.path.iterdir() if media.is_image(p))
            identity += "|" + _sha256_text("\n".join(files))
    # Only what shapes a sample: both architectures train on the same cached samples.
    shaping = {k: config.to_dict()[k] for k in ("work_size", "max_frames", "blur_sigmas")}
    settings = json.dumps({"version": DATA_VERSION, "model": shaping, "cases": CASES,
                           "step": WINDOW_STEP, "speeds": SPEEDS, "shortest": MIN_FRAMES},
                          sort_keys=True)
    return _sha256_text(f"{identity}|{settings}")[:32]


def _sha256_text(text: str) -> str:
    """The sha256 (hex) of text that may hold a file name's undecodable bytes (kept by
    Python as surrogates): they are hashed as the bytes they were."""
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


# --------------------------------------------------------------------------- batches

class SampleSet:
    """Samples in memory, drawn as batches of random crops (grouped by frame count, so a
    batch stacks)."""

    def __init__(self, samples: list[dict]) -> None:
        self.samples = samples
        self.groups: dict[int, list[int]] = {}
        for i, s in enumerate(samples):
            self.groups.setdefault(_shape(s, "frames")[0], []).append(i)

    def __len__(self) -> int:
        return len(self.samples)

    def batch(self, rng: np.random.Generator, size: int, crop: int):
        """(model.Evidence, truth N×3×h×w linear) of ``size`` random crops and flips."""
        keys = sorted(self.groups)
        group = self.groups[keys[int(rng.integers(len(keys)))]]
        chosen = [self.samples[group[int(rng.integers(len(group)))]] for _ in range(size)]
        crop = min([crop] + [min(_shape(s, "truth")[1:]) for s in chosen])
        parts = [_augment(s, rng, crop) for s in chosen]
        return _stack(parts)

    def batches(self, size: int):
        """Every sample once, whole (no crop), in batches of samples of one shape."""
        shapes: dict[tuple, list[dict]] = {}
        for s in self.samples:
            shapes.setdefault((_shape(s, "frames"), _shape(s, "truth")), []).append(s)
        for group in shapes.values():
            for i in range(0, len(group), size):
                yield _stack([{k: s[k] for k in ARRAYS} for s in group[i:i + size]])


def _shape(sample, key: str) -> tuple[int, ...]:
    """An array's shape, without reading a stored sample's arrays."""
    return sample.shapes[key] if isinstance(sample, StoredSample) else sample[key].shape


def _augment(sample, rng: np.random.Generator, crop: int) -> dict:
    h, w = sample["truth"].shape[1:]
    y, x = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
    part = {k: sample[k][..., y:y + crop, x:x + crop] for k in
            ("frames", "flows", "candidates", "truth")}
    part["context"] = sample["context"]
    if rng.random() < 0.5:  # mirror left-right: x flow changes sign
        part = {k: (v[..., ::-1] if k != "context" else v) for k, v in part.items()}
        part["flows"] = part["flows"] * np.float16([-1, 1])[:, None, None]
    if rng.random() < 0.5:  # upside down: y flow changes sign
        part = {k: (v[..., ::-1, :] if k != "context" else v) for k, v in part.items()}
        part["flows"] = part["flows"] * np.float16([1, -1])[:, None, None]
    return part


def _stack(parts: list[dict]):
    import torch

    from lexp.model import Evidence

    def tensor(key):
        return torch.from_numpy(np.stack([np.ascontiguousarray(p[key]) for p in parts])).float()

    evidence = Evidence(tensor("frames"), tensor("flows"), tensor("candidates"),
                        tensor("context"))
    return evidence, tensor("truth")


def split_by_clip(sources: list[Source], fraction: float) -> tuple[list[Source], list[Source]]:
    """(training, validation) sources: whole clips go to validation, never single frames.
    The choice is by a hash of the name, so it does not depend on the order given."""
    if fraction <= 0 or len(sources) < 2:
        return sources, []
    ranked = sorted(sources, key=lambda s: _sha256_text(s.name))
    count = min(len(sources) - 1, max(1, round(len(sources) * fraction)))
    chosen = {s.name for s in ranked[:count]}
    return ([s for s in sources if s.name not in chosen], [s for s in sources if s.name in chosen])
