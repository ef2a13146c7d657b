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

import contextlib
import glob
import os
import string
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lexp.config import OutputConfig, RenderConfig
from lexp.errors import InputError, LexpError, OutputError, UsageError
from lexp.media import STDIN, ClipSource, is_image, is_video, natural_key, refuse_special_file
from lexp.paths import check_writable_dir

STDOUT = "-"
_GLOB_CHARS = set("*?[")


def resolve_inputs(args: list[str], problems: list | None = None) -> list[ClipSource]:
    """The clips named by the command line, in order (see the module docstring).
    ``problems``: when given, an argument that names nothing usable (missing, a FIFO, a
    folder of junk) is appended to it as (argument, InputError) and the rest go on;
    otherwise the first such argument raises."""
    if not args:
        raise UsageError("no input given", hint="e.g. lexp render clip.mp4 -o out.jpg")
    sources: list[ClipSource] = []
    pending_images: list[Path] = []

    def flush_images() -> None:
        if pending_images:
            name = str(pending_images[0].parent / "*") if len(pending_images) > 1 \
                else str(pending_images[0])
            # Natural order, as for a folder: a shell glob passes frame10 before frame2,
            # and order matters to flow.
            files = sorted(pending_images, key=natural_key)
            frames, notes = _without_lexp_outputs(name, files) if len(files) > 1 \
                else (files, ())
            sources.append(ClipSource(name, "frames", tuple(frames), notes))
            pending_images.clear()

    if STDIN in args:
        if len(args) > 1:
            raise UsageError("'-' (stdin) cannot be mixed with other inputs")
        return [ClipSource(STDIN, "stdin")]
    for arg in args:
        try:
            path = Path(arg)
            refuse_special_file(path)
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
                raise InputError(f"no such file or folder: {arg}",
                                 hint="check the name; quote a glob for lexp to expand it")
        except InputError as err:
            if problems is None:
                raise
            problems.append((arg, err))
    flush_images()
    return sources


def _sources_in(name: str, entries: list[Path]) -> list[ClipSource]:
    files = [p for p in entries if p.is_file() and not p.name.startswith(".")]
    videos = [p for p in files if is_video(p)]
    if videos:
        return [ClipSource(str(p), "video", (p,)) for p in videos]
    images = [p for p in files if is_image(p)]
    if images:
        frames, notes = _without_lexp_outputs(name, images)
        if frames:
            return [ClipSource(name, "frames", tuple(frames), notes)]
    raise InputError(f"no videos or images in {name}",
                     hint="lexp reads video files (mp4, mov, mkv, ...) and image frames "
                          "(jpg, png, tif)")


