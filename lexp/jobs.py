"""From command-line inputs to finished images: resolving inputs, planning outputs, batch.

:func:`resolve_inputs` turns what the user typed into clips:

- ``-``: a video stream on stdin.
- a video file: one clip. A file with an unknown extension is tried as a video.
- image files (typically a shell-expanded glob ``frames/*.png``): together, one clip
  whose frames are those files in natural order.
- a folder: every video in it is a clip (a batch); a folder of images and no videos is
  one clip of frames.
- a quoted glob (``'shots/*.jpg'``): expanded by lexp with the same rules.

:func:`plan_jobs` decides each clip's output path; :func:`render_jobs` renders them one
after another, never stopping at a failed clip: every failure is reported in its result.
"""

from __future__ import annotations

import glob
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lexp import __version__
from lexp.config import OutputConfig, RenderConfig
from lexp.errors import InputError, LexpError, OutputError, UsageError
from lexp.media import STDIN, ClipSource, is_image, is_video, natural_key
from lexp.paths import check_writable_dir

STDOUT = "-"
_GLOB_CHARS = set("*?[")


def resolve_inputs(args: list[str]) -> list[ClipSource]:
    """The clips named by the command line, in order (see the module docstring)."""
    if not args:
        raise UsageError("no input given", hint="e.g. lexp render clip.mp4 -o out.jpg")
    sources: list[ClipSource] = []
    pending_images: list[Path] = []

    def flush_images() -> None:
        if pending_images:
            name = str(pending_images[0].parent / "*") if len(pending_images) > 1 \
                else str(pending_images[0])
            sources.append(ClipSource(name, "frames", tuple(pending_images)))
            pending_images.clear()

    for arg in args:
        if arg == STDIN:
            if len(args) > 1:
                raise UsageError("'-' (stdin) cannot be mixed with other inputs")
            return [ClipSource(STDIN, "stdin")]
        path = Path(arg)
        if path.is_dir():
            flush_images()
            sources.extend(_sources_in(arg, sorted(path.iterdir(), key=natural_key)))
        elif path.exists():
            if is_image(path):
                pending_images.append(path)
            else:
                flush_images()
                sources.append(ClipSource(arg, "video", (path,)))
        elif _GLOB_CHARS & set(arg):
            flush_images()
            matches = [Path(p) for p in sorted(glob.glob(arg), key=natural_key)]
            if not matches:
                raise InputError(f"no files match {arg}")
            sources.extend(_sources_in(arg, matches))
        else:
            raise InputError(f"no such file or folder: {arg}")
    flush_images()
    return sources


def _sources_in(name: str, entries: list[Path]) -> list[ClipSource]:
    files = [p for p in entries if p.is_file() and not p.name.startswith(".")]
    videos = [p for p in files if is_video(p)]
    if videos:
        return [ClipSource(str(p), "video", (p,)) for p in videos]
    images = [p for p in files if is_image(p)]
    if images:
        return [ClipSource(name, "frames", tuple(images))]
    raise InputError(f"no videos or images in {name}",
                     hint="lexp reads video files (mp4, mov, mkv, ...) and image frames "
                          "(jpg, png, tif)")


@dataclass(frozen=True)
class Job:
    """One clip to render and where its image goes (``-`` for stdout)."""

    source: ClipSource  # the clip
    output: str  # the image path, or "-" for stdout
    format: str  # jpeg | png | tiff
    bit_depth: int  # 8 or 16


