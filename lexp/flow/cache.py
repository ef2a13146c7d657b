"""The on-disk flow cache: compute each flow once, for every command that needs it.

Layout: ``CACHE/flow/KK/KEY/`` holds ``flow.npy`` (float16 (2, H, W): half the space of
float32, and ±0.03 px at 64 px of motion) and ``meta.json`` (shape, the sha256 of the
data, and what made it). ``KEY`` is the sha256 of everything that decides the flow:

- the clip's *content* (:func:`clip_id`): a sha256 of the file (or of every frame file),
  so a renamed or copied clip still hits, and an edited one misses. Hashing a large
  file costs about a second per GB, so digests are remembered by (path, size, mtime);
- the pair of frames (indices and direction), the estimator and its parameters (and
  its weights' hash, for learned ones), and the resolution.

Entries are written into a temp folder and renamed into place, so an entry is whole or
absent; two processes filling the same entry both succeed (the second rename finds the
first's entry and keeps it). A damaged entry (unreadable, or data that does not match
its sha256: checked as it is written or first read, and again whenever its data
file changes) is deleted on read and reported as a miss, never silently used. Reads touch
the entry's ``meta.json``, so :meth:`FlowCache.prune` can drop the least recently used
entries until the cache fits its size limit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from lexp.media import ClipSource
from lexp.paths import cache_dir, sha256_of

DEFAULT_MAX_BYTES = 2 << 30  # 2 GiB: a laptop's share (LEXP_FLOW_CACHE_GB changes it)


def max_cache_bytes() -> int:
    """The flow cache's size limit: ``LEXP_FLOW_CACHE_GB`` (GiB, a number) or 2 GiB."""
    text = os.environ.get("LEXP_FLOW_CACHE_GB", "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    try:
        gib = float(text)
    except ValueError:
        gib = -1.0
    if not (0 <= gib < 1 << 20):
        from lexp.errors import UsageError

        raise UsageError(f"LEXP_FLOW_CACHE_GB={text!r} is not a size in GiB",
                         hint="e.g. LEXP_FLOW_CACHE_GB=2 (0 keeps nothing)")
    return int(gib * (1 << 30))


HALF_SMALLEST_NORMAL = np.float32(2.0 ** -14)


def to_half(flow: np.ndarray) -> np.ndarray:
    """A (2, H, W) flow as float16, the way the cache stores it. Motion under 2^-14 px
    (float16's subnormals, far below anything a render can show) becomes 0 first: numpy
    converts subnormals one by one, and near-still DIS flows are full of them (a 720p flow
    took 60 ms to convert, 4 ms without them)."""
    flow = np.asarray(flow)
    if flow.dtype == np.float16:
        return flow
    return np.where(np.abs(flow) < HALF_SMALLEST_NORMAL, np.float32(0), flow).astype(np.float16)


# Every float16 value as float32: a table lookup is 4× numpy's own conversion (1.8 ms
# against 7 ms for a 720p flow on this 2-core CPU, which has no F16C path in numpy),
# and bit-exact.
_HALF_TO_FLOAT = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)


def from_half(flow: np.ndarray) -> np.ndarray:
    """A float16 flow as float32 (the same values as ``flow.astype(np.float32)``)."""
    return np.take(_HALF_TO_FLOAT, np.ascontiguousarray(flow).view(np.uint16))


