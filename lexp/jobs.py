"""From clips to planned outputs: :func:`plan_jobs` pairs each clip with its output path
(a file, a folder, a name template, a shard of a job array) and checks, before anything
is decoded, that every output can be written and replaces no input. :mod:`lexp.batch`
renders the plan.
"""

from __future__ import annotations

import os
import string
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lexp.config import OutputConfig, RenderConfig
from lexp.errors import OutputError, UsageError
from lexp.media import ClipSource
from lexp.paths import check_writable_dir, names_stdout, through_links
from lexp.renderers.result import RenderDetails

STDOUT = "-"
NAME_MAX = 255  # bytes in one file name, on every file system lexp writes to


@dataclass(frozen=True)
class Job:
    """One clip to render and where its image goes (``-`` for stdout)."""

    source: ClipSource  # the clip
    output: str  # the image path, or "-" for stdout
    format: str  # jpeg | png | tiff
    bit_depth: int  # 8 or 16
    video: str | None = None  # the trail video (--video), if asked for


@dataclass
class JobResult:
    """What happened to one job; also the ``--json`` line for it."""

    input: str  # the input as given
    output: str  # the output path, or "-"
    status: str  # "ok", "skipped" or "failed"
    frames: int = 0  # frames stacked
    seconds: float = 0.0  # wall time for this clip
    exposure_s: float | None = None  # the time the exposure spans (None: no frame rate)
    fps: float | None = None  # the clip's frame rate
    method: str = ""  # the method that ran (what auto chose, for auto)
    details: RenderDetails = field(default_factory=RenderDetails)  # what each step did
    error: str | None = None  # one-line reason, when failed or skipped
    hint: str | None = None  # what to do about it
    warnings: list[str] = field(default_factory=list)  # non-fatal problems
    exit_code: int = 0  # the exit code this result alone would give

    def to_json(self) -> dict[str, Any]:
        d = {"input": self.input, "output": self.output, "status": self.status,
             "frames": self.frames, "seconds": round(self.seconds, 3), "method": self.method}
        if self.exposure_s is not None:
            d["exposure_s"] = round(self.exposure_s, 3)
        for key in ("error", "hint"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        if details := self.details.to_dict():
            d["details"] = details
        if self.warnings:
            d["warnings"] = self.warnings
        return d


TEMPLATE_FIELDS = ("stem", "name", "parent", "method")


def plan_jobs(sources: list[ClipSource], output: str | None, config: RenderConfig,
              out: OutputConfig, shard: tuple[int, int] | None = None,
              video: str | None = None) -> list[Job]:
    """Pair each clip with its output path, checking that every output can be written.

    ``output`` is a file (one clip), ``-`` (stdout, one clip), a folder (existing, or
    ending in ``/``), a template with ``{stem}``, ``{name}``, ``{parent}``, ``{method}``
    (e.g. ``renders/{parent}/{stem}_{method}.png``), or None (the current folder). Folders
    that a folder or template output needs are created. ``shard=(i, n)`` keeps the i-th
    of n disjoint parts (1-based) of the plan; see :func:`shard_of`. ``video``: the
    trail video's path or template (same fields), for every job.
    """
    jobs = _plan_images(sources, output, config, out, shard)
    if video is not None:
        jobs = _plan_videos(jobs, video, config)
    return jobs


VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv")


def _plan_videos(jobs: list[Job], video: str, config: RenderConfig) -> list[Job]:
    from dataclasses import replace

    if "{" not in video and len(jobs) > 1:
        raise UsageError(f"{len(jobs)} inputs but --video {video} is a single file",
                         hint="use a template, e.g. --video 'out/{stem}_trails.mp4'")
    planned, seen = [], {}
    for job in jobs:
        target = through_links(_fill(video, job.source, config))
        check_name_length(target, "--video")
        if target.suffix.lower() not in VIDEO_SUFFIXES:
            raise UsageError(f"--video {target} is not a video file name",
                             hint="end it in .mp4 (or .mov, .m4v, .mkv)")
        if target in seen or (job.output != STDOUT and _same_file(target, job.output)) or \
                str(target) == job.output:
            raise UsageError(f"--video {target} would be written twice",
                             hint="give each input its own video: put {stem} in the name")
        check_not_an_input(target, job.source.paths + _option_inputs(config), "--video",
                           job.source.name)
        seen[target] = job
        _ready_folder(target.parent)
        planned.append(replace(job, video=str(target)))
    return planned


def _option_inputs(config: RenderConfig) -> tuple[Path, ...]:
    """Files that options read (--sharp-mask, a --checkpoint file): inputs too, which no
    output may replace."""
    named = (config.sharp_mask, config.checkpoint)
    return tuple(Path(p) for p in named if p and Path(p).is_file())


def _plan_images(sources, output, config, out, shard) -> list[Job]:
    from lexp.stills import DEFAULT_SUFFIX, format_for, resolve_bit_depth

    def job(source: ClipSource, target: str, fmt: str) -> Job:
        check_name_length(target, "-o")
        check_not_an_input(target, source.paths + _option_inputs(config), "-o", source.name)
        return Job(source, target, fmt, resolve_bit_depth(fmt, out.bit_depth))

    if output not in (None, STDOUT) and names_stdout(output):
        output = STDOUT  # -o /dev/stdout: what -o - means (a rename would replace the link)
    if output == STDOUT:
        if len(sources) != 1:
            raise UsageError("-o - (stdout) takes one input",
                             hint="give an output folder for several inputs: -o out/")
        from lexp import stdout

        stdout.check_open("the image")
        if stdout.is_terminal():
            raise UsageError("refusing to write image bytes to a terminal",
                             hint="redirect stdout: lexp render clip.mp4 -o - > out.jpg")
        return [job(sources[0], STDOUT, out.format or "jpeg")]
    is_template = output is not None and "{" in output
    if output is not None and not is_template:
        check_name_length(output, "-o")  # before is_dir(), which raises on such a name
    is_dir = output is None or output.endswith(("/", os.sep)) or Path(output).is_dir()
    if not is_template and not is_dir:
        if len(sources) > 1:
            raise UsageError(f"{len(sources)} inputs but -o {output} is a single file",
                             hint="give a folder (-o out/) or a template (-o 'out/{stem}.jpg')")
        target = through_links(output)
        fmt = format_for(Path(output), out.format)  # the name given says the format
        check_writable_dir(target.parent, target)
        return [job(sources[0], str(target), fmt)]
    if is_template:
        template = output
    else:
        folder = (output or ".").rstrip("/" + os.sep) or "/"
        template = os.path.join(folder, "{stem}_{method}" + DEFAULT_SUFFIX[out.format or "jpeg"])
    jobs, seen = [], {}
    for source in sources:
        named = Path(_fill(template, source, config))
        target = through_links(named)
        if target in seen:
            raise UsageError(f"{seen[target]} and {source.name} would both write {target}",
                             hint="use a template that tells them apart, e.g. -o "
                                  "'out/{parent}_{stem}.jpg'")
        seen[target] = source.name
        jobs.append(job(source, str(target), format_for(named, out.format)))
    if shard is not None:
        jobs = [j for j in jobs if shard_of(j, shard[1]) == shard[0]]
    for folder in sorted({Path(j.output).parent for j in jobs}):
        _ready_folder(folder)
    return jobs


def check_not_an_input(target: str | Path, inputs: list[Path] | tuple[Path, ...],
                       option: str, clip: str) -> None:
    """A UsageError, before any work, if ``target`` is one of ``inputs`` (by identity:
    a link or another spelling of the same file counts). lexp never replaces an input."""
    if any(_same_file(target, p) for p in inputs):
        raise UsageError(f"{option} {target} is one of the inputs of {clip}",
                         hint="write it somewhere else; lexp never replaces an input")


def check_folder_holds_no_input(folder: str | Path, inputs: list[Path] | tuple[Path, ...],
                                option: str, clip: str) -> None:
    """A UsageError if ``folder`` (where files will be written by name) is the folder of
    one of ``inputs``: an export named like a frame would replace it, and the exports
    would be read as frames by the next run."""
    if any(_same_file(folder, Path(p).parent) for p in inputs):
        raise UsageError(f"{option} {folder} is the folder of {clip}'s frames",
                         hint="export into a folder of its own, e.g. " + option + " "
                              f"{Path(folder) / 'flow'}")


def check_name_length(path: str | Path, option: str) -> None:
    """A UsageError, before any work, for a file name longer than file systems allow."""
    size = len(os.fsencode(Path(path).name))
    if size > NAME_MAX:
        raise UsageError(f"{option} {path}: the file name is {size} bytes long; file "
                         f"systems allow {NAME_MAX}", hint="choose a shorter name")


def _ready_folder(folder: Path) -> None:
    """Create an output folder (and its parents) if needed, and check it is writable."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create output folder {folder}: {err.strerror}") from err
    check_writable_dir(folder)


def _fill(template: str, source: ClipSource, config: RenderConfig) -> str:
    first = source.paths[0] if source.paths else Path(source.name)
    # A video's folder, or the folder that holds a folder of frames.
    folder = first.resolve().parent if source.kind == "video" else first.resolve().parent.parent
    fields = {"stem": source.stem, "name": first.name if source.kind == "video" else source.stem,
              "parent": folder.name if source.paths else "stdin", "method": config.method}
    hint = "fields: " + ", ".join(f"{{{f}}}" for f in TEMPLATE_FIELDS) + "; {{ and }} for braces"
    try:
        # Plain fields only: str.format would also take {stem.__class__}, {stem[0]},
        # {stem!r} or {stem:>9999} and write what they evaluate to.
        for _, field_name, spec, conversion in string.Formatter().parse(template):
            if field_name is not None and (field_name not in TEMPLATE_FIELDS or spec or
                                           conversion):
                raise ValueError(f"{{{field_name}{'!' + conversion if conversion else ''}"
                                 f"{':' + spec if spec else ''}}} is not a field")
        return template.format_map(fields)
    except (KeyError, IndexError, ValueError) as err:
        raise UsageError(f"bad output template {template!r}: {err}", hint=hint) from None


def shard_of(job: Job, count: int) -> int:
    """The shard (1..count) a job belongs to: a stable hash of its output path.

    Every machine of a job array computes the same answer for the same command line,
    so the shards never overlap and together cover the plan; a file added to the input
    folder between runs does not move the others.
    """
    return zlib.crc32(job.output.encode("utf-8")) % count + 1


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/8"`` -> (2, 8); shards are numbered from 1."""
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        index = count = 0
    if not (count >= 1 and 1 <= index <= count):
        raise UsageError(f"--shard {text!r} must be I/N with 1 <= I <= N",
                         hint="e.g. --shard 1/4 ... --shard 4/4 (Slurm: "
                              "$((SLURM_ARRAY_TASK_ID+1))/$SLURM_ARRAY_TASK_COUNT)")
    return index, count


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
