"""The one stderr console: messages, warnings, errors and progress bars.

stdout carries results only (image bytes for ``-o -``, ``--json`` lines). Everything
for people goes to stderr through :class:`Reporter`. Bars appear only when stderr is a
terminal and ``--quiet`` is off. Rich leaves colour out for non-TTY output on its own;
``NO_COLOR`` (https://no-color.org) turns every escape code off, bold and dim included
(Rich's own reading of it drops colours only).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

from rich.console import Console
from rich.markup import escape


def _console(stderr: bool) -> Console:
    """A Rich console that writes no escape codes at all when ``NO_COLOR`` is set."""
    no_colour = os.environ.get("NO_COLOR", "") != ""
    return Console(stderr=stderr, highlight=False,
                   **({"color_system": None, "no_color": True} if no_colour else {}))


class Reporter:
    def __init__(self, quiet: bool = False) -> None:
        self.console = _console(stderr=True)
        self.quiet = quiet

    @property
    def interactive(self) -> bool:
        return self.console.is_terminal and not self.quiet

    def info(self, message: str) -> None:
        if not self.quiet:  # soft wrap: a log line stays one line (grep, cron mail)
            self.console.print(escape(message), soft_wrap=True)

    def warn(self, message: str) -> None:
        # Warnings show even with --quiet: they say the result may not be what was asked.
        self.console.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)

    def error(self, message: str, hint: str | None = None) -> None:
        line = f"[bold red]error:[/] {escape(message)}"
        if hint:
            line += f" [dim](hint: {escape(hint)})[/]"
        self.console.print(line, soft_wrap=True)

    @contextlib.contextmanager
    def progress(self, description: str, unit: str = "frames") -> Iterator:
        """Yield an ``on_progress(done, total)`` callback (counting ``unit``), or None when
        not interactive."""
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

        with self._bar(description, None, BarColumn(), MofNCompleteColumn(),
                       TextColumn(unit), TimeRemainingColumn()) as on_progress:
            yield on_progress

    @contextlib.contextmanager
    def progress_or_lines(self, description: str, unit: str = "") -> Iterator:
        """A bar on a terminal; elsewhere one line per step (long jobs in logs, CI)."""
        with self.progress(description, unit) as on_progress:
            if on_progress is not None or self.quiet:
                yield on_progress
                return

            def line(done: int, total: int | None = None, **_: object) -> None:
                count = f"{done}/{total}" if total else f"{done}"
                self.info(f"{description}: {count} {unit}".rstrip())

            yield line

    @contextlib.contextmanager
    def progress_bytes(self, description: str, size: int | None) -> Iterator:
        """Yield an ``on_progress(done_bytes, total_bytes)`` callback, or None."""
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        with self._bar(description, size or None, BarColumn(), DownloadColumn(),
                       TransferSpeedColumn(), TimeRemainingColumn()) as on_progress:
            yield on_progress

    @contextlib.contextmanager
    def _bar(self, description: str, total: int | None, *columns) -> Iterator:
        """A transient bar whose callback redraws at most ten times a second (redrawing
        per frame would cost more than the work it reports); None when not interactive."""
        if not self.interactive:
            yield None
            return
        from rich.progress import Progress, TextColumn

        with Progress(TextColumn("{task.description}"), *columns, console=self.console,
                      transient=True) as bar:
            task = bar.add_task(escape(description), total=total)
            last = 0.0

            def on_progress(done: int, now_total: int | None = None, **_: object) -> None:
                nonlocal last
                now = time.monotonic()
                if now - last >= 0.1:
                    last = now
                    bar.update(task, completed=done, total=now_total or total)

            yield on_progress

    @contextlib.contextmanager
    def batch_progress(self, total: int) -> Iterator:
        """Yield an ``advance()`` callback for a bar of clips done, or None."""
        if not self.interactive:
            yield None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        with Progress(TextColumn("clips"), BarColumn(), MofNCompleteColumn(),
                      console=self.console, transient=True) as bar:
            task = bar.add_task("clips", total=total)
            yield lambda: bar.advance(task)
