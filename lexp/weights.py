"""The registry of downloadable assets, and the cache they live in.

Every asset lexp can fetch is listed here with where it comes from, its size, its
checksum (a full sha256, or the prefix that torchvision publishes in its file names),
its licence and what uses it. Files land in ``CACHE/weights``, datasets are unpacked
into ``CACHE/datasets/NAME`` (see :mod:`lexp.paths` for ``CACHE``).

- :func:`ensure` downloads an asset (or finds it in the cache), from its own URL or a
  mirror (``--mirror`` / ``LEXP_MIRROR``: ``MIRROR/FILENAME``; the checksums still come
  from this registry). ``LEXP_OFFLINE=1`` never touches the network.
- :func:`import_file` takes a copy made elsewhere (``--from FILE``), verified first.
- :func:`path_for` is how the rest of lexp finds an asset: it verifies the file again
  (its sha256 against the one recorded when it was fetched) and raises an error naming
  the ``lexp download`` command to run when it is missing or damaged.

An organisation can add its own assets: ``LEXP_REGISTRY=/path/assets.json`` holds a
JSON list of objects with the fields of :class:`Asset`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from lexp import download
from lexp.errors import InputError, LexpError, UsageError
from lexp.paths import atomic_write, cache_dir, refuse_special_file, sha256_of


@dataclass(frozen=True)
class Asset:
    """One downloadable thing."""

    name: str  # what users type: lexp download NAME
    filename: str  # the file's name, in the cache and on a mirror
    url: str  # where it is published
    sha256: str | None  # full sha256, or a published prefix; None = pinned on first fetch
    size: int  # bytes, as published (0 = not published)
    licence: str  # the licence it is published under
    used_by: str  # what in lexp uses it
    kind: str = "file"  # "file", or "archive" (unpacked into CACHE/datasets/NAME)
    description: str = ""  # one line for --list

    def __post_init__(self) -> None:
        # A name and a file name become paths in the cache (and rmtree targets with
        # --force): each must be one plain path component, never "..", "/x" or "a/b".
        for what, value in (("name", self.name), ("filename", self.filename)):
            if not isinstance(value, str) or not _PLAIN_NAME.fullmatch(value):
                raise ValueError(f"{what} {value!r} is not a plain file name (letters, "
                                 "digits, '.', '_', '-'; not starting with '.')")
        if self.kind not in ("file", "archive"):
            raise ValueError(f"kind {self.kind!r} is not 'file' or 'archive'")
        if self.sha256 is not None and not (isinstance(self.sha256, str) and
                                            re.fullmatch(r"[0-9a-fA-F]{8,64}", self.sha256)):
            raise ValueError(f"sha256 {self.sha256!r} is not a hex digest (or a prefix of one)")
        if not isinstance(self.size, int) or self.size < 0:
            raise ValueError(f"size {self.size!r} is not a byte count")
        if not isinstance(self.url, str):
            raise ValueError(f"url {self.url!r} is not text")


_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


BUILTIN: tuple[Asset, ...] = (
    Asset("raft-small", "raft_small_C_T_V2-01064c6d.pth",
          "https://download.pytorch.org/models/raft_small_C_T_V2-01064c6d.pth",
          "01064c6d", 4_006_206, "BSD-3-Clause (torchvision)",
          "optical flow (RAFT small)",
          description="torchvision Raft_Small_Weights.C_T_V2 (Chairs + Things)"),
    Asset("raft-large", "raft_large_C_T_SKHT_V2-ff5fadd5.pth",
          "https://download.pytorch.org/models/raft_large_C_T_SKHT_V2-ff5fadd5.pth",
          "ff5fadd5", 21_106_981, "BSD-3-Clause (torchvision)",
          "optical flow (RAFT large)",
          description="torchvision Raft_Large_Weights.C_T_SKHT_V2 (+ Sintel, KITTI, HD1K)"),
    Asset("vgg16", "vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth",
          "397923af", 553_433_881, "BSD-3-Clause (torchvision; ImageNet-trained)",
          "training: the VGG-16 perceptual loss",
          description="VGG-16 ImageNet weights (torchvision VGG16_Weights.IMAGENET1K_V1)"),
    Asset("sky-timelapse", "sky_timelapse.zip",
          "https://drive.usercontent.google.com/download?id=1xWLiU-MBGN7MrsFHQm4_yXmfHBsMbJQo"
          "&export=download",
          None, 0, "research use (Xiong et al., CVPR 2018)",
          "training data for the generator", kind="archive",
          description="Sky Timelapse dataset (sky_train/, sky_test/), Google Drive"),
)


def registry() -> dict[str, Asset]:
    """Built-in assets plus those in ``LEXP_REGISTRY`` (a JSON list), by name."""
    assets = {a.name: a for a in BUILTIN}
    extra = os.environ.get("LEXP_REGISTRY")
    if extra:
        try:
            entries = json.loads(_read_registry(Path(extra)))
            if not isinstance(entries, list):
                raise ValueError("it is not a JSON list")
            known = {f.name for f in fields(Asset)}
            for number, entry in enumerate(entries, start=1):
                if not isinstance(entry, dict):
                    raise ValueError(f"entry {number} is not an object")
                try:
                    asset = Asset(**{k: v for k, v in entry.items() if k in known})
                except (TypeError, ValueError) as err:
                    raise ValueError(f"entry {number}: {err}") from None
                assets[asset.name] = asset
        except (OSError, ValueError, TypeError) as err:
            raise UsageError(f"LEXP_REGISTRY={extra} is not a readable list of assets: {err}",
                             hint="a JSON list of {name, filename, url, sha256, size, licence, "
                                  "used_by}") from None
    return assets


REGISTRY_MAX_BYTES = 1 << 20  # a list of assets is a few kB; more is not a registry


def _read_registry(path: Path) -> str:
    """The text of a registry file: a regular file of sane size only (a FIFO would block,
    /dev/zero would fill the memory). Raises ValueError or OSError to say why not."""
    import stat

    with open(path, "rb", opener=lambda p, flags: os.open(p, flags | os.O_NONBLOCK)) as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("it is not a regular file")
        data = fh.read(REGISTRY_MAX_BYTES + 1)
    if len(data) > REGISTRY_MAX_BYTES:
        raise ValueError(f"it is over {REGISTRY_MAX_BYTES // 1024} KiB")
    return data.decode("utf-8")


def get(name: str) -> Asset:
    assets = registry()
    if name not in assets:
        raise UsageError(f"no asset called {name!r}",
                         hint="lexp download --list shows them: " + ", ".join(assets))
    return assets[name]


def location(asset: Asset, cache: Path | None = None) -> Path:
    """Where the asset lives once fetched: a file, or a folder for archives."""
    root = cache or cache_dir()
    where = root / "datasets" / asset.name if asset.kind == "archive" else \
        root / "weights" / asset.filename
    return _inside(root, where)


def _inside(root: Path, path: Path) -> Path:
    """``path``, checked to lie under ``root`` once both are resolved (a second guard
    behind Asset's name check: nothing lexp writes or removes is outside its cache)."""
    real_root, real = root.resolve(), path.resolve()
    if real != real_root and real_root not in real.parents:
        raise UsageError(f"{path} is outside the lexp cache {root}",
                         hint="asset names and file names must be plain names")
    return path


def _digest_record(path: Path) -> Path:
    return path.with_name(f".{path.name}.sha256")


def is_cached(asset: Asset, cache: Path | None = None) -> bool:
    where = location(asset, cache)
    return where.is_dir() if asset.kind == "archive" else where.is_file()


def path_for(name: str, cache: Path | None = None) -> Path:
    """The cached asset, verified (sha256 again for files); raises with the fix if not."""
    return verified(name, cache)[0]


def verified(name: str, cache: Path | None = None) -> tuple[Path, str | None]:
    """(location, sha256) of a cached asset, checked again; the sha256 is None for
    unpacked archives. Raises an error naming the ``lexp download`` command otherwise."""
    asset = get(name)
    where = location(asset, cache)
    fetch_hint = f"run: lexp download {name}   (offline: lexp download {name} --from FILE)"
    if not is_cached(asset, cache):
        raise InputError(f"{name} is not in the lexp cache ({where})", hint=fetch_hint)
    if asset.kind == "file":
        actual = sha256_of(where).hexdigest()
        recorded = _digest_record(where)
        expected = recorded.read_text().strip() if recorded.exists() else asset.sha256
        try:
            download.check_digest(actual, expected or actual, f"cached {asset.filename}")
            if asset.sha256:
                download.check_digest(actual, asset.sha256, f"cached {asset.filename}")
        except download.ChecksumError:
            raise InputError(f"the cached {name} is damaged ({where})",
                             hint=f"run: lexp download {name} --force") from None
        return where, actual
    return where, None


def source_url(asset: Asset, mirror: str | None) -> str:
    """Where to fetch the asset: MIRROR/FILENAME, or its own URL; either must be http(s)."""
    import urllib.parse

    base = mirror or os.environ.get("LEXP_MIRROR")
    url = f"{base.rstrip('/')}/{asset.filename}" if base else asset.url
    try:
        parts = urllib.parse.urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        ok = False
    if not ok:
        what = f"--mirror {base}" if base else f"the URL of {asset.name} ({url})"
        raise UsageError(f"{what} is not an http:// or https:// address",
                         hint="e.g. --mirror https://files.example.org/lexp; a local file: "
                              f"lexp download {asset.name} --from FILE")
    return url


def ensure(name: str, *, cache: Path | None = None, mirror: str | None = None,
           force: bool = False, on_progress: Callable | None = None,
           on_retry: Callable[[str], None] | None = None,
           timeout: float = download.DEFAULT_TIMEOUT, retries: int = 5) -> tuple[Path, bool]:
    """Fetch an asset into the cache unless it is there. Returns (location, fetched)."""
    asset = get(name)
    where = location(asset, cache)
    if is_cached(asset, cache) and not force:
        return where, False
    url = source_url(asset, mirror)
    if os.environ.get("LEXP_OFFLINE", "") not in ("", "0"):
        raise LexpError(f"{name} is not in the cache and LEXP_OFFLINE is set",
                        hint=f"fetch {url} on a machine with a network, then: "
                             f"lexp download {name} --from FILE")
    hint = (f"no network? fetch {url} on another machine, then: "
            f"lexp download {name} --from FILE")
    target = where if asset.kind == "file" else _archive_path(asset, cache)
    target.parent.mkdir(parents=True, exist_ok=True)
    if force:
        _remove(target)
    digest = download.fetch(url, target, sha256=asset.sha256, size=asset.size or None,
                            timeout=timeout,
                            retries=retries, on_progress=on_progress, on_retry=on_retry,
                            offline_hint=hint)
    _digest_record(target).write_text(digest + "\n")
    if asset.kind == "archive":
        _unpack(asset, target, where, force)
    return where, True


def import_file(name: str, source: Path, *, cache: Path | None = None,
                force: bool = False) -> Path:
    """Verify a copy of the asset made elsewhere (against the published checksum, when
    there is one: :func:`check_made`) and put it into the cache."""
    asset = get(name)
    refuse_special_file(source, hint="copy it into a regular file first")
    if not source.is_file():
        raise InputError(f"no such file: {source}")
    digest = sha256_of(source).hexdigest()
    if asset.sha256:
        download.check_digest(digest, asset.sha256, f"{source} (for {name})")
    where = location(asset, cache)
    target = where if asset.kind == "file" else _archive_path(asset, cache)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A file left from an earlier import is kept only if it is this very file: an old
    # one (a refused archive, say) would otherwise be read again instead of the new.
    if force or (target.exists() and sha256_of(target).hexdigest() != digest):
        _remove(target)
    if not target.exists():
        with open(source, "rb") as src, atomic_write(target) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        _digest_record(target).write_text(digest + "\n")
    if asset.kind == "archive":
        _unpack(asset, target, where, force)
    return where


def check_made(name: str) -> str:
    """What checking an asset's content means, in words for a message."""
    if get(name).sha256:
        return "sha256 verified"
    return "no checksum is published for it: its sha256 was recorded, not verified"


def _archive_path(asset: Asset, cache: Path | None) -> Path:
    root = cache or cache_dir()
    return _inside(root, root / "downloads" / asset.filename)


def _unpack(asset: Asset, archive: Path, where: Path, force: bool) -> None:
    if where.exists():
        if not force:
            return
        shutil.rmtree(where)
    where.parent.mkdir(parents=True, exist_ok=True)
    try:
        download.extract_archive(archive, where)
    except InputError:
        # A refused archive must not be found again by the next try, which brings a
        # good one. (One that was interrupted, or met a full disk, is kept: it is fine.)
        _remove(archive)
        raise
    # The unpacked folder is what is used; the archive would double the space taken.
    _remove(archive)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    _digest_record(path).unlink(missing_ok=True)
