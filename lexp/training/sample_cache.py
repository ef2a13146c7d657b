"""Training samples on disk: building a clip's samples once (in builder processes), caching
them under ``<cache>/train-data``, and reading them back when a batch needs them, the
most recent kept in memory up to a budget (see :mod:`lexp.training.samples` for what a sample is).


An entry (one clip's samples, an uncompressed .npz) keeps only what cannot be derived:
the input frames as the 8-bit sRGB codes they were decoded from (linear float16 is
twice the bytes and no more exact), and of the candidates only the flow render: the
mean is the mean of the frames (stored too when the network sees fewer frames than the
render did) and the blurs are recomputed. A sample takes 43 % less disk than in
float16 throughout (3.4 MB instead of 6.0 MB, on average over the project's training
clips at the default work size), which decides whether a large dataset (Sky
Timelapse) fits on a training machine's disk; reading one back costs ~9 ms instead of
~3 (decoding and blurring), paid only when it is not among the samples in memory.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np

from lexp import media
from lexp.errors import InputError, LexpError, OutputError
from lexp.training.samples import (
    _SRGB16,
    ARRAYS,
    CASES,
    DATA_VERSION,
    MIN_FRAMES,
    SPEEDS,
    WINDOW_STEP,
    Source,
    _blurs,
    _decoded,
    _sha256_text,
    make_sample,
    read_frames,
    windows,
)


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


def _mean_of(linear: np.ndarray) -> np.ndarray:
    """The mean of T×3×H×W linear float32 frames, float16, summed frame after frame as
    ``lexp.renderers.learned.Capture`` does (so it is the same to the bit)."""
    total = np.zeros(linear.shape[1:], np.float32)
    for frame in linear:
        total += frame
    return (total / np.float32(len(linear))).astype(np.float16)


# What reading a truncated, rewritten or vanished cache entry raises.
UNREADABLE_ENTRY = (OSError, ValueError, KeyError, zipfile.BadZipFile)


def entry_path(source: Source, config, cache_root: Path, per_case: int | None = None
               ) -> Path:
    """Where the cache keeps ``source``'s samples (one archive per clip)."""
    return cache_root / f"{_VERSION_PREFIX}{_cache_key(source, config, per_case)}.npz"


def clip_samples(source: Source, config, *, cache_root: Path | None = None,
                 on_sample: Callable[[], None] | None = None,
                 per_case: int | None = None) -> list[dict]:
    """Every sample of one clip (at most ``per_case`` of each case: see
    ``samples.windows``), from the cache when it has them."""
    from lexp import flow, paths

    cached = entry_path(source, config, cache_root, per_case) if cache_root is not None \
        else None
    if cached is not None and cached.is_file():
        try:
            stored = stored_samples(cached, source.name)
            _mark_used(cached)
            return stored
        except UNREADABLE_ENTRY:
            cached.unlink(missing_ok=True)  # a damaged entry is rebuilt
    need = max(truth for _, truth in CASES.values()) * max(SPEEDS)
    frames, _ = read_frames(source, config.work_size, need + WINDOW_STEP * 8)
    estimator = flow.make_estimator("dis")
    samples = []
    for case, start, length, speed, backwards in windows(len(frames), per_case):
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
                  on_skip: Callable[[Source, LexpError], None] | None = None,
                  per_case: int | None = None) -> list[list]:
    """Every source's samples (:func:`clip_samples`), in the order given. Sources not in
    the cache yet are built by ``jobs`` processes at once: a sample is a flow render and
    a clip gives dozens, so building is the long part of a first run on many clips (Sky
    Timelapse has tens of thousands). ``on_source(source, count)``: called as each
    source's samples are ready, built ones first, as they finish. A source that cannot
    be read (a damaged video among thousands) gives no samples and ``on_skip(source,
    error)``; when none can be read, the first error is raised. Any other error (the
    cache cannot be written: a full disk) stops the build. ``per_case``: see
    :func:`clip_samples`."""
    announced: set[Source] = set()
    errors: dict[Source, LexpError] = {}
    missing = [s for s in sources
               if not entry_path(s, config, cache_root, per_case).is_file()]
    if jobs > 1 and len(missing) > 1:
        import multiprocessing

        # spawn, not fork: the parent may hold torch's threads, which a fork would copy
        # half-way through whatever they were doing.
        context = multiprocessing.get_context("spawn")
        pool = context.Pool(min(jobs, len(missing)), initializer=_builder_started)
        try:
            for source, outcome in pool.imap_unordered(
                    _build, [(s, config, cache_root, per_case) for s in missing]):
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
                samples = clip_samples(source, config, cache_root=cache_root,
                                       per_case=per_case)
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

    source, config, cache_root, per_case = job
    try:
        signal.signal(signal.SIGTERM, _stop_building)
        return source, len(clip_samples(source, config, cache_root=cache_root,
                                        per_case=per_case))
    except LexpError as exc:
        return source, exc
    except SystemExit:
        os._exit(1)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