@dataclass
class JobResult:
    """What happened to one job; also the ``--json`` line for it."""

    input: str  # the input as given
    output: str  # the output path, or "-"
    status: str  # "ok", "skipped" or "failed"
    frames: int = 0  # frames stacked
    seconds: float = 0.0  # wall time for this clip
    method: str = ""  # the method used
    error: str | None = None  # one-line reason, when failed or skipped
    hint: str | None = None  # what to do about it
    warnings: list[str] = field(default_factory=list)  # non-fatal problems
    exit_code: int = 0  # the exit code this result alone would give

    def to_json(self) -> dict[str, Any]:
        d = {"input": self.input, "output": self.output, "status": self.status,
             "frames": self.frames, "seconds": round(self.seconds, 3), "method": self.method}
        for key in ("error", "hint"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        if self.warnings:
            d["warnings"] = self.warnings
        return d


def plan_jobs(sources: list[ClipSource], output: str | None, config: RenderConfig,
              out: OutputConfig) -> list[Job]:
    """Pair each clip with its output path, checking that every output can be written.

    ``output`` is a file (one clip), ``-`` (stdout, one clip), a folder (existing, or
    ending in ``/``: created), or None (the current folder).
    """
    from lexp.stills import DEFAULT_SUFFIX, format_for, resolve_bit_depth

    def job(source: ClipSource, target: str, fmt: str) -> Job:
        if any(_same_file(target, p) for p in source.paths):
            raise UsageError(f"-o {target} is one of the inputs of {source.name}",
                             hint="write the image somewhere else; lexp never replaces an input")
        return Job(source, target, fmt, resolve_bit_depth(fmt, out.bit_depth))

    if output == STDOUT:
        if len(sources) != 1:
            raise UsageError("-o - (stdout) takes one input",
                             hint="give an output folder for several inputs: -o out/")
        if sys.stdout.isatty():
            raise UsageError("refusing to write image bytes to a terminal",
                             hint="redirect stdout: lexp render clip.mp4 -o - > out.jpg")
        return [job(sources[0], STDOUT, out.format or "jpeg")]
    is_dir = output is None or output.endswith(("/", os.sep)) or Path(output).is_dir()
    if not is_dir:
        if len(sources) > 1:
            raise UsageError(f"{len(sources)} inputs but -o {output} is a single file",
                             hint="give a folder for several inputs: -o out/")
        target = Path(output)
        fmt = format_for(target, out.format)
        check_writable_dir(target.parent, target)
        return [job(sources[0], str(target), fmt)]
    folder = Path(output) if output else Path(".")
    if not folder.exists():
        try:
            folder.mkdir(parents=True)
        except OSError as err:
            raise OutputError(f"cannot create output folder {folder}: {err.strerror}") from err
    fmt = out.format or "jpeg"
    suffix = DEFAULT_SUFFIX[fmt]
    jobs, seen = [], {}
    for source in sources:
        target = folder / f"{source.stem}_{config.method}{suffix}"
        if target in seen:
            raise UsageError(f"{seen[target]} and {source.name} would both write {target}",
                             hint="render them into separate output folders")
        seen[target] = source.name
        check_writable_dir(folder, target)
        jobs.append(job(source, str(target), fmt))
    return jobs


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def render_jobs(jobs: list[Job], config: RenderConfig, out: OutputConfig, *,
                overwrite: bool = False,
                progress_for: Callable[[Job], Any] | None = None,
                on_result: Callable[[JobResult], None] | None = None,
                debug: bool = False) -> list[JobResult]:
    """Render every job; a failed clip is reported in its result and the rest go on.

    ``progress_for(job)`` may return a context manager yielding an
    ``on_progress(done, total)`` callback; ``on_result`` is called after each job.
    KeyboardInterrupt stops the whole batch (nothing half-written is left behind).
    """
    results = []
    for job in jobs:
        if job.output != STDOUT and not overwrite and Path(job.output).exists():
            result = JobResult(job.source.name, job.output, "skipped", method=config.method,
                               error=f"{job.output} exists", hint="use --overwrite to replace it")
        else:
            result = _render_one(job, config, out, progress_for, debug)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def _render_one(job, config, out, progress_for, debug) -> JobResult:
    started = time.perf_counter()
    base = JobResult(job.source.name, job.output, "failed", method=config.method)
    try:
        data, stacked = render_image(job, config, out, progress_for)
        _write_output(job.output, data)
    except LexpError as err:
        base.error, base.hint, base.exit_code = err.message, err.hint, err.exit_code
        base.seconds = time.perf_counter() - started
        return base
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:  # a bug: report it as such, keep the batch going
        if debug:
            raise
        base.error = f"internal error: {type(err).__name__}: {err}"
        base.hint = "run again with --debug and report the traceback"
        base.exit_code = 1
        return base
    base.status, base.frames = "ok", stacked.frames_used
    base.warnings = stacked.warnings
    base.seconds = time.perf_counter() - started
    return base


def render_image(job: Job, config: RenderConfig, out: OutputConfig, progress_for=None):
    """Decode, stack and encode one clip. Returns (image file bytes, StackResult)."""
    import contextlib

    from lexp import media, render, stills

    ctx = progress_for(job) if progress_for else contextlib.nullcontext(None)
    with media.open_clip(job.source, config.fps) as clip, ctx as on_progress:
        stacked = render.stack_clip(clip, config, on_progress)
    settings = {
        "lexp_version": __version__,
        "input": job.source.name,
        "method": config.method,
        "frames_used": stacked.frames_used,
        "first_frame": stacked.first_frame,
        "last_frame": stacked.last_frame,
        "clip": {"width": stacked.clip.width, "height": stacked.clip.height,
                 "fps": stacked.clip.fps},
        "config": config.to_dict(),
        "output": {"format": job.format, "bit_depth": job.bit_depth, "quality": out.quality},
    }
    encoded = render.finish(stacked.linear, config)
    data = stills.encode_image(encoded, job.format, bit_depth=job.bit_depth,
                               quality=out.quality, settings=settings)
    if not data:
        raise OutputError(f"could not encode the image as {job.format}")
    return data, stacked


def _write_output(output: str, data: bytes) -> None:
    if output == STDOUT:
        try:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        except BrokenPipeError as err:
            raise OutputError("stdout was closed before the image was written") from err
        return
    from lexp.paths import write_bytes_atomic

    write_bytes_atomic(output, data)
