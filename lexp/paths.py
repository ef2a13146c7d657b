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
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from lexp.errors import InputError, OutputError

TEMP_PREFIX = ".lexp-tmp-"
# Every temp file or folder lexp makes is named lexp-KIND-PID-HOST-...: a later run on the
# same machine removes those of processes that no longer exist there (killed with SIGKILL,
# or the machine went down). HOST (a hash of the host name) keeps a run from judging the
# processes of another machine writing into the same shared folder (a job array on NFS).
LEFTOVER_NAME = re.compile(r"^\.?lexp-(?:tmp|crop|partial|stdin|bench)-(\d+)-([0-9a-f]{8})-")
LOCK_SUFFIX = ".lexp-lock"  # .NAME.lexp-lock: an output's lock (see lexp.batch.OutputLock)
_swept: set[str] = set()  # folders already swept by this process


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The lexp cache directory (not created). A path no file system could hold (a name
    over 255 bytes, or the whole over PATH_MAX) is a UsageError naming where it came from."""
    chosen = override or os.environ.get("LEXP_CACHE_DIR")
    if chosen:
        path = Path(chosen).expanduser()
        longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
        if longest > 255 or len(os.fsencode(path)) > 3800:  # room for lexp's own names
            from lexp.errors import UsageError

            where = "--cache-dir" if override else "LEXP_CACHE_DIR"
            raise UsageError(f"{where} is too long a path for a file system "
                             f"({len(os.fsencode(path))} bytes, a name of {longest})",
                             hint="choose a shorter cache folder")
        return path
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
    file: as root, a rename onto ``-o /dev/full`` replaced the device node itself; nor
    over a symbolic link (callers write through links: see :func:`through_links`)."""
    check_replaceable(target)
    if os.path.islink(target):
        raise OutputError(f"cannot write {target}: it is a symbolic link, and lexp does not "
                          "replace links", hint="name the file the link points to")
    os.replace(source, target)


def through_links(path: Path | str) -> Path:
    """The file an output named ``path`` should be written to: ``path`` itself, or where
    it leads when it is a symbolic link (a rename onto the link would replace the link,
    not write the file it names). Relative paths stay relative when there is no link."""
    if not os.path.islink(path):
        return Path(path)
    return Path(os.path.realpath(path))


def names_stdout(path: Path | str) -> bool:
    """True when ``path`` is a link to this process's own stdout (``/dev/stdout``,
    ``/proc/self/fd/1``, a link to either): writing the result there means ``-o -``."""
    if not os.path.islink(path):
        return False
    try:
        mine, named = os.fstat(1), os.stat(path)
    except (OSError, ValueError):
        return False
    return (mine.st_dev, mine.st_ino) == (named.st_dev, named.st_ino)


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
    return OutputError(f"cannot write {path}: {err.strerror or err}",
                       hint="choose another -o" if err.errno in (errno.ENOENT, errno.ENOTDIR,
                                                                 errno.ENAMETOOLONG) else None)


def machine_error(exc: OSError) -> OutputError:
    """One line for an OSError that no code turned into a LexpError of its own: what the
    machine refused (a full disk, a cache path that is a file, no permission), not a bug."""
    where = exc.filename or ""
    error = describe_os_error(exc, where) if where else OutputError(str(exc.strerror or exc))
    error.hint = "check that folder's free space and permissions; LEXP_CACHE_DIR (or " \
        "--cache-dir) moves lexp's cache"
    return error


@contextlib.contextmanager
def atomic_write(path: Path | str) -> Iterator[BinaryIO]:
    """Open a temp file beside ``path`` for binary writing; on success, fsync and rename.

    On any exception (including KeyboardInterrupt) the temp file is removed and the
    target is left untouched. OSErrors become :class:`OutputError`.
    """
    target = through_links(path)
    sweep_leftovers(target.parent)
    try:
        # The pid in the name lets a parent clean up after a worker that was killed.
        fd, tmp_name = tempfile.mkstemp(prefix=scratch_name("tmp", hidden=True),
                                        suffix=".part", dir=target.parent)
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


def scratch_name(kind: str, hidden: bool = False) -> str:
    """The prefix for a temp file or folder of ``kind``: ``stdin`` and ``bench`` in the
    system's temp folder, hidden ``tmp``, ``crop`` and ``partial`` beside outputs. It
    carries our pid and host, so :func:`sweep_leftovers` can tell when it is stale."""
    return f"{'.' if hidden else ''}lexp-{kind}-{os.getpid()}-{_host_tag()}-"


def _host_tag() -> str:
    """8 hex digits naming this machine (its host name, hashed)."""
    import socket

    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def sweep_leftovers(folder: Path | str | None = None) -> int:
    """Remove the temp files and folders that lexp runs which no longer exist left in
    ``folder`` (default: the system's temp folder); returns how many went.

    A SIGKILL, an OOM kill or a power cut gives a run no chance to clean up; the name of
    each temp file says whose it was (see :data:`LEFTOVER_NAME`), and a process that is
    gone cannot be using it. Each folder is swept once per process; errors are ignored
    (this is housekeeping, never a reason to fail).
    """
    folder = Path(folder) if folder is not None else Path(tempfile.gettempdir())
    key = os.path.abspath(folder)
    if key in _swept:
        return 0
    _swept.add(key)
    removed = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        if name.startswith(".") and name.endswith(LOCK_SUFFIX):
            removed += remove_if_unlocked(folder / name)
            continue
        match = LEFTOVER_NAME.match(name)
        if match is None or match.group(2) != _host_tag() or \
                _process_exists(int(match.group(1))):
            continue
        path = folder / name
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed += 1
    return removed


def remove_if_unlocked(path: Path) -> int:
    """Remove an output's lock file that no process holds (1), else leave it (0). The
    kernel drops a dead process's flock, so a free lock is a killed run's."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return 0
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.unlink(path)  # while we hold it, as a finishing run removes its own
        return 1
    except OSError:
        return 0
    finally:
        os.close(fd)


def _process_exists(pid: int) -> bool:
    """Whether a process with this pid exists (one of another user's counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OverflowError, OSError):  # another user's (PermissionError): it exists
        return True
    return True
