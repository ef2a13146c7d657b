"""All of the command line's Rich output: the stderr console (messages, warnings, errors
and progress bars: :class:`Reporter`) and the result tables printed on stdout
(:func:`rich_text` with :func:`bench_tables`, :func:`assets_table`).

stdout carries results only (image bytes for ``-o -``, ``--json`` lines, tables).
Everything for people goes to stderr through :class:`Reporter`. Bars appear only when stderr is a
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

# C0 and C1 control characters and DEL: in a file name (or any text from outside) they
# would reach the terminal as commands (colours, a cleared screen, a retitled window).
_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}


def printable(text: str) -> str:
    """``text`` with every control character written as a ``\\xNN`` escape, so what
    lexp prints is only ever text, whatever the names it quotes hold."""
    return text.translate(_CONTROL)


def _say(text: str) -> str:
    """Text for a Rich markup string: printable, and its brackets not markup."""
    return escape(printable(text))


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
            self._print(_say(message))

    def warn(self, message: str) -> None:
        # Warnings show even with --quiet: they say the result may not be what was asked.
        self._print(f"[yellow]warning:[/] {_say(message)}")

    def error(self, message: str, hint: str | None = None) -> None:
        line = f"[bold red]error:[/] {_say(message)}"
        if hint:
            line += f" [dim](hint: {_say(hint)})[/]"
        self._print(line)

    def _print(self, markup: str) -> None:
        """One line on stderr. stderr full or closed (``2>/dev/full``) loses the words,
        never the work: a render that succeeded still exits 0."""
        try:
            self.console.print(markup, soft_wrap=True)
            self.console.file.flush()
        except (OSError, ValueError):
            with contextlib.suppress(OSError):  # nothing more can fail there, at exit either
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 2)
                os.close(null)

    # Without a terminal (logs, cron), a long job says once how long it expects to take:
    # after EXPECT_AFTER_S, when the whole would take over EXPECT_OVER_S.
    EXPECT_AFTER_S, EXPECT_OVER_S = 2.0, 10.0

    @contextlib.contextmanager
    def progress(self, description: str, unit: str = "frames") -> Iterator:
        """Yield an ``on_progress(done, total)`` callback (counting ``unit``): a bar with an
        ETA on a terminal; elsewhere one line saying how long is left, once, when the job
        is long (None with --quiet)."""
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

        if not self.interactive:
            yield None if self.quiet else self._expected_time(description, unit)
            return
        with self._bar(description, None, BarColumn(), MofNCompleteColumn(),
                       TextColumn(unit), TimeRemainingColumn()) as on_progress:
            yield on_progress

    def _expected_time(self, description: str, unit: str):
        started = time.monotonic()
        first: tuple[float, int] | None = None  # (when, done) at the first report
        said = False

        def on_progress(done: int, total: int | None = None, **_: object) -> None:
            nonlocal said, first
            if said or not total or done < 1:
                return
            now = time.monotonic()
            if first is None:
                # The pace is measured from the first frame done, not from the start:
                # what came before (auto choosing, flows read from the cache) is not
                # the pace of the rest ("25 s to go" for 122 s; "2330 s" for 24 s).
                first = (now, done)
                return
            if now - first[0] < self.EXPECT_AFTER_S or done <= first[1]:
                return
            said = True
            elapsed = now - started
            left = (now - first[0]) / (done - first[1]) * max(0, total - done)
            if elapsed + left > self.EXPECT_OVER_S:
                self.info(f"{description}: about {left:.0f} s to go ({done} of {total} "
                          f"{unit} in {elapsed:.0f} s)")

        return on_progress

    @contextlib.contextmanager
    def progress_or_lines(self, description: str, unit: str = "") -> Iterator:
        """A bar on a terminal; elsewhere one line per step (long jobs in logs, CI)."""
        if self.interactive or self.quiet:
            with self.progress(description, unit) as on_progress:
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
            task = bar.add_task(_say(description), total=total)
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


# --------------------------------------------------------------------------- stdout

def rich_text(render) -> str:
    """What ``render(console)`` prints on a Rich console, as text for stdout: styled when
    stdout is a terminal (and NO_COLOR is unset), plain otherwise."""
    import io
    import shutil

    from lexp.stdout import is_terminal

    terminal = is_terminal()
    no_colour = os.environ.get("NO_COLOR", "") != ""
    buffer = io.StringIO()
    console = Console(file=buffer, highlight=False, force_terminal=terminal and not no_colour,
                      width=shutil.get_terminal_size().columns if terminal else 200,
                      **({"color_system": None} if no_colour or not terminal else {}))
    render(console)
    return buffer.getvalue()


def bench_tables(result: dict, out) -> None:
    """``lexp bench``'s results as tables on the console ``out``."""
    from rich.table import Table

    if "quality" in result:
        summary = result["quality"]["summary"]
        for proto in dict.fromkeys(r["protocol"] for r in summary):
            table = Table(title=f"quality: {proto}", box=None, header_style="bold")
            for column in ("method", "PSNR dB", "moving PSNR", "SSIM", "worst clip", "clips"):
                table.add_column(column, justify="left" if column in ("method", "worst clip")
                                 else "right")
            for r in (r for r in summary if r["protocol"] == proto):
                table.add_row(r["method"], f"{r['psnr_median']:.2f}",
                              f"{r['psnr_moving_median']:.2f}", f"{r['ssim_median']:.4f}",
                              f"{_say(r['worst_clip'])} ({r['worst_psnr']:.2f})", str(r["clips"]))
            out.print(table)
            scores = [s for s in result["quality"]["scores"] if s["protocol"] == proto]
            names = list(dict.fromkeys(s["method"] for s in scores))
            per_clip = Table(title=f"{proto}: PSNR dB per clip", box=None, header_style="bold")
            per_clip.add_column("clip")
            for name in names:
                per_clip.add_column(name, justify="right")
            for clip in dict.fromkeys(s["clip"] for s in scores):
                row = {s["method"]: s["psnr"] for s in scores if s["clip"] == clip}
                per_clip.add_row(_say(clip), *(f"{row[n]:.2f}" for n in names))
            out.print(per_clip)
    if "speed" in result:
        sp = result["speed"]
        clip = _say(sp["clip"])
        table = Table(title=f"speed: {clip} ({sp['width']}x{sp['height']}, {sp['frames']} "
                            f"frames; {sp['device']}, {sp['dtype']}; median of {sp['repeats']}; "
                            f"peak RAM {sp['peak_rss_mb']:.0f} MB)", box=None,
                      header_style="bold")
        for column in ("stage", "seconds", "frames/s", "ms/frame", "vs decode floor"):
            table.add_column(column, justify="left" if column == "stage" else "right")
        for st in sp["stages"]:
            ratio = st["ratio_to_floor"]
            table.add_row(st["stage"], f"{st['seconds']:.3f}",
                          f"{st['fps']:.0f}" if st["frames"] else "",
                          f"{st['ms_per_frame']:.2f}" if st["frames"] else "",
                          "" if ratio is None else f"{ratio:.2f}×")
        out.print(table)


