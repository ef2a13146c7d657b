"""Standard output, which carries results only: image bytes (``-o -``), ``--json`` lines,
CSV and result tables.

Every write to it goes through here, so that stdout closed (``>&-``), on a full device
(``> /dev/full``) or a pipe whose reader went away (``| head -c 10``) is one
:class:`~lexp.errors.OutputError` naming the cause, never a traceback. After a failed
write stdout is pointed at ``os.devnull``, so the interpreter's own flush at exit cannot
print "Exception ignored" over the error line.
"""

from __future__ import annotations

import errno
import os
import sys

from lexp.errors import OutputError


def is_closed() -> bool:
    """True when the process was started with no stdout (``>&-``)."""
    return sys.stdout is None or getattr(sys.stdout, "closed", False)


def is_terminal() -> bool:
    """True when stdout is a terminal (False when it is closed)."""
    try:
        return not is_closed() and sys.stdout.isatty()
    except (OSError, ValueError):
        return False


def check_open(what: str) -> None:
    """Fail before any work when a result for stdout (``what``) could not be written."""
    if is_closed():
        raise OutputError(f"stdout is closed, so {what} cannot be written",
                          hint="redirect stdout to a file, or leave it open")


def write_bytes(data: bytes, what: str = "the result") -> None:
    """Write and flush bytes on stdout (see the module docstring)."""
    check_open(what)
    try:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except (OSError, ValueError) as err:
        _fail(err, what)


def write_text(text: str, what: str = "the result") -> None:
    """Write and flush text on stdout (see the module docstring)."""
    check_open(what)
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (OSError, ValueError) as err:
        _fail(err, what)


def _fail(err: Exception, what: str) -> None:
    with_devnull()
    code = getattr(err, "errno", None)
    if code == errno.ENOSPC:
        why = "no space left on the device behind it"
    elif code == errno.EPIPE:
        why = "the program reading it stopped reading"
    elif code == errno.EBADF or isinstance(err, ValueError):
        why = "it is closed"
    else:
        why = getattr(err, "strerror", None) or str(err)
    raise OutputError(f"cannot write {what} to stdout: {why}",
                      hint="redirect stdout to a file with space, or use -o FILE") from None


def with_devnull() -> None:
    """Point stdout (fd 1 and sys.stdout) at os.devnull: nothing more can fail there."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    except OSError:
        pass
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (lives until exit)
