"""Where lexp keeps things, and how every persistent file is written: atomically.

- Cache directory: ``--cache-dir``, else ``LEXP_CACHE_DIR``, else the platform's user
  cache dir (``~/.cache/lexp`` on Linux, via platformdirs). Downloaded weights live in
  ``CACHE/weights``, datasets in ``CACHE/datasets``.
- :func:`atomic_write` writes to a hidden temp file beside the target and renames it
  into place only when the whole content is written and flushed. An interrupted or
  failed write leaves no file at the target (and removes its temp file).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from lexp.errors import InputError, OutputError

TEMP_PREFIX = ".lexp-tmp-"


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The lexp cache directory (not created)."""
    chosen = override or os.environ.get("LEXP_CACHE_DIR")
    if chosen:
        return Path(chosen).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("lexp", appauthor=False))


def sha256_of(path: Path | str) -> hashlib._Hash:
    """The sha256 of a file's content, read in 1 MiB blocks (hashlib object: can go on)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest


def check_writable_dir(directory: Path, for_output: Path | None = None) -> None:
    """Fail early (before any decoding) if ``for_output`` could not be written in
    ``directory`` (without ``for_output``: if nothing could)."""
    if for_output is None:
        for_output = directory / "..."  # for the messages only
    elif for_output.exists():
        check_replaceable(for_output)
    if not directory.is_dir():
        raise OutputError(
            f"cannot write {for_output}: directory {directory} does not exist",
            hint="create it first, or choose another -o",
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputError(
            f"cannot write {for_output}: no permission to write in {directory}",
            hint="choose another -o",
        )


def replace_into(source: Path | str, target: Path | str) -> None:
    """``os.replace(source, target)``, but never over something that is not a regular
    file: as root, a rename onto ``-o /dev/full`` replaced the device node itself."""
    check_replaceable(target)
    os.replace(source, target)


def check_replaceable(target: Path | str) -> None:
    """An OutputError if ``target`` exists and is not a regular file (a device, a FIFO,
    a socket, a folder): lexp writes results by renaming a finished file onto them."""
    target = Path(target)
    kind = "folder" if target.is_dir() else special_file_kind(target)
    if kind is None:
        return  # a regular file, nothing (or a dangling link, which the rename replaces)
    raise OutputError(f"cannot write {target}: it is a {kind}, and lexp only replaces "
                      "regular files", hint="choose another output name (stdout: -o -)")


def describe_os_error(err: OSError, path: Path | str) -> OutputError:
    """A one-line OutputError for a failed write, with a hint for the common causes."""
    if err.errno == errno.ENOSPC:
        return OutputError(f"no space left on the device while writing {path}",
                           hint="free some space or choose another -o")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(f"cannot write {path}: permission denied", hint="choose another -o")
    return OutputError(f"cannot write {path}: {err.strerror or err}")


@contextlib.contextmanager
def atomic_write(path: Path | str) -> Iterator[BinaryIO]:
    """Open a temp file beside ``path`` for binary writing; on success, fsync and rename.

    On any exception (including KeyboardInterrupt) the temp file is removed and the
    target is left untouched. OSErrors become :class:`OutputError`.
    """
    target = Path(path)
    try:
        # The pid in the name lets a parent clean up after a worker that was killed.
        fd, tmp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=".part",
                                        dir=target.parent)
    except OSError as err:
        raise describe_os_error(err, target) from err
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp makes 0600 files; give the result the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        replace_into(tmp_name, target)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        if isinstance(err, OSError):
            raise describe_os_error(err, target) from err
        raise


def write_bytes_atomic(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path) as fh:
        fh.write(data)


def refuse_special_file(path: Path, hint: str | None = None) -> None:
    """Raise an InputError for a FIFO, device or socket named as a clip: reading a FIFO
    waits for a writer, a device forever; the bytes belong on stdin."""
    kind = special_file_kind(path)
    if kind is not None:
        raise InputError(f"{path} is a {kind}, not a file",
                         hint=hint or f"stream it on stdin instead: lexp render - < {path}")


def special_file_kind(path: Path) -> str | None:
    """'FIFO', 'character device', 'block device' or 'socket' for such a path; None for
    a regular file, a folder, or nothing."""
    import stat

    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    for test, kind in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return kind
    return None
