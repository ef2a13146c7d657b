"""``lexp render DIR --follow`` and ``lexp render - --follow``: the options, their checks,
and the lines a followed exposure prints (the work is :mod:`lexp.follow`'s)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lexp import stdout
from lexp.errors import UsageError

PANEL = "Follow a folder or a stream as it grows"

Follow = Annotated[bool, typer.Option(
    "--follow", rich_help_panel=PANEL,
    help="Build the exposure as frames arrive: a folder an intervalometer or a tethered "
         "camera writes into (each file taken once its writer has finished), or a video "
         "stream on stdin. Runs until --until, --idle, the end of the stream or Ctrl-C, "
         "rewriting the output as it goes and keeping a checkpoint beside it: run the same "
         "command again after a crash to resume. With -m mean, flow, max (star trails) or "
         "min; --video grows with it. "
         "e.g. lexp render shots/ --follow -m max -o trails.jpg")]
PreviewEvery = Annotated[str, typer.Option(
    "--preview-every", metavar="N|TIME", rich_help_panel=PANEL,
    help="How often a followed exposure rewrites its output (and its checkpoint): every N "
         "frames (10f) or a time (30s, 5m). e.g. --preview-every 10f")]
UntilOption = Annotated[str | None, typer.Option(
    "--until", metavar="N|TIME|HH:MM", rich_help_panel=PANEL,
    help="End a followed exposure after N frames in all (500f), a time from now (8h) or at "
         "a clock time (05:30). e.g. --until 05:30")]
Idle = Annotated[str | None, typer.Option(
    "--idle", metavar="TIME", rich_help_panel=PANEL,
    help="End a followed folder when no new frame has come for this long. e.g. --idle 10m")]
Poll = Annotated[float, typer.Option(
    "--poll", min=0.05, metavar="SECONDS", rich_help_panel=PANEL,
    help="How often a followed folder is looked at; a file is taken once two looks find it "
         "unchanged. e.g. --poll 5 (a slow network share)")]

# Options that read a finished clip as a whole: not for a followed one.
_WHOLE_CLIP_OPTIONS = ("--start", "--end", "--stride", "--max-frames", "--exposure",
                       "--comet", "--align", "--keep-sharp", "--sharp-mask",
                       "--deflicker", "--rear-curtain", "--gap-fill", "--jobs", "--shard")


def check_follow_options(inputs: list[str], output: str | None, given: dict[str, bool]) -> None:
    """A usage error for what --follow cannot do: more than one input, an input that is
    not a folder or stdin, stdout as the output, or an option that needs the whole clip
    (``given``: option name -> whether it was set)."""
    if len(inputs) != 1:
        raise UsageError("--follow follows one folder or one stream",
                         hint="e.g. lexp render shots/ --follow -m max -o trails.jpg")
    if inputs[0] != "-" and not Path(inputs[0]).is_dir():
        raise UsageError(f"--follow watches a folder or a stream on stdin, not {inputs[0]}",
                         hint="give the folder the camera writes into, or - for stdin")
    if output == "-":
        raise UsageError("--follow rewrites its output as it goes, so it cannot be stdout",
                         hint="give -o a file, e.g. -o trails.jpg")
    for option in _WHOLE_CLIP_OPTIONS:
        if given.get(option):
            raise UsageError(f"--follow cannot be used with {option}, which needs the whole "
                             "clip", hint="render the finished folder without --follow for it")


def run_follow(source_name: str, output: str | None, config, out, *, video: str | None,
               preview_every: str,
               until: str | None, idle: str | None, poll: float, overwrite: bool,
               json_lines: bool, verbose: bool, quiet: bool) -> None:
    """Follow the folder or stream into its output, printing a line per preview and the
    result as ``lexp render`` prints one (and its ``--json`` line)."""
    from lexp import follow, jobs
    from lexp.cli.show import Reporter, describe_result
    from lexp.follow_options import Every, FollowOptions, Until, seconds_of
    from lexp.media import STDIN, ClipSource
    from lexp.renderers.result import exposure_seconds

    reporter = Reporter(quiet=quiet)
    source = ClipSource(source_name, "stdin" if source_name == STDIN else "frames")
    job = jobs.plan_jobs([source], output, config, out, video=video)[0]
    idle_seconds = seconds_of(idle, "--idle") if idle is not None else None
    options = FollowOptions(
        preview_every=Every.parse(preview_every, "--preview-every"),
        until=Until.parse(until) if until else Until(),
        idle_seconds=idle_seconds, poll_seconds=poll)
    result = follow.follow(source, Path(job.output), config, options,
                           image_format=job.format, bit_depth=job.bit_depth,
                           quality=out.quality, overwrite=overwrite,
                           video=Path(job.video) if job.video else None, say=reporter.info,
                           warn=reporter.warn)
    image = result.image
    done = jobs.JobResult(source_name, job.output, "ok", frames=result.frames,
                          seconds=image.seconds, method=image.method, details=image.details,
                          fps=image.clip.fps, warnings=result.skipped,
                          exposure_s=exposure_seconds(image.first_frame, image.last_frame,
                                                      image.clip.fps, image.details))
    if json_lines:
        record = {**done.to_json(), "ended": result.ended, "resumed": result.resumed}
        stdout.write_text(json.dumps(record) + "\n", "a --json line")
    resumed = f" ({result.resumed} from the checkpoint)" if result.resumed else ""
    reporter.info(f"{source_name} → {job.output}: {describe_result(done, verbose)}{resumed}; "
                  f"{result.ended}")