ASSET_COLUMNS = ("name", "size", "cached", "used by", "licence", "source")


def _asset_rows(cache) -> list[tuple[str, ...]]:
    """The registry's assets as rows of :data:`ASSET_COLUMNS` (text, made printable)."""
    from lexp import weights

    rows = []
    for asset in weights.registry().values():
        size = f"{asset.size / 1e6:,.1f} MB" if asset.size else "?"
        rows.append(tuple(printable(str(v)) for v in (
            asset.name, size, "yes" if weights.is_cached(asset, cache) else "no",
            asset.used_by, asset.licence, asset.description)))
    return rows


def assets_table(out, cache) -> None:
    """``lexp download --list``: the registry's assets, and whether each is cached."""
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ASSET_COLUMNS:
        table.add_column(column)
    for row in _asset_rows(cache):
        table.add_row(*(escape(cell) for cell in row))
    out.print(table)


def assets_text(cache) -> str:
    """:func:`assets_table` as plain aligned columns (for a pipe or a file)."""
    rows = [ASSET_COLUMNS, *_asset_rows(cache)]
    widths = [max(len(row[k]) for row in rows) for k in range(len(ASSET_COLUMNS) - 1)]
    lines = ("  ".join([*(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)),
                        row[-1]]) for row in rows)
    return "".join(line + "\n" for line in lines)


def describe_result(result, verbose: bool = False) -> str:
    """What a render made, in a photographer's words ('4.0 s exposure, 120 frames
    stacked (auto: ...)'); with --verbose the method and the engineering detail too
    ('[flow: dis-medium; chosen by auto: ...]')."""
    from lexp.renderers.result import in_words

    line = in_words(result.method, result.frames, result.exposure_s, result.fps,
                    result.details)
    if verbose:
        line += f" [{'; '.join([result.method, *result.details.summary()])}]"
    return line
