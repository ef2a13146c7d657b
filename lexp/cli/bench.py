"""``lexp bench``: quality and speed, every method beside the baselines."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from lexp import stdout
from lexp.cli.app import RunState, app
from lexp.errors import UsageError

BENCH_EPILOG = """\
Examples:

  lexp bench --quality ../shared/clips                   # both protocols, every clip

  lexp bench --quality clips/ --sheet sheet.png --json   # numbers for scripts, and pictures

  lexp bench --speed clip.mp4                            # per stage, next to the decode floor

  lexp bench --speed synthetic:1280x720x300 --methods mean,max

  lexp bench --quality clips/ --methods flow,learned --checkpoint runs/g1/model.pt

  lexp bench --quality clips/ --protocol extrapolate --csv > scores.csv

  lexp bench --speed clip.mp4 --repeats 7

Quality: gap-fill = 8 frames (every 8th) against the linear mean of frames 0-56;
extrapolate = the first 5 frames against the linear mean of frames 0-63.
PSNR (dB) over the frame and over the moving region, and SSIM.
"""


@app.command(epilog=BENCH_EPILOG)
def bench(
    quality: list[str] = typer.Option(
        None, "--quality", metavar="CLIPS",
        help="Clips or folders of clips to score (repeatable)."),
    speed: str | None = typer.Option(
        None, "--speed", metavar="CLIP",
        help="Time each stage on this clip: a video, a folder of frames (RAW too), "
             "synthetic:WxHxN (a video lexp makes) or synthetic-raw:WxHxN (DNG frames)."),
    methods: str | None = typer.Option(
        None, "--methods", metavar="A,B",
        help="Methods to compare: first-frame, mean-8bit, mean, median, max, flow, "
             "learned, learned-seed "
             "(default: first-frame,mean-8bit,mean,median,flow)."),
    protocol: str = typer.Option(
        "both", "--protocol", help="gap-fill, extrapolate, or both."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Timed runs per stage (median)."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
    csv_out: bool = typer.Option(False, "--csv", help="Print per-clip scores as CSV on stdout."),
    sheet: Path | None = typer.Option(
        None, "--sheet", metavar="PNG",
        help="Write a contact sheet: a row per clip, a column per method, and the truth."),
    checkpoint: str | None = typer.Option(
        None, metavar="NAME|FILE", help="The generator for the learned method (a .pt file "
                                        "from `lexp train`; default: the shipped one)."),
) -> None:
    """Measure speed and quality, every method side by side with the baselines."""
    from lexp import bench as benchmarks
    from lexp.cli.show import Reporter

    if not quality and not speed:
        raise UsageError("nothing to measure", hint="give --quality CLIPS and/or --speed CLIP")
    if json_out and csv_out:
        raise UsageError("--json and --csv both want stdout", hint="choose one")
    stdout.check_open("the results")
    chosen = benchmarks.resolve_methods(methods, checkpoint)
    if sheet is not None:
        from lexp.paths import check_writable_dir

        benchmarks.sheet_suffix(sheet)  # a name it cannot be written as: before the scoring
        check_writable_dir(sheet.parent, sheet)
    if protocol not in ("both", *benchmarks.PROTOCOLS):
        raise UsageError(f"unknown protocol {protocol!r}",
                         hint="gap-fill, extrapolate or both")
    protocols = list(benchmarks.PROTOCOLS.values()) if protocol == "both" else \
        [benchmarks.PROTOCOLS[protocol]]
    reporter = Reporter(quiet=RunState.quiet)
    result: dict = {}
    if quality:
        with reporter.progress_or_lines("clips read") as on_progress:
            report = benchmarks.run_quality(quality, chosen, protocols,
                                            thumb_width=240 if sheet else 0,
                                            on_progress=on_progress)
        for clip, proto, why in report.skipped:
            reporter.info(f"{clip}: skipped for {proto} ({why})")
        scored = len({s.clip for s in report.scores})
        reporter.info(f"clips scored: {scored} of {len(report.clips)}")
        result["quality"] = report.to_json()
        if sheet:
            benchmarks.contact_sheet(report, sheet)
            reporter.info(f"contact sheet → {sheet}")
    if speed:
        with reporter.progress_or_lines("stages timed") as on_progress:
            speed_report = benchmarks.run_speed(speed, chosen, repeats=repeats,
                                                on_progress=on_progress)
        result["speed"] = speed_report.to_json()
    if json_out:
        stdout.write_text(json.dumps(_json_numbers(result), indent=2, allow_nan=False) + "\n",
                          "the --json results")
    elif csv_out:
        _print_csv(result)
    else:
        _print_bench_tables(result)


def _json_numbers(value):
    """``value`` with every NaN or infinite float as null: JSON has no such numbers
    (Python's NaN and Infinity tokens make the whole document unreadable to jq)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_numbers(v) for v in value]
    return value


def _print_csv(result: dict) -> None:
    import csv
    import io

    text = io.StringIO()
    writer = csv.writer(text)
    if "quality" in result:
        writer.writerow(["protocol", "clip", "method", "psnr", "psnr_moving", "ssim"])
        for s in result["quality"]["scores"]:
            writer.writerow([s["protocol"], s["clip"], s["method"], f"{s['psnr']:.3f}",
                             f"{s['psnr_moving']:.3f}", f"{s['ssim']:.5f}"])
    if "speed" in result:
        writer.writerow(["stage", "seconds", "frames", "fps", "ratio_to_floor"])
        for st in result["speed"]["stages"]:
            ratio = st["ratio_to_floor"]
            writer.writerow([st["stage"], f"{st['seconds']:.4f}", st["frames"],
                             f"{st['fps']:.1f}", "" if ratio is None else f"{ratio:.3f}"])
    stdout.write_text(text.getvalue(), "the CSV")


def _print_bench_tables(result: dict) -> None:
    from lexp.cli import show

    stdout.write_text(show.rich_text(lambda out: show.bench_tables(result, out)), "the tables")


