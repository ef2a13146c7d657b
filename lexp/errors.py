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
130   interrupted (Ctrl-C, SIGTERM, SIGHUP); no partial output is left
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
    """The run was interrupted (Ctrl-C, SIGTERM or SIGHUP) and cleaned up after itself."""

    exit_code = EXIT_INTERRUPTED


class OutOfMemory(LexpError):
    """The machine, or its GPU, had no memory left for the render."""


def out_of_memory(exc: BaseException) -> str | None:
    """Where ``exc`` says memory ran out: "gpu" (torch's CUDA or MPS allocator, told by
    name: torch is not imported for this), "cpu" (Python's MemoryError), or None."""
    if isinstance(exc, MemoryError):
        return "cpu"
    if type(exc).__name__ == "OutOfMemoryError" or (
            isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()):
        return "gpu"
    return None


def memory_error(exc: BaseException, name: str) -> OutOfMemory | None:
    """The one-line error for ``exc`` if it is running out of memory while rendering
    ``name``, else None."""
    where = out_of_memory(exc)
    if where == "gpu":
        return OutOfMemory(f"the GPU ran out of memory rendering {name}",
                           hint="render on the CPU (--device cpu), or fewer or smaller "
                                "frames (--end, --max-frames)")
    if where == "cpu":
        return OutOfMemory(f"out of memory rendering {name}",
                           hint="render fewer frames (--end, --max-frames) or a smaller "
                                "copy of the clip, or free memory")
    return None
