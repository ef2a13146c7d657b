"""Fetching files over HTTP(S) safely: verified, resumable, atomic; and unpacking archives.

:func:`fetch` streams a URL into ``DEST.part`` while hashing it (sha256), and renames
the part into place only once the whole file is there and its hash matches. Along the way:

- **Resume.** A ``.part`` left by an interrupted run is re-hashed and continued with an
  HTTP ``Range`` request; a server that ignores the range (200 instead of 206) restarts it.
- **Retries.** Transient failures (connection refused/reset, a server that closes early,
  5xx, 429) are retried with exponential backoff (0.5 s, 1 s, 2 s, ...), each resuming
  where the last stopped. 4xx errors such as 404 are final.
- **Stalls.** Every socket read has a timeout; a server that stops sending is a
  transient failure, retried, and after the last retry, an error that says it stalled.
  A server that accepts the connection but never answers at all is given up after
  ``NO_ANSWER_TRIES`` such tries in a row (a mirror that hangs fails in about a
  minute, not after every retry's timeout). Each retry is announced (``on_retry``), so
  a wait is never silent.
- **One at a time.** A lock file (``filelock``) serialises processes fetching the same
  destination: the second waits, then finds the file already there.
- **Google Drive.** Large files answer with a "can't scan for viruses" page; we follow
  its form (the ``confirm``/``uuid`` fields) to the file itself, as gdown does, rather
  than depend on gdown and its requests/beautifulsoup stack for one HTML form.

:func:`extract_archive` unpacks a zip or tar archive into a folder, refusing members
that would escape it (absolute paths, ``..``), links and device files, and archives
larger than a limit once unpacked; it unpacks into a temp folder and renames it into
place, so a folder that exists is always complete.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import html.parser
import http.client
import os
import shutil
import socket
import stat
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from lexp.errors import InputError, LexpError
from lexp.paths import sha256_of

ProgressCallback = Callable[..., None]
CHUNK = 1 << 16
DEFAULT_TIMEOUT = 20.0  # seconds without a byte from the server before a try is given up
NO_ANSWER_TRIES = 2  # tries in a row with no answer at all, after which the server is given up
USER_AGENT = "lexp-download/1"
_FINAL_HTTP = {400, 401, 403, 404, 405, 410, 451}


class DownloadError(LexpError):
    """A download that could not be completed."""


class ChecksumError(LexpError):
    """A file whose sha256 is not the one expected."""


def check_digest(actual: str, expected: str, what: str) -> None:
    """``expected`` is a full sha256 or a prefix of one (as in torchvision's file names)."""
    if not actual.startswith(expected.lower()):
        raise ChecksumError(
            f"{what}: sha256 {actual[:16]}… does not match the expected {expected[:16]}…",
            hint="the file is corrupt or not the right one; nothing was saved")


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold ``lock_path`` (filelock: flock underneath, released by the kernel if we die),
    waiting for another process fetching the same file."""
    from filelock import FileLock

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(lock_path, thread_local=False):
        try:
            yield
        finally:  # removed while held, as an output's lock is: no 0-byte file stays
            with contextlib.suppress(OSError):
                os.unlink(lock_path)


class _Transient(Exception):
    """A failure worth retrying (after which the download resumes)."""


class _NoAnswer(_Transient):
    """The server accepted the connection but sent no response within the timeout."""


def fetch(url: str, dest: Path, *, sha256: str | None = None, size: int | None = None,
          timeout: float = DEFAULT_TIMEOUT, retries: int = 5, backoff: float = 0.5,
          on_progress: ProgressCallback | None = None,
          on_retry: Callable[[str], None] | None = None,
          offline_hint: str | None = None) -> str:
    """Download ``url`` to ``dest`` (atomically); returns the file's full sha256 (hex).

    ``sha256`` is the expected digest, full or a prefix; None accepts any content (the
    digest is returned so the caller can pin it). ``size``: the published size in bytes;
    a server that sends (or announces) more than that, plus a small margin, is refused
    and what it sent removed: a lying mirror cannot fill the disk. ``on_progress(done, total)`` gets
    byte counts; ``on_retry(message)`` is told why a try failed and when the next one
    starts. If ``dest`` already exists it is not fetched again.
    """
    part = dest.with_name(dest.name + ".part")
    with _exclusive(dest.with_name(f".{dest.name}.lock")):
        if dest.exists():
            return sha256_of(dest).hexdigest()
        attempt, last_error = 0, ""
        silent = 0  # tries in a row that got no answer at all
        restarted_after_mismatch = False
        while True:
            try:
                digest = _fetch_once(url, part, timeout, on_progress, _most_bytes(size))
                actual = digest.hexdigest()
                if sha256:
                    try:
                        check_digest(actual, sha256, dest.name)
                    except ChecksumError:
                        part.unlink(missing_ok=True)
                        # A part resumed from an earlier run may be what is wrong: one
                        # clean download decides.
                        if restarted_after_mismatch:
                            raise
                        restarted_after_mismatch = True
                        continue
                with open(part, "rb+") as fh:
                    os.fsync(fh.fileno())
                os.replace(part, dest)
                return actual
            except _Transient as err:
                last_error = str(err)
                attempt += 1
                silent = silent + 1 if isinstance(err, _NoAnswer) else 0
                if attempt > retries or silent >= NO_ANSWER_TRIES:
                    raise DownloadError(
                        f"could not download {url}: {last_error} (gave up after "
                        f"{attempt} tries)",
                        hint=offline_hint or "check the network and try again; the part "
                                             "downloaded so far is kept and resumed") from None
                wait = backoff * 2 ** (attempt - 1)
                if on_retry is not None:
                    on_retry(f"{last_error}; trying again in {wait:g} s "
                             f"(try {attempt + 1} of {retries + 1})")
                time.sleep(wait)


def _most_bytes(size: int | None) -> int | None:
    """The most bytes a download of a file published as ``size`` bytes may take: the size
    and 1% (at least 64 KiB) for a file that changed a little; None when not published."""
    return None if not size else size + max(size // 100, 1 << 16)


def _fetch_once(url: str, part: Path, timeout: float,
                on_progress: ProgressCallback | None,
                most: int | None = None) -> hashlib._Hash:
    """One request: resume ``part`` if it exists. Raises _Transient or DownloadError
    (also when the server sends, or announces, more than ``most`` bytes in all)."""
    offset = part.stat().st_size if part.exists() else 0
    digest = sha256_of(part) if offset else hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = _open(request, timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # the part is already complete (or bogus): recheck
            return digest
        if err.code in _FINAL_HTTP:
            raise DownloadError(f"could not download {url}: HTTP {err.code} {err.reason}",
                                hint="the file is not on that server; check --mirror") from None
        raise _Transient(f"HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise _NoAnswer(f"the server did not answer within {timeout:g} s") from None
        raise _Transient(f"cannot connect: {reason}") from None
    with response:
        if offset and response.status != 206:  # the server ignored the range: start over
            offset, digest = 0, hashlib.sha256()
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        if most is not None and total is not None and total > most:
            part.unlink(missing_ok=True)
            raise _too_big(url, f"announces {total} bytes", most)
        done = offset
        try:
            with open(part, "ab" if offset else "wb") as fh:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    if most is not None and done + len(block) > most:
                        fh.close()
                        part.unlink(missing_ok=True)
                        raise _too_big(url, f"sent over {most} bytes", most)
                    fh.write(block)
                    digest.update(block)
                    done += len(block)
                    if on_progress is not None:
                        on_progress(done, total)
        except TimeoutError:
            raise _Transient("the server stalled (no data within the timeout)") from None
        except (OSError, http.client.HTTPException) as err:
            if isinstance(err, OSError) and err.errno == 28:  # ENOSPC: not transient
                from lexp.paths import describe_os_error

                raise describe_os_error(err, part) from None
            raise _Transient(f"the connection broke ({type(err).__name__})") from None
    if total is not None and done < total:
        raise _Transient(f"the server closed the connection after {done} of {total} bytes")
    return digest


def _too_big(url: str, what: str, most: int) -> DownloadError:
    return DownloadError(f"{url} {what}, more than the file's published size allows "
                         f"({most} bytes at most); nothing was kept",
                         hint="the server is not serving that file: check --mirror")


def _open(request: urllib.request.Request, timeout: float):
    """urlopen, following Google Drive's large-file confirmation page to the file."""
    response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http/https only)
    kind = response.headers.get("Content-Type", "")
    if "text/html" in kind and _is_google_drive(response.geturl()):
        page = response.read(1 << 20).decode("utf-8", "replace")
        response.close()
        target = google_drive_confirm_url(page, response.geturl())
        if target is None:
            raise DownloadError("Google Drive answered with a page, not the file",
                                hint="the file may have hit its download quota; try later, "
                                     "or download it in a browser and use --from")
        confirmed = urllib.request.Request(target, headers=dict(request.header_items()))
        response = urllib.request.urlopen(confirmed, timeout=timeout)  # noqa: S310
    return response


