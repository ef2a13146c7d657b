"""A long exposure that builds up as its frames arrive: ``lexp render DIR --follow`` (a
folder an intervalometer writes into, :mod:`lexp.media.watch`) and ``lexp render -
--follow`` (a video stream on stdin, a webcam through ffmpeg).

- **The exposure is a running stack**: the mean's running sum, or the brightest
  (``max``) or darkest (``min``) values so far (:mod:`lexp.renderers.stack`), or the flow
  render's walk, which needs only the last frames (:mod:`lexp.renderers.flow_live`; it
  follows the frames in the order they arrive), so memory is flat however long the
  night. Frames weigh equally (an intervalometer's are evenly
  spaced); their capture times (EXIF) give the picture's ExposureTime, the span of the
  night it covers. The first frame sets the size, the camera and the kind (RAW or not);
  a frame that differs is skipped with a warning, never a reason to stop a night's run.
- **Previews**: every ``preview_every`` frames or seconds the output is rewritten
  atomically (a viewer reloading it never sees half a file), and a line says so, and the
  trail video (``--video``, :mod:`lexp.follow_video`) grows by the frames since; the
  final image when the source ends: ``until`` (a frame count or a time), ``idle`` (no new
  frame for that long; folders), the end of the stream, or Ctrl-C / SIGTERM, which
  finish cleanly with every frame seen.
- **Resumable**: with each preview (or, when the last checkpoint's writing took over a
  tenth of the time since, at the next moment with nothing to read) the running state
  is checkpointed beside the output
  (``.NAME.lexp-follow.npz``: the stack, the names of the frames in it, and the settings
  that made it; written atomically). Run the same command again after a crash, a reboot
  or a full disk and it resumes from there, reading none of the counted frames again and
  counting none twice; a checkpoint made by another command line or another format
  version is refused, naming the difference. ``--overwrite`` starts afresh.
- **Faults**: a file that vanishes or changes while it is read is skipped or read again;
  a full disk keeps the last good preview and checkpoint (written atomically) and the
  run goes on, trying again at the next preview; a folder that disappears ends the run
  with the frames seen written out and an error.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lexp import follow_state
from lexp.config import RenderConfig
from lexp.errors import InputError, OutputError, UsageError
from lexp.follow_options import FollowOptions
from lexp.media import ClipInfo, ClipSource
from lexp.media.watch import FolderGone
from lexp.renderers import calibrate

if TYPE_CHECKING:
    from lexp.image import Image

# The methods a followed exposure can run: running sums and extremes (lighten/darken
# are max/min's photographers' names), and the flow render, whose walk needs only the
# last frames. The median needs every frame at once, and auto and learned the clip as a
# whole.
FOLLOW_METHODS = {"mean": "mean", "max": "max", "lighten": "max", "min": "min",
                  "darken": "min", "flow": "flow"}
STATE_COST_SHARE = 10  # checkpoints at least this many times their cost apart


@dataclass
class FollowResult:
    image: Image  # the final exposure
    frames: int  # frames in it, resumed ones included
    resumed: int  # of those, the frames the checkpoint brought
    ended: str  # why it ended, in words
    skipped: list[str] = field(default_factory=list)  # frames left out, and why


Report = Callable[[str], None]


def follow(source: ClipSource, output: Path, config: RenderConfig, options: FollowOptions, *,
           image_format: str, bit_depth: int | None = None, quality: int = 95,
           overwrite: bool = False, video: Path | None = None,
           say: Report = lambda line: None,
           warn: Report = lambda line: None) -> FollowResult:
    """Follow ``source`` (a folder, or ``-``) into ``output`` until it ends (the module
    docstring); ``video``: a trail video growing with it (:mod:`lexp.follow_video`);
    ``say`` and ``warn`` receive a line per preview and per problem. Holds the output's
    lock throughout: a second run on it is refused."""
    from lexp.batch import OutputLock

    if config.hot_pixels and not config.dark:
        raise UsageError("--follow finds hot pixels in the darks, having no finished clip "
                         "to survey", hint="add --dark darks/")
    method = FOLLOW_METHODS.get(config.method)
    if method is None:
        raise UsageError(f"--follow cannot run -m {config.method}",
                         hint="--follow stacks as frames arrive: -m mean, -m flow, or "
                              "-m max (lighten) for star trails, or -m min (darken)")
    with OutputLock(str(output)) as locked:
        if not locked:
            raise InputError(f"another lexp run is writing {output}",
                             hint="stop it first, or give this one another -o")
        state_path = follow_state.checkpoint_path(output)
        saved = None
        if overwrite:
            state_path.unlink(missing_ok=True)
        elif state_path.exists():
            saved = follow_state.load(state_path)
        else:
            for existing in (output, video):
                if existing is not None and existing.exists():
                    raise InputError(f"{existing} exists", hint="use --overwrite to replace it")
        run = _Run(source, output, state_path, config, method, options, image_format,
                   bit_depth, quality, say, warn, saved)
        if video is not None:
            from lexp.follow_video import GrowingVideo

            run.video = GrowingVideo(video, config.fps or 30.0,
                                     saved[0].get("segments") if saved else None)
        return run.go()


class _Run:
    """One followed exposure, from its first frame (or its checkpoint) to its end."""

    def __init__(self, source, output, state_path, config, method, options, image_format,
                 bit_depth, quality, say, warn, saved) -> None:
        self.source, self.output, self.state_path = source, output, state_path
        self.config, self.method, self.options = config, method, options
        self.format, self.bit_depth, self.quality = image_format, bit_depth, quality
        self.say, self.warn = say, warn
        self.saved = saved  # (header, arrays) of a checkpoint to resume, or None
        self.names: list[str] = []  # the frames in the exposure (folders), in order
        self.stacker = None
        self.clip = None  # the clip of the first frame: its decoder, size and camera
        self.info: ClipInfo | None = None
        self.camera: dict | None = None  # the frames' camera, from a checkpoint
        self.resolved: RenderConfig | None = None
        self.skipped: list[str] = []
        self.started = time.perf_counter()
        self.resumed = 0
        self.last_preview = (0, time.monotonic())  # (frames, when)
        self.live: calibrate.LiveCalibration | None = None  # darks, flats, rejections
        self.capture: list[float] | None = None  # [first, last] capture time (EXIF, s)
        self.video = None  # follow_video.GrowingVideo, for --video
        self.preview_failing = False
        self.state_saved = (0.0, 0.0)  # (when the last checkpoint was written, its cost)
        self.state_owed = False  # a preview was written since the last checkpoint

    # ------------------------------------------------------------------ the loop
    def go(self) -> FollowResult:
        ended = "the source ended"
        gone: InputError | None = None
        if self.saved is not None:
            self._resume(*self.saved)
        until = self.options.until
        if until.frames is not None and self._count() >= until.frames:
            return self._finish(f"{until.frames} frames reached (--until)", None)
        try:
            frames = _stream_frames(self) if self.source.kind == "stdin" else \
                _folder_frames(self)
            for name, frame in frames:
                if not self._add(name, frame):
                    continue
                if self._preview_due():
                    self._write(final=False)
                if until.frames is not None and self._count() >= until.frames:
                    ended = f"{until.frames} frames reached (--until)"
                    break
            else:
                ended = self.ending or ended
        except KeyboardInterrupt:
            ended = "stopped (Ctrl-C or a stop signal): every frame seen is in it"
        except FolderGone as err:
            if self.stacker is None:
                raise
            gone, ended = err, err.message
        finally:
            if self.clip is not None:
                self.clip.close()
        if self.stacker is None:
            raise InputError(f"no frames arrived from {self.source.name}",
                             hint="check the folder or the stream; nothing was written")
        return self._finish(ended, gone)

    ending: str | None = None  # set by the frame sources when they stop on their own

    def _finish(self, ended: str, gone: InputError | None) -> FollowResult:
        if self.live is not None:  # the frame held for its streaks, against the one before
            for name, codes in self.live.flush():
                self._stack(name, codes)
        image = self._write(final=True)
        if gone is not None:
            raise InputError(f"{gone.message}: {self.output} holds the {self._count()} "
                             "frames seen", hint=gone.hint)
        return FollowResult(image, self._count(), self.resumed, ended, self.skipped)

    def _count(self) -> int:
        return self.stacker.count if self.stacker is not None else 0

    def _add(self, name: str, frame: np.ndarray) -> bool:
        """Stack one frame, calibrated first when asked (the first frame sets the size and
        depth: a later one that differs is skipped, with a warning); whether any frame was
        stacked (a calibrated one may be rejected, or held a frame for streaks)."""
        calibrating = calibrate.wanted(self.config)
        if self.stacker is None:
            self._start(frame.shape[1], frame.shape[0],
                        16 if calibrating or frame.dtype != np.uint8 else 8,
                        self.info.transfer_tag)
        elif frame.shape != (self.info.height, self.info.width, 3) or (
                not calibrating and (frame.dtype == np.uint8) != (self.info.bit_depth == 8)):
            h, w = frame.shape[:2]
            self.skip(name or f"frame {self._count() + 1}",
                      f"{w}x{h}, {frame.dtype}: the exposure's frames are "
                      f"{self.info.width}x{self.info.height}, {self.info.bit_depth}-bit")
            return False
        ready = self.live.push(name, frame) if self.live is not None else [(name, frame)]
        for ready_name, codes in ready:
            self._stack(ready_name, codes)
        return bool(ready)

    def _stack(self, name: str, codes: np.ndarray) -> None:
        self.stacker.add(codes)
        if name:
            self.names.append(name)
            self._captured(Path(self.source.name) / name)
        if self.video is not None:  # the picture so far, a video frame
            self.video.add(self._image().to_srgb())

    def _captured(self, path: Path) -> None:
        """Widen the span of capture times (EXIF) the exposure covers with ``path``'s."""
        from lexp.media.camera_files import capture_time

        shot = capture_time(path)
        if shot is not None:
            first, last = self.capture or (shot, shot)
            self.capture = [min(first, shot), max(last, shot)]

    def _fps(self, count: int) -> float | None:
        """The frames' rate: from their capture times when they span any (an
        intervalometer's 30 s a frame: 1/30), else --fps; so the picture's ExposureTime
        is the night it covers."""
        if self.capture and count > 1 and self.capture[1] > self.capture[0]:
            return (count - 1) / (self.capture[1] - self.capture[0])
        return self.info.fps

    def _start(self, width: int, height: int, bit_depth: int, transfer_tag: str | None) -> None:
        """The exposure's empty stack, for frames of this size, depth and transfer."""
        from lexp.renderers import dispatch, stack

        self.info = ClipInfo(self.source.name, self.source.kind, width, height,
                             self.config.fps, None, False, transfer_tag=transfer_tag,
                             bit_depth=bit_depth)
        self.resolved = dispatch.for_clip(dispatch.replace_method(self.config, self.method),
                                          self.info)
        if self.method == "flow":  # the flow render, one frame at a time
            from lexp.renderers.flow_live import LiveFlow

            self.stacker = LiveFlow(self.resolved, self.source.name, bit_depth)
        else:
            self.stacker = stack.make_stacker(self.method, height, width, self.resolved,
                                              bit_depth)
        if calibrate.wanted(self.config):
            self.live = calibrate.LiveCalibration(self.config, self.resolved.transfer,
                                                  self.info)

    def _resume(self, header: dict, arrays: dict) -> None:
        """Continue from a checkpoint, after checking this command line made it."""
        saved = header["settings"]
        self._start(saved["width"], saved["height"], saved["bit_depth"],
                    header.get("transfer_tag"))
        follow_state.check_same(self.state_path, saved, self._settings())
        self.stacker.restore({**header["stacker"], **arrays})
        if self.live is not None:
            self.live.restore(header.get("calibration", {}))
        self.names = list(header["names"])
        self.capture = header.get("capture")
        self.camera = header.get("camera")
        self.resumed = self.stacker.count
        self.say(f"resumed from {self.state_path.name}: {self.resumed} frames")

    def _settings(self) -> dict:
        """What the checkpoint's stack depends on: a resumed run must match it."""
        return {"input": self.source.name if self.source.kind == "stdin"
                else str(Path(self.source.name).resolve()),
                "method": self.method, "transfer": self.resolved.transfer,
                "raw_draft": self.config.raw_draft, "white_balance": self.config.white_balance,
                "width": self.info.width, "height": self.info.height,
                "bit_depth": self.info.bit_depth,
                "calibration": {"dark": [str(Path(p).resolve()) for p in self.config.dark],
                                "flat": [str(Path(p).resolve()) for p in self.config.flat],
                                "hot_pixels": self.config.hot_pixels,
                                "reject": list(self.config.reject)}}

    # ------------------------------------------------------------------ previews
    def _preview_due(self) -> bool:
        every, (frames, when) = self.options.preview_every, self.last_preview
        count = self._count()
        return (every.frames is not None and count - frames >= every.frames) or \
            (every.seconds is not None and time.monotonic() - when >= every.seconds)

    def _write(self, final: bool):
        """The exposure so far into the output and its state into the checkpoint, both
        atomically; a preview that cannot be written is a warning (the last good one
        stays), the final image's failure the run's error."""
        image = self._image()
        self.last_preview = (self._count(), time.monotonic())
        try:
            image.save(self.output, format=self.format, bit_depth=self.bit_depth,
                       quality=self.quality)
            if self.video is not None:
                self.video.flush()
            # A checkpoint is the whole stack (60 MB at 5 MP, written and synced): it
            # is skipped while the last one's cost is over a tenth of the time since.
            since, took = time.monotonic() - self.state_saved[0], self.state_saved[1]
            self.state_owed = True
            if final or since >= STATE_COST_SHARE * took:
                self.save_state()
        except OutputError as err:
            if final:
                raise
            if not self.preview_failing:
                self.warn(f"could not write the preview: {err.message}; the last good "
                          "one stays, trying again at the next")
            self.preview_failing = True
            return image
        self.preview_failing = False
        if not final:
            self.say(f"{self._count()} frames → {self.output}")
        return image

    def _image(self):
        from lexp.image import Image
        from lexp.renderers.result import RenderDetails

        linear = self.stacker.result()
        count = self._count()
        details = RenderDetails(raw=self.info.transfer_tag == "linear",
                                camera=self._frames_camera(),
                                calibration=self.live.stats if self.live is not None else None)
        info = ClipInfo(self.info.name, self.info.kind, self.info.width, self.info.height,
                        self._fps(count), count, True, self.info.transfer_tag,
                        self.info.bit_depth)
        return Image(np.ascontiguousarray(linear, np.float32), self.resolved, self.method,
                     self.source.name, info, count, 0, count - 1,
                     time.perf_counter() - self.started, details, list(self.skipped))

    def _frames_camera(self) -> dict | None:
        """The frames' camera: the first frame read's, or the checkpoint's."""
        return getattr(self.clip, "camera", None) or self.camera

    def idle(self) -> None:
        """Nothing to read now: the checkpoint a busy moment skipped is written."""
        if self.state_owed:
            with contextlib.suppress(OutputError):  # the next preview tries, and says
                self.save_state()

    def save_state(self) -> None:
        began = time.monotonic()
        self._save_state()
        self.state_saved, self.state_owed = (time.monotonic(), time.monotonic() - began), False

    def _save_state(self) -> None:
        state = self.stacker.state()
        arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
        header = {"settings": self._settings(), "transfer_tag": self.info.transfer_tag,
                  "camera": self._frames_camera(),
                  "names": self.names, "capture": self.capture,
                  "segments": self.video.segments if self.video is not None else [],
                  "stacker": {k: v for k, v in state.items() if k not in arrays},
                  "calibration": self.live.state() if self.live is not None else {}}
        follow_state.write(self.state_path, header, arrays)

    def skip(self, name: str, why: str) -> None:
        line = f"{why if why.startswith(name) else f'{name}: {why}'}; skipped"
        self.skipped.append(line)
        self.warn(line)