def _without_lexp_outputs(name: str, images: list[Path]) -> tuple[list[Path], tuple]:
    """The frames of a folder (or glob) without the images lexp itself wrote there (``-o
    frames/out.png`` run twice would take the first result for a frame), and a warning
    naming what was left out."""
    from lexp.stills import is_lexp_output

    ours = [p for p in images if is_lexp_output(p)]
    if not ours:
        return images, ()
    shown = ", ".join(p.name for p in ours[:3]) + (f" and {len(ours) - 3} more"
                                                    if len(ours) > 3 else "")
    note = (f"{name}: left out {shown}: lexp wrote {'it' if len(ours) == 1 else 'them'} "
            "(the embedded settings say so), so not a frame of the clip")
    return [p for p in images if p not in ours], (note,)


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
    method: str = ""  # the method that ran (what auto chose, for auto)
    about: dict = field(default_factory=dict)  # the method's details (flow estimator, ...)
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
        if self.about:
            d["details"] = self.about
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
        target = Path(_fill(video, job.source, config))
        check_name_length(target, "--video")
        if target.suffix.lower() not in VIDEO_SUFFIXES:
            raise UsageError(f"--video {target} is not a video file name",
                             hint="end it in .mp4 (or .mov, .m4v, .mkv)")
        if target in seen or (job.output != STDOUT and _same_file(target, job.output)) or \
                str(target) == job.output:
            raise UsageError(f"--video {target} would be written twice",
                             hint="give each input its own video: put {stem} in the name")
        if any(_same_file(target, p) for p in job.source.paths + _option_inputs(config)):
            raise UsageError(f"--video {target} is one of the inputs of {job.source.name}",
                             hint="write the video somewhere else; lexp never replaces an input")
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
        if any(_same_file(target, p) for p in source.paths + _option_inputs(config)):
            raise UsageError(f"-o {target} is one of the inputs of {source.name}",
                             hint="write the image somewhere else; lexp never replaces an input")
        return Job(source, target, fmt, resolve_bit_depth(fmt, out.bit_depth))

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
        target = Path(output)
        fmt = format_for(target, out.format)
        check_writable_dir(target.parent, target)
        return [job(sources[0], str(target), fmt)]
    if is_template:
        template = output
    else:
        folder = (output or ".").rstrip("/" + os.sep) or "/"
        template = os.path.join(folder, "{stem}_{method}" + DEFAULT_SUFFIX[out.format or "jpeg"])
    jobs, seen = [], {}
    for source in sources:
        target = Path(_fill(template, source, config))
        if target in seen:
            raise UsageError(f"{seen[target]} and {source.name} would both write {target}",
                             hint="use a template that tells them apart, e.g. -o "
                                  "'out/{parent}_{stem}.jpg'")
        seen[target] = source.name
        jobs.append(job(source, str(target), format_for(target, out.format)))
    if shard is not None:
        jobs = [j for j in jobs if shard_of(j, shard[1]) == shard[0]]
    for folder in sorted({Path(j.output).parent for j in jobs}):
        _ready_folder(folder)
    return jobs


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
    check_writable_dir(folder, folder / "...")


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