def _is_google_drive(url: str) -> bool:
    host = urllib.parse.urlparse(url).hostname or ""
    return host.endswith(("google.com", "googleusercontent.com"))


class _FormParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = a.get("action")
        elif tag == "input" and a.get("type") == "hidden" and a.get("name"):
            self.fields[a["name"]] = a.get("value") or ""


def google_drive_confirm_url(page: str, page_url: str) -> str | None:
    """The URL that Google Drive's "download anyway" form on ``page`` submits to."""
    parser = _FormParser()
    parser.feed(page)
    if not parser.action or "id" not in parser.fields:
        return None
    action = urllib.parse.urljoin(page_url, parser.action)
    return f"{action}?{urllib.parse.urlencode(parser.fields)}"


# --------------------------------------------------------------------------- archives

DEFAULT_MAX_UNPACKED = 64 << 30  # 64 GiB


def extract_archive(archive: Path, target: Path, *, max_bytes: int = DEFAULT_MAX_UNPACKED,
                    on_progress: ProgressCallback | None = None) -> None:
    """Unpack a zip/tar archive into ``target`` (which must not exist), safely and atomically."""
    staging = target.with_name(f".{target.name}.extracting-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        try:
            if zipfile.is_zipfile(archive):
                _extract_zip(archive, staging, max_bytes, on_progress)
            elif tarfile.is_tarfile(archive):
                _extract_tar(archive, staging, max_bytes, on_progress)
            else:
                raise InputError(f"{archive.name} is neither a zip nor a tar archive")
        except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError) as err:
            raise InputError(f"{archive.name} is damaged: {err}",
                             hint="it is truncated or corrupt; fetch it again") from None
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _safe_member_path(root: Path, name: str, archive: Path) -> Path:
    clean = name.replace("\\", "/")
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if clean.startswith("/") or (parts and ":" in parts[0]) or ".." in parts:
        raise InputError(f"refusing {archive.name}: member {name!r} would land outside "
                         "the target folder", hint="the archive is damaged or malicious")
    return root.joinpath(*parts) if parts else root


