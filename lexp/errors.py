"""The one error hierarchy of lexp.

Library code raises a :class:`LexpError` (or a subclass) with a one-line message and,
where we can say what to do about it, a hint. The CLI turns it into a single line on
stderr and an exit code; a traceback is shown only with ``--debug`` / ``LEXP_DEBUG=1``.

Exit codes (also in ``lexp --help`` and the README):

====  ==========================================================
0     success
1     runtime error (bad input, unreadable clip, unwritable output)
2     usage error (bad option or option value)
3     a batch finished, but some inputs failed (each is reported)
130   interrupted (Ctrl-C / SIGTERM); no partial output is left
====  ==========================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_SOME_FAILED = 3
EXIT_INTERRUPTED = 130


class LexpError(Exception):
    """An error the user can act on: a one-line message plus an optional hint."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(LexpError):
    """An option or argument that cannot work (exit code 2)."""

    exit_code = EXIT_USAGE


class InputError(LexpError):
    """A clip that cannot be read: missing, empty, corrupt, inconsistent frames."""


class OutputError(LexpError):
    """An output that cannot be written: missing directory, no permission, full disk."""


class Interrupted(LexpError):
    """The run was interrupted (Ctrl-C or SIGTERM) and cleaned up after itself."""

    exit_code = EXIT_INTERRUPTED
