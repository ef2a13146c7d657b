"""The Typer app that every command registers on, its global options, and the entry point:
library errors (and Click's usage errors) leave as one line on stderr and an exit code.

Nothing heavy is imported at module level (no numpy, cv2 or torch), so ``lexp --help``
stays fast.
"""

from __future__ import annotations

import os
import sys

import typer

from lexp import __version__
from lexp.errors import EXIT_INTERRUPTED, Interrupted, LexpError, UsageError
from lexp.paths import machine_error
from lexp.signals import unwind_on_stop_signals

EXIT_CODES_HELP = (
    "Exit codes: 0 success · 1 error · 2 usage error · 3 some inputs of a batch failed · "
    "130 interrupted."
)

app = typer.Typer(
    name="lexp",
    help="Turn short clips into long-exposure photographs.\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class RunState:
    """The options given before the command (``lexp --debug -q render ...``), for every
    command to read."""

    debug = False
    quiet = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lexp {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", envvar="LEXP_QUIET",
                               help="No progress or messages on stderr (errors and "
                                    "warnings still show)."),
    debug: bool = typer.Option(False, "--debug",
                               help="Show tracebacks for errors (also LEXP_DEBUG=1)."),
) -> None:
    """Turn short clips into long-exposure photographs."""
    RunState.debug = debug or os.environ.get("LEXP_DEBUG", "") not in ("", "0")
    RunState.quiet = quiet


def main() -> None:
    """Entry point. Typer handles --help and usage errors (exit 2); library errors
    become one line on stderr and their exit code."""
    unwind_on_stop_signals()  # TERM (cron, schedulers) and HUP (a closed terminal) as Ctrl-C
    try:
        # Not standalone: Click's usage errors come to us, to leave as one line like ours
        # (Typer draws them as a box of several lines).
        code = app(prog_name="lexp", standalone_mode=False)
    except LexpError as exc:
        sys.exit(_report(exc))
    except KeyboardInterrupt:
        sys.exit(_report(Interrupted("interrupted; no partial output was left")))
    except OSError as exc:  # what the machine refused (a full disk, a cache path that is
        sys.exit(_report(machine_error(exc)))  # a file, no permission): not a lexp bug
    except Exception as exc:
        if not _is_click_error(exc):
            raise
        sys.exit(_report_click_error(exc))
    if code == EXIT_INTERRUPTED:  # Typer turns a KeyboardInterrupt no command caught into
        code = _report(Interrupted("interrupted; no partial output was left"))  # this code
    sys.exit(code if isinstance(code, int) else 0)


def _is_click_error(exc: Exception) -> bool:
    """A Click exception (Typer vendors Click in some releases, so by its class names)."""
    return any(c.__name__ == "ClickException" for c in type(exc).__mro__)


def _report_click_error(exc) -> int:
    """A usage error from option parsing as one line: ``error: MESSAGE (hint: ...)``. With
    no arguments at all a command shows its help, as Click does."""
    if type(exc).__name__ == "NoArgsIsHelpError":
        exc.show()
        return exc.exit_code
    from lexp.cli.show import Reporter

    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "lexp"
    Reporter().error(exc.format_message().replace("\n", " "), f"{where} --help")
    return exc.exit_code


def _report(exc: LexpError) -> int:
    debug = RunState.debug or os.environ.get("LEXP_DEBUG", "") not in ("", "0")
    if debug and not isinstance(exc, UsageError):
        import traceback

        traceback.print_exc()
    from lexp.cli.show import Reporter

    Reporter().error(exc.message, exc.hint)
    return exc.exit_code