def _check_total(total: int, max_bytes: int, archive: Path) -> None:
    if total > max_bytes:
        raise InputError(f"refusing {archive.name}: it unpacks to more than "
                         f"{max_bytes / 2**30:.0f} GiB", hint="the archive is damaged or malicious")


def _copy_limited(src, dst_path: Path, budget: list[int], max_bytes: int, archive: Path,
                  on_progress) -> None:
    with open(dst_path, "wb") as out:
        while True:
            block = src.read(CHUNK)
            if not block:
                break
            budget[0] += len(block)
            _check_total(budget[0], max_bytes, archive)  # sizes in headers can lie
            out.write(block)
            if on_progress is not None:
                on_progress(budget[0], None)


def _extract_zip(archive: Path, root: Path, max_bytes: int, on_progress) -> None:
    with zipfile.ZipFile(archive) as zf:
        def members():
            for m in zf.infolist():
                # Unix type bits, when the zip has them (many writers store permissions only).
                kind = stat.S_IFMT(m.external_attr >> 16)
                ok = kind in (0, stat.S_IFREG, stat.S_IFDIR)
                yield m.filename, m.is_dir(), ok, m.file_size, (lambda m=m: zf.open(m))

        _extract_members(archive, root, list(members()), max_bytes, on_progress)


