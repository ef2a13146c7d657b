"""Rendering a plan of jobs (:mod:`lexp.jobs`): one after another, or N at a time in worker
processes (``python -m lexp.batch``), never stopping at a failed clip: every failure is
reported in its result. Each output is locked while it is rendered and written
atomically, the trail video with it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lexp.config import OutputConfig, RenderConfig
from lexp.errors import LexpError
from lexp.jobs import NAME_MAX, STDOUT, Job, JobResult
from lexp.paths import LOCK_SUFFIX
from lexp.renderers.result import exposure_seconds


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
    """Render jobs in worker processes (``python -m lexp.batch``), one job at a time each.

    Plain subprocesses rather than a multiprocessing pool: they share no locks or
    queues with us, so stopping one (Ctrl-C reaches them all; SIGTERM we forward) can
    never wedge the others, and each unwinds like a single lexp run: temp and lock files
    go. Jobs and results travel pickled over the worker's stdin/stdout, and this loop is
    single-threaded (a selector over the workers' stdout) because an interrupt raised
    inside a thread-shared lock could leave it held.
    """
    pool = _WorkerPool(jobs, (config, out, overwrite, debug), min(workers, len(jobs)))
    try:
        pool.run(report)
    except BaseException:
        pool.stop(report)
        raise


class _WorkerPool:
    """Worker processes, each rendering one job at a time (see :func:`_render_in_pool`)."""

    def __init__(self, jobs: list[Job], settings: tuple, workers: int) -> None:
        import selectors
        import subprocess

        self.jobs, self.settings = jobs, settings  # settings: (config, out, overwrite, debug)
        self.pending = list(reversed(jobs))
        self.busy: dict = {}  # worker -> the job it is rendering
        self.selector = selectors.DefaultSelector()
        self.procs = [subprocess.Popen([sys.executable, "-m", "lexp.batch"],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                      for _ in range(workers)]
        self.alive = list(self.procs)

    def failed(self, job: Job, why: str) -> JobResult:
        return JobResult(job.source.name, job.output, "failed", method=self.settings[0].method,
                         error=why, hint="run again; --debug shows the worker's traceback",
                         exit_code=1)

    def hand_out(self, proc) -> None:
        """Give ``proc`` the next job, or close its stdin when there is none (it exits)."""
        import pickle
        import selectors

        if not self.pending:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # no more work: the worker exits on EOF
            return
        job = self.pending.pop()
        try:
            pickle.dump((job, *self.settings), proc.stdin)
            proc.stdin.flush()
        except (OSError, ValueError):  # the worker is gone: the job waits for another one
            self.pending.append(job)
            if proc in self.alive:
                self.alive.remove(proc)
            return
        self.busy[proc] = job
        self.selector.register(proc.stdout, selectors.EVENT_READ, proc)

    def collect(self, proc) -> tuple[JobResult, bool]:
        """The worker's result, and whether the worker is still alive."""
        import pickle

        self.selector.unregister(proc.stdout)
        job = self.busy.pop(proc)
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
            return self.failed(job, "the worker process stopped"), False

    def run(self, report) -> None:
        for proc in self.procs:
            self.hand_out(proc)
        while self.busy:
            for key, _ in self.selector.select():
                proc = key.data
                result, ok = self.collect(proc)
                report(result)
                if ok:
                    self.hand_out(proc)
                elif proc in self.alive:
                    self.alive.remove(proc)
            for proc in list(self.alive):  # work that a dead worker could not take
                if proc not in self.busy and self.pending and not proc.stdin.closed:
                    self.hand_out(proc)
        while self.pending:  # every worker died: the rest cannot be rendered
            report(self.failed(self.pending.pop(), "no worker process left"))
        for proc in self.procs:
            proc.wait()

    def stop(self, report) -> None:
        """After an interrupt or an error: stop every worker and clean up after them."""
        import subprocess

        for proc in self.procs:  # SIGTERM reached only us: pass it on
            with contextlib.suppress(OSError):
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # Clips that finished meanwhile are done: say so, so the log matches the disk.
        for key, _ in self.selector.select(timeout=0):
            result, _ = self.collect(key.data)
            if result.status == "ok":
                report(result)
        # A worker stopped at the wrong instant may leave its lock file; none of ours is
        # held any more, and another run's held locks are left alone.
        for job in self.jobs:
            with contextlib.suppress(LexpError):
                OutputLock.remove_if_stale(job.output)


def _serve_jobs() -> int:
    """Worker loop (``python -m lexp.batch``): pickled jobs in on stdin, results out."""
    import pickle

    from lexp.signals import unwind_on_stop_signals

    unwind_on_stop_signals()
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
    except OSError as err:  # what the machine refused (a cache path too long, ...)
        from lexp.paths import machine_error

        refused = machine_error(err)
        base.error, base.hint, base.exit_code = refused.message, refused.hint, 1
        base.seconds = time.perf_counter() - started
        return base
    except Exception as err:  # a bug: report it as such, keep the batch going
        if debug:
            raise
        base.error = f"internal error: {type(err).__name__}: {err}"
        base.hint = "run again with --debug and report the traceback"
        base.exit_code = 1
        return base
    base.status, base.frames = "ok", image.frames_used
    base.method = image.method
    base.exposure_s = exposure_seconds(image.first_frame, image.last_frame, image.clip.fps,
                                       image.details)
    base.fps = image.clip.fps
    base.details = image.details
    base.warnings = image.warnings
    base.seconds = time.perf_counter() - started
    return base


class OutputLock:
    """An exclusive, non-blocking lock on one output, held while it is rendered.

    A hidden ``.NAME.lexp-lock`` file beside the output, locked through ``filelock``
    (flock underneath): the kernel releases it when the process dies, however it dies,
    so a stale file never blocks. The file is removed when the render ends.
    """

    def __init__(self, output: str) -> None:
        target = Path(output)
        self.output = output
        name = f".{target.name}{LOCK_SUFFIX}"
        if len(os.fsencode(name)) > NAME_MAX:  # the output's own name may be up to NAME_MAX
            import hashlib

            name = f".{hashlib.sha256(os.fsencode(target.name)).hexdigest()[:32]}{LOCK_SUFFIX}"
        self.path = target.with_name(name)
        self.lock = None  # a filelock.FileLock while we hold it

    def __enter__(self) -> bool:
        """True when the lock is ours; False when another process holds it."""
        from filelock import FileLock, Timeout

        from lexp.paths import describe_os_error

        try:
            # Made here first: filelock reports a lock file it cannot create as a Timeout,
            # which would read as "another run holds it" (-o /proc/x.jpg did, exit 0).
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644))
        except OSError as err:  # the lock sits beside the output: name the output
            raise describe_os_error(err, self.output) from err
        lock = FileLock(self.path, thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return False
        except OSError as err:
            raise describe_os_error(err, self.output) from err
        self.lock = lock
        return True

    @classmethod
    def remove_if_stale(cls, output: str) -> None:
        """Remove the output's lock file if no process holds it (e.g. a killed worker's)."""
        from lexp.paths import remove_if_unlocked

        remove_if_unlocked(cls(output).path)

    def __exit__(self, *exc: object) -> None:
        if self.lock is not None:  # we hold the lock: the file is ours to remove
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self.lock.release()
            self.lock = None


def render_image(job: Job, config: RenderConfig, out: OutputConfig, progress_for=None,
                 flow_cache: bool = True):
    """Decode, render and encode one clip. Returns (image file bytes, image.Image).
    ``flow_cache``: read and fill the flow cache (off: every flow computed, e.g. to time)."""
    from lexp.image import render_source

    ctx = progress_for(job) if progress_for else contextlib.nullcontext(None)
    video = None
    if job.video:
        from lexp.renderers.trail_video import TrailSpec

        video = TrailSpec(job.video, out.comet)
    with ctx as on_progress:
        image = render_source(job.source, config, on_progress=on_progress,
                              flow_cache=flow_cache, video=video)
    recorded = {"video": job.video, "comet": str(out.comet) if out.comet else None} \
        if job.video else {}
    depth = job.bit_depth
    if out.bit_depth is None and job.format != "jpeg":  # 16-bit frames: a 16-bit file
        depth = max(depth, image.clip.bit_depth)
    data = image.encode(job.format, bit_depth=depth, quality=out.quality,
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
    from lexp.batch import _serve_jobs as serve

    sys.exit(serve())