_VERSION_PREFIX = f"v{DATA_VERSION}-"  # cache entries are named v<DATA_VERSION>-<key>.npz
MAX_CACHE_BYTES = 20 << 30  # 20 GiB (as the flow cache): past it, least recently used go
RECENT_USE_S = 3600.0  # an entry used this recently is kept: another run may be reading it
#                        (a training run marks its entries at every validation pass)


def _mark_used(entry: Path) -> None:
    """Record a use of a cache entry (its mtime), for :func:`prune_least_recent`."""
    with contextlib.suppress(OSError):  # a read-only cache is still a cache
        os.utime(entry)


def entries_of(samples: list) -> set[Path]:
    """The cache entries that ``samples`` are read from (samples built in memory: none)."""
    return {s.path for s in samples if isinstance(s, StoredSample)}


def mark_in_use(samples: list) -> None:
    """Record a use of every cache entry that ``samples`` are read from (a running job
    calls this now and then, so that another job's :func:`prune_least_recent` leaves
    them alone even when they are all held in memory)."""
    for path in entries_of(samples):
        _mark_used(path)


def prune_least_recent(cache_root: Path, keep: set[Path], max_bytes: int
                       ) -> tuple[int, int]:
    """Delete the least recently used entries until the cache fits ``max_bytes``; returns
    (entries, bytes) deleted. Never ``keep`` (the running job's data, however large) nor
    an entry used in the last ``RECENT_USE_S`` (another run's, perhaps), so the cache can
    stay over its size while they are in use. Every experiment on other data or other
    settings leaves gigabytes behind; without this they would pile up for ever."""
    entries = []
    for entry in cache_root.glob(f"{_VERSION_PREFIX}*.npz"):
        with contextlib.suppress(OSError):  # gone meanwhile: another run pruned it
            stat = entry.stat()
            entries.append((stat.st_mtime, stat.st_size, entry))
    total = sum(size for _, size, _ in entries)
    cutoff = time.time() - RECENT_USE_S
    deleted = freed = 0
    for used, size, entry in sorted(entries):
        if total - freed <= max_bytes or used >= cutoff:
            break
        if entry in keep:
            continue
        with contextlib.suppress(OSError):
            entry.unlink()
            deleted, freed = deleted + 1, freed + size
    return deleted, freed


def prune_stale_samples(cache_root: Path) -> None:
    """Delete the cached samples of other data versions (no lexp of this version can read
    them; each version of a dataset is gigabytes)."""
    for entry in cache_root.glob("*.npz"):
        if not entry.name.startswith(_VERSION_PREFIX):
            try:
                entry.unlink()
            except OSError:  # another process got there first, or it is not ours to remove
                pass


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
                _mark_used(sample.path)  # in use: not to be pruned by another run
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


def _cache_key(source: Source, config, per_case: int | None = None) -> str:
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
                           "step": WINDOW_STEP, "speeds": SPEEDS, "shortest": MIN_FRAMES}
                          | ({"per_case": per_case} if per_case is not None else {}),
                          sort_keys=True)
    return _sha256_text(f"{identity}|{settings}")[:32]