class FlowCache:
    """Flows on disk, by key. ``hits``, ``misses`` and ``damaged`` (entries found broken,
    deleted, and counted as misses too) say what :meth:`get` found."""

    def __init__(self, root: Path | None = None, max_bytes: int | None = None) -> None:
        self.root = (root or cache_dir()) / "flow"
        self.max_bytes = max_cache_bytes() if max_bytes is None else max_bytes
        self.hits = self.misses = self.damaged = 0
        # Why entries cannot be written (a full disk, a read-only or misplaced cache), once
        # a write has failed; None while they can. A cache only saves time: flows are then
        # computed and used but not kept, and the caller says so.
        self.write_problem: str | None = None

    # ---------------------------------------------------------------- keys

    @staticmethod
    def key(clip: str, first: int, second: int, estimator: dict,
            size: tuple[int, int]) -> str:
        """The entry for the flow from frame ``first`` to ``second`` of a clip (by its id)."""
        spec = {"clip": clip, "pair": [first, second], "estimator": estimator,
                "size": list(size), "format": 1}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()

    def clip_id(self, source: ClipSource) -> str:
        """A content fingerprint of a clip (video file or frame files)."""
        parts = [self._remembered_digest(p) for p in source.paths]
        if len(parts) == 1:
            return parts[0]
        return hashlib.sha256("".join(parts).encode()).hexdigest()

    def _remembered_digest(self, path: Path) -> str:
        stat = path.stat()
        memo_key = hashlib.sha256(os.fsencode(path.resolve()) +
                                  f"|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
        memo = self.root / "fingerprints" / memo_key[:2] / memo_key
        with contextlib.suppress(OSError):
            text = memo.read_bytes().strip()  # bytes: a damaged memo may not be text at all
            if len(text) == 64 and all(c in b"0123456789abcdef" for c in text):
                return text.decode()
        digest = sha256_of(path).hexdigest()
        with contextlib.suppress(OSError):
            memo.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo.with_name(f"{memo.name}.{os.getpid()}.tmp")
            tmp.write_text(digest)
            os.replace(tmp, memo)
        return digest

    # ---------------------------------------------------------------- entries

    def _entry(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> np.ndarray | None:
        """The cached flow, float32 (2, H, W); None (a miss) if absent or damaged."""
        entry = self._entry(key)
        meta_path = entry / "meta.json"
        if not meta_path.exists():
            self.misses += 1
            return None
        try:
            meta = json.loads(meta_path.read_bytes())
            if not isinstance(meta, dict):  # e.g. null, a list: written by something else
                raise ValueError("meta.json is not an object")
            data_path = entry / "flow.npy"
            data = data_path.read_bytes()
            if not self._verified(entry, data_path, meta):
                if hashlib.sha256(data).hexdigest() != meta["sha256"]:
                    raise ValueError("checksum mismatch")
                self._remember_verified(entry, data_path, meta)
            import io

            flow = np.load(io.BytesIO(data), allow_pickle=False)
            if list(flow.shape) != meta["shape"] or flow.dtype != np.float16:
                raise ValueError("unexpected shape or dtype")
        except (OSError, ValueError, KeyError, TypeError):
            shutil.rmtree(entry, ignore_errors=True)  # damaged: recompute, never use
            self.misses += 1
            self.damaged += 1
            return None
        with contextlib.suppress(OSError):
            os.utime(meta_path)  # most recently used
        self.hits += 1
        return from_half(flow)

    def motion(self, key: str) -> dict | None:
        """What ``put`` was told of the flow's motion (its ``about["motion"]``) for a
        whole, checked entry, without reading the flow itself when its check is
        remembered; None (nothing counted) when the entry or that record is missing —
        ask :meth:`get`. A damaged entry is deleted and counted, as by ``get``."""
        entry = self._entry(key)
        meta_path = entry / "meta.json"
        try:
            meta = json.loads(meta_path.read_bytes())
            motion = meta.get("motion") if isinstance(meta, dict) else None
            data_path = entry / "flow.npy"
            if not isinstance(motion, dict) or not self._verified(entry, data_path, meta):
                return None  # get() reads, checks and remembers it
        except (OSError, ValueError):
            return None
        with contextlib.suppress(OSError):
            os.utime(meta_path)  # most recently used
        self.hits += 1
        return motion

    # A record's sha256 is checked once — as it is written, or on its first read if it
    # was written without the check — and remembered beside it (``verified``: the
    # checksum, the data file's size and mtime): reads compare those instead of hashing
    # the data again (a 720p flow: 5 ms of sha256 against 0.05 ms of stat). A file
    # rewritten in place changes its mtime, so it is hashed again.
    @staticmethod
    def _stamp(data_path: Path, meta: dict) -> str:
        stat = data_path.stat()
        return f"{meta['sha256']}|{stat.st_size}|{stat.st_mtime_ns}"

    def _verified(self, entry: Path, data_path: Path, meta: dict) -> bool:
        try:
            return (entry / "verified").read_text() == self._stamp(data_path, meta)
        except (OSError, UnicodeDecodeError):
            return False

    def _remember_verified(self, entry: Path, data_path: Path, meta: dict) -> None:
        with contextlib.suppress(OSError):
            tmp = entry / f".verified.{os.getpid()}.tmp"
            tmp.write_text(self._stamp(data_path, meta))
            os.replace(tmp, entry / "verified")

    def put(self, key: str, flow: np.ndarray, about: dict | None = None) -> None:
        """Store a (2, H, W) flow (as float16), atomically. If the cache cannot be
        written, sets :attr:`write_problem` and stores nothing more this run."""
        if self.write_problem is not None:
            return
        try:
            self._put(key, flow, about)
        except OSError as err:
            self.write_problem = (f"the flow cache in {self.root} cannot be written "
                                  f"({err.strerror or err}): flows were computed but not kept")

    def _put(self, key: str, flow: np.ndarray, about: dict | None) -> None:
        import io

        entry = self._entry(key)
        if entry.exists():
            return
        buf = io.BytesIO()
        np.save(buf, to_half(flow), allow_pickle=False)
        data = buf.getvalue()
        meta = {"shape": list(flow.shape), "sha256": hashlib.sha256(data).hexdigest(),
                "created": time.time(), **(about or {})}
        entry.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key[:8]}-", dir=entry.parent))
        try:
            (staging / "flow.npy").write_bytes(data)
            (staging / "meta.json").write_text(json.dumps(meta))
            # checked as written: its first read need not hash it (a rename keeps mtimes)
            (staging / "verified").write_text(self._stamp(staging / "flow.npy", meta))
            try:
                os.rename(staging, entry)
            except OSError:
                if not entry.exists():
                    raise
                # Another process committed the same entry first: theirs is as good.
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    # ---------------------------------------------------------------- size

    def entries(self) -> list[tuple[float, int, Path]]:
        """(last use, bytes, folder) of every committed entry."""
        found = []
        for meta in self.root.glob("??/*/meta.json"):
            if meta.parent.name.startswith("."):  # a staging folder, not an entry
                continue
            with contextlib.suppress(OSError):
                folder = meta.parent
                size = sum(f.stat().st_size for f in folder.iterdir())
                found.append((meta.stat().st_mtime, size, folder))
        return found

    def sweep_staging(self, older_than: float = 3600.0) -> None:
        """Remove staging folders left by processes killed mid-write (kill -9)."""
        cutoff = time.time() - older_than
        for folder in self.root.glob("??/.*"):
            with contextlib.suppress(OSError):
                if folder.is_dir() and folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)

    def prune(self, max_bytes: int | None = None) -> int:
        """Delete least recently used entries until the cache fits; returns bytes freed."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        self.sweep_staging()
        entries = sorted(self.entries())
        total = sum(size for _, size, _ in entries)
        freed = 0
        for _, size, folder in entries:
            if total - freed <= limit:
                break
            shutil.rmtree(folder, ignore_errors=True)
            freed += size
        return freed