def _extract_tar(archive: Path, root: Path, max_bytes: int, on_progress) -> None:
    """Through tarfile's ``data`` filter (PEP 706): no member lands outside ``root``, no
    absolute or escaping link, no device, no setuid bit. A tar member's size is what is
    read, so the budget is checked on the sizes before anything is written."""
    if not hasattr(tarfile, "data_filter"):  # Python 3.10.12+, 3.11.4+, 3.12+
        raise InputError(f"cannot unpack {archive.name} safely with this Python "
                         f"({sys.version.split()[0]}): its tarfile has no data filter",
                         hint="use Python 3.10.12, 3.11.4 or newer")
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        _check_total(sum(m.size for m in members if m.isfile()), max_bytes, archive)
        written, current = [0], [""]

        def checked(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
            try:
                if member.name.startswith("/"):  # the filter would strip the "/": refuse,
                    raise tarfile.AbsolutePathError(member)  # as for a zip
                member = tarfile.data_filter(member, path)
            except (tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError):
                raise InputError(f"refusing {archive.name}: member {member.name!r} is a link "
                                 "out of the target folder",
                                 hint="the archive is damaged or malicious") from None
            except (tarfile.AbsolutePathError, tarfile.OutsideDestinationError):
                raise InputError(f"refusing {archive.name}: member {member.name!r} would land "
                                 "outside the target folder",
                                 hint="the archive is damaged or malicious") from None
            except tarfile.FilterError as err:
                raise InputError(f"refusing {archive.name}: member {member.name!r}: {err}",
                                 hint="the archive is damaged or malicious") from None
            current[0] = member.name  # extractall writes it next
            written[0] += member.size if member.isfile() else 0
            if on_progress is not None:
                on_progress(written[0], None)
            return member

        try:
            tf.extractall(root, filter=checked)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            raise InputError(f"refusing {archive.name}: member {current[0]!r} clashes with "
                             "another (a file where a folder is)",
                             hint="the archive is damaged or malicious") from None


def _extract_members(archive: Path, root: Path, members: list, max_bytes: int,
                     on_progress) -> None:
    """A zip's members, (name, is_dir, is_plain, size, open): links and devices are
    refused, and the bytes written count against the budget (a zip's sizes can lie)."""
    _check_total(sum(size for *_, size, _ in members), max_bytes, archive)
    budget = [0]
    for name, is_dir, is_plain, _, open_member in members:
        if not is_plain:
            raise InputError(f"refusing {archive.name}: member {name!r} is a link or a "
                             "special file", hint="the archive is damaged or malicious")
        path = _safe_member_path(root, name, archive)
        try:
            if is_dir:
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():  # a member named twice would silently replace the first
                raise FileExistsError(errno.EEXIST, "exists", str(path))
            with open_member() as src:
                _copy_limited(src, path, budget, max_bytes, archive, on_progress)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            raise InputError(f"refusing {archive.name}: member {name!r} clashes with another "
                             "(a name given twice, or a file where a folder is)",
                             hint="the archive is damaged or malicious") from None