# ---------------------------------------------------------------------- the sources
def _folder_frames(run: _Run) -> Iterator[tuple[str, np.ndarray]]:
    """The frames of a followed folder as they become ready, decoded like a clip's
    frames (the first one's white balance, size and camera); until, idle or the folder's
    disappearance end it. A file that fails to decode is read again once it is steady
    again (its writer may have stalled mid-file), and skipped after READ_TRIES."""
    from lexp.media import camera_files
    from lexp.media.watch import FolderWatch
    from lexp.stills import is_lexp_output

    taken = set(run.names)
    watch = FolderWatch(Path(run.source.name), taken, exclude={run.output})
    options = run.options
    last_frame = time.monotonic()
    raw_kind = None if run.info is None else run.info.transfer_tag == "linear"
    failures: dict[str, int] = {}
    while True:
        ready = watch.poll()
        for path in ready:
            if is_lexp_output(path):  # another run's picture, written into the folder
                run.skip(path.name, "lexp wrote it (its embedded settings say so), so not "
                                    "a frame")
                continue
            if raw_kind is not None and camera_files.is_raw(path) != raw_kind:
                run.skip(path.name, "not of the first frame's kind (RAW or not): a camera's "
                                    "RAW+JPEG twin?")
                continue
            try:
                frame = _decode(run, path)
            except InputError as err:
                failures[path.name] = failures.get(path.name, 0) + 1
                if not path.exists():
                    run.skip(path.name, "vanished before it was read")
                elif failures[path.name] < READ_TRIES:
                    watch.again(path)
                else:
                    run.skip(path.name, err.message)
                continue
            raw_kind = camera_files.is_raw(path)
            last_frame = time.monotonic()
            yield path.name, frame
        if not ready:
            run.idle()
            if options.until.deadline is not None and time.time() >= options.until.deadline:
                run.ending = "the time given by --until came"
                return
            if options.idle_seconds is not None and \
                    time.monotonic() - last_frame >= options.idle_seconds:
                run.ending = f"no new frame for {options.idle_seconds:g} s (--idle)"
                return
            time.sleep(options.poll_seconds)


READ_TRIES = 3  # a followed file that fails to decode this many times is skipped


def _decode(run: _Run, path: Path) -> np.ndarray:
    """A followed folder's frame: the first one opens the clip whose decoder (white
    balance, camera, size) every later one goes through."""
    from lexp.media.images import FrameFolderClip

    if run.clip is None:
        clip = FrameFolderClip(run.source.name, [path], run.config.fps, run.config.raw)
        run.clip = clip
        if run.info is None:
            run.info = clip.info
    return run.clip.decode(path)


def _stream_frames(run: _Run) -> Iterator[tuple[str, np.ndarray]]:
    """The frames of a video stream on stdin as ffmpeg decodes them; ``until`` ends it,
    or the end of the stream. (An MP4 cannot be read until it has ended: refused.)"""
    from lexp.media.stdin import StdinClip

    clip = StdinClip(run.config.fps, live=True)
    run.clip = clip
    if run.info is None:
        run.info = clip.info
    deadline = run.options.until.deadline
    for _, frame in clip.frames():
        yield "", frame
        if deadline is not None and time.time() >= deadline:
            run.ending = "the time given by --until came"
            return