def render_jobs(jobs: list[Job], config: RenderConfig, out: OutputConfig, *,
                overwrite: bool = False, workers: int = 1,
                progress_for: Callable[[Job], Any] | None = None,
                on_result: Callable[[JobResult], None] | None = None,
                debug: bool = False) -> list[JobResult]:
    """Render every job; a failed clip is reported in its result and the rest go on.

    ``workers > 1`` renders that many clips at once, in worker processes (results then
    arrive in the order they finish). ``progress_for(job)`` may return a context
    manager yielding an ``on_progress(done, total)`` callback (one process only);
    ``on_result`` is called after each job. Each output is locked while it is rendered,
    so a second lexp run over the same outputs (an overlapping cron job) skips it.
    KeyboardInterrupt/SIGTERM stop the whole batch; nothing half-written is left.
    """
    results: list[JobResult] = []

    def report(result: JobResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    if workers > 1 and len(jobs) > 1:
        _render_in_pool(jobs, config, out, overwrite, workers, debug, report)
    else:
        for job in jobs:
            report(render_job(job, config, out, overwrite, progress_for, debug))
    return results


def _render_in_pool(jobs, config, out, overwrite, workers, debug, report) -> None:
    """Render jobs in worker processes (``python -m lexp.jobs``), one job at a time each.

    Plain subprocesses rather than a multiprocessing pool: they share no locks or
    queues with us, so stopping one (Ctrl-C reaches them all; SIGTERM we forward) can
    never wedge the others, and each unwinds like a single lexp run: temp and lock files
    go. Jobs and results travel pickled over the worker's stdin/stdout, and this loop is
    single-threaded (a selector over the workers' stdout) because an interrupt raised
    inside a thread-shared lock could leave it held.
    """
    import pickle
    import selectors
    import subprocess

    pending = list(reversed(jobs))
    busy: dict = {}  # worker -> the job it is rendering
    selector = selectors.DefaultSelector()
    procs = [subprocess.Popen([sys.executable, "-m", "lexp.jobs"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE) for _ in range(min(workers, len(jobs)))]

    def failed(job: Job, why: str) -> JobResult:
        return JobResult(job.source.name, job.output, "failed", method=config.method,
                         error=why, hint="run again; --debug shows the worker's traceback",
                         exit_code=1)

    def hand_out(proc) -> None:
        if not pending:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # no more work: the worker exits on EOF
            return
        job = pending.pop()
        try:
            pickle.dump((job, config, out, overwrite, debug), proc.stdin)
            proc.stdin.flush()
        except (OSError, ValueError):  # the worker is gone: the job waits for another one
            pending.append(job)
            if proc in alive:
                alive.remove(proc)
            return
        busy[proc] = job
        selector.register(proc.stdout, selectors.EVENT_READ, proc)

    def collect(proc) -> tuple[JobResult, bool]:
        """The worker's result, and whether the worker is still alive."""
        selector.unregister(proc.stdout)
        job = busy.pop(proc)
        try:
            return pickle.load(proc.stdout), True
        except (OSError, EOFError, pickle.UnpicklingError):
            # Killed (OOM killer, kill -9) or crashed: its job failed. Remove what it
            # could not: its lock, and its temp file (named after its pid).
            with contextlib.suppress(LexpError):
                OutputLock.remove_if_stale(job.output)
            from lexp.paths import TEMP_PREFIX

            for leftover in Path(job.output).parent.glob(f"{TEMP_PREFIX}{proc.pid}-*"):
                leftover.unlink(missing_ok=True)
            return failed(job, "the worker process stopped"), False

    alive = list(procs)
    try:
        for proc in procs:
            hand_out(proc)
        while busy:
            for key, _ in selector.select():
                proc = key.data
                result, ok = collect(proc)
                report(result)
                if ok:
                    hand_out(proc)
                elif proc in alive:
                    alive.remove(proc)
            for proc in list(alive):  # work that a dead worker could not take
                if proc not in busy and pending and not proc.stdin.closed:
                    hand_out(proc)
        while pending:  # every worker died: the rest cannot be rendered
            report(failed(pending.pop(), "no worker process left"))
        for proc in procs:
            proc.wait()
    except BaseException:
        for proc in procs:  # SIGTERM reached only us: pass it on
            with contextlib.suppress(OSError):
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # Clips that finished meanwhile are done: say so, so the log matches the disk.
        for key, _ in selector.select(timeout=0):
            result, _ = collect(key.data)
            if result.status == "ok":
                report(result)
        # A worker stopped at the wrong instant may leave its lock file; none of ours is
        # held any more, and another run's held locks are left alone.
        for job in jobs:
            with contextlib.suppress(LexpError):
                OutputLock.remove_if_stale(job.output)
        raise


def _serve_jobs() -> int:
    """Worker loop (``python -m lexp.jobs``): pickled jobs in on stdin, results out."""
    import pickle
    import signal

    signal.signal(signal.SIGTERM, _raise_interrupt)
    source = sys.stdin.buffer
    # Keep the pipe to the parent on a private descriptor and point fd 1 at stderr:
    # whatever a C library prints can then never corrupt the stream of results.
    sys.stdout.flush()
    sink = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        while True:
            try:
                job, config, out, overwrite, debug = pickle.load(source)
            except EOFError:
                return 0
            pickle.dump(render_job(job, config, out, overwrite, None, debug), sink)
            sink.flush()
    except (KeyboardInterrupt, BrokenPipeError):
        return 130


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def render_job(job: Job, config: RenderConfig, out: OutputConfig, overwrite: bool = False,
               progress_for=None, debug: bool = False) -> JobResult:
    """Render one job, holding its output's lock; never raises for a bad clip."""
    started = time.perf_counter()
    base = JobResult(job.source.name, job.output, "failed", method=config.method)
    if job.output == STDOUT:
        return _render_unlocked(job, config, out, progress_for, debug, base, started)
    with OutputLock(job.output) as locked:
        if not locked:
            base.status, base.error = "skipped", "another lexp run is rendering it"
            return base
        # Checked under the lock: a run that just finished this output is not redone.
        if not overwrite and Path(job.output).exists():
            base.status, base.error = "skipped", f"{job.output} exists"
            base.hint = "use --overwrite to replace it"
            return base
        if not overwrite and job.video and Path(job.video).exists():
            base.error, base.hint = f"{job.video} exists", "use --overwrite to replace it"
            base.exit_code = 1
            return base
        return _render_unlocked(job, config, out, progress_for, debug, base, started)


def _render_unlocked(job, config, out, progress_for, debug, base, started) -> JobResult:
    try:
        data, image = render_image(job, config, out, progress_for)
        _write_output_with_video(job, data)
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
    base.status, base.frames = "ok", image.frames_used
    base.method = image.method
    base.about = image.details
    base.warnings = image.warnings
    base.seconds = time.perf_counter() - started
    return base


NAME_MAX = 255  # bytes in one file name, on every file system lexp writes to


class OutputLock:
    """An exclusive, non-blocking lock on one output, held while it is rendered.

    A hidden ``.NAME.lexp-lock`` file beside the output, locked with flock: the kernel
    releases it when the process dies, however it dies, so a stale file never blocks.
    The file is removed when the render ends.
    """

    def __init__(self, output: str) -> None:
        target = Path(output)
        self.output = output
        name = f".{target.name}.lexp-lock"
        if len(os.fsencode(name)) > NAME_MAX:  # the output's own name may be up to NAME_MAX
            import hashlib

            name = f".lexp-lock-{hashlib.sha256(os.fsencode(target.name)).hexdigest()[:32]}"
        self.path = target.with_name(name)
        self.fd: int | None = None

    def __enter__(self) -> bool:
        import fcntl

        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:  # the lock sits beside the output: name the output
            from lexp.paths import describe_os_error

            raise describe_os_error(err, self.output) from err
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            return False
        except BaseException:  # interrupted between open and lock: leave nothing behind
            self.__exit__()
            raise
        return True

    @classmethod
    def remove_if_stale(cls, output: str) -> None:
        """Remove the output's lock file if no process holds it (e.g. a killed worker's)."""
        lock = cls(output)
        if lock.path.exists() and lock.__enter__():
            lock.__exit__()

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:  # we hold the lock: the file is ours to remove
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            os.close(self.fd)
            self.fd = None


def render_image(job: Job, config: RenderConfig, out: OutputConfig, progress_for=None,
                 flow_cache: bool = True):
    """Decode, render and encode one clip. Returns (image file bytes, image.Image).
    ``flow_cache``: read and fill the flow cache (off: every flow computed, e.g. to time)."""
    from lexp.image import render_source

    ctx = progress_for(job) if progress_for else contextlib.nullcontext(None)
    video = None
    if job.video:
        from lexp.trail_video import TrailSpec

        video = TrailSpec(job.video, out.comet)
    with ctx as on_progress:
        image = render_source(job.source, config, on_progress=on_progress,
                              flow_cache=flow_cache, video=video)
    recorded = {"video": job.video, "comet": str(out.comet) if out.comet else None} \
        if job.video else {}
    data = image.encode(job.format, bit_depth=job.bit_depth, quality=out.quality,
                        output=recorded)
    return data, image


def _write_output_with_video(job: Job, data: bytes) -> None:
    """Write the image; the trail video (already in place) goes if the image cannot be
    written: a failed run leaves no outputs, not half of them."""
    try:
        _write_output(job.output, data)
    except BaseException:
        if job.video:
            Path(job.video).unlink(missing_ok=True)
        raise


def _write_output(output: str, data: bytes) -> None:
    if output == STDOUT:
        from lexp import stdout

        stdout.write_bytes(data, "the image")
        return
    from lexp.paths import write_bytes_atomic

    write_bytes_atomic(output, data)


if __name__ == "__main__":
    # Run the loop from the importable module, not this __main__ copy, so that the
    # results pickle as lexp.jobs.JobResult for the parent.
    from lexp.jobs import _serve_jobs as serve

    sys.exit(serve())
