"""Trail video: the long exposure building up, one video frame per input frame.

The "star-trail video": frame k of the video is the long exposure of the clip's first k
frames, so trails grow across the picture. In **comet** mode, light fades as it ages,
with a half-life of ``comet`` frame periods: the head of every trail is bright and its
tail dies away.

Renderers hand over *contributions*: a linear-light sum covering ``weight`` frame
periods (one frame, or a whole flow-integrated interval). The video keeps:

- for mean and flow: the running weighted mean; comet: both sum and weight decay by
  ``0.5 ** (periods / half-life)`` before each contribution is added;
- for max (lighten): the running maximum; comet: the old maximum decays the same way;
- for min (darken): the running minimum (a fading minimum has no physical meaning).

Each video frame goes through the same exposure, tone curve and transfer function as the
image. The image's alignment crop is known only at the end, so the video is cropped
then, in one re-encode.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lexp.errors import OutputError, UsageError

VIDEO_KINDS = ("mean", "max", "min")  # how contributions combine (flow is a mean)


@dataclass(frozen=True)
class TrailSpec:
    """What --video asked for: where, and the comet's half-life (None: plain build-up)."""

    path: str  # the video file (.mp4)
    comet: object | None = None  # a config.TimeSpec, or None

    def open(self, config, method: str, fps: float | None,
             swap_channels: bool = False) -> TrailVideo:
        """A recorder for a render by ``method`` (flow builds up like a mean)."""
        half_life = None
        if self.comet is not None:
            if self.comet.unit == "f":
                half_life = self.comet.value
            elif fps:
                half_life = self.comet.value * fps
            else:
                raise UsageError("--comet is in seconds but this clip has no frame rate",
                                 hint="give frames (e.g. 30f) or the rate with --fps")
        kind = "mean" if method == "flow" else method
        return TrailVideo(self.path, fps, config, kind, half_life, swap_channels)


class TrailVideo:
    """Writes ``path`` atomically (nothing is left if the render fails)."""

    def __init__(self, path: str, fps: float | None, config, kind: str,
                 comet: float | None = None, swap_channels: bool = False) -> None:
        from lexp.media import VideoWriter

        if kind not in VIDEO_KINDS:
            raise UsageError(f"--video cannot show a {kind} render building up",
                             hint="use --method mean, max, min or flow")
        if comet is not None and kind == "min":
            raise UsageError("--comet fades light: it needs mean, max or flow",
                             hint="drop --comet, or use --method max")
        self.path = Path(path)
        self.fps = fps or 30.0
        self.config, self.kind, self.comet = config, kind, comet
        self.swap = swap_channels
        # veryfast: half the encode time of medium at 720p, for a file ~1.3x larger.
        self.writer = VideoWriter(self.path, fps=self.fps, preset="veryfast")
        self.state: np.ndarray | None = None
        self._table: np.ndarray | None = None  # linear [0, 1] on 65536 steps -> uint8
        self.weight = 0.0
        self.frames = 0

    def add(self, linear_sum: np.ndarray, weight: float, level: float = 1.0) -> None:
        """A contribution: float32 H×W×3 linear sum over ``weight`` frame periods;
        ``level``: a factor for this video frame's exposure (deflicker's)."""
        decay = 1.0 if self.comet is None else 0.5 ** (weight / self.comet)
        if self.kind == "mean":
            if self.state is None:
                self.state = linear_sum.astype(np.float32)
            else:
                self.state *= np.float32(decay)
                self.state += linear_sum
            self.weight = self.weight * decay + weight
            image = self.state / np.float32(self.weight)
        else:
            value = linear_sum / np.float32(weight)
            if self.state is None:
                self.state = value.astype(np.float32)
            else:
                pick = np.maximum if self.kind == "max" else np.minimum
                pick(self.state * np.float32(decay), value, out=self.state)
            image = self.state
        self._write(image * np.float32(level) if level != 1.0 else image)

    def _write(self, linear: np.ndarray) -> None:
        if self.swap:
            linear = linear[..., ::-1]
        encoded = self._encode(linear)
        try:
            self.writer.add(encoded)
        except (OSError, RuntimeError) as err:  # ffmpeg could not open or write the file
            raise OutputError(f"cannot write the trail video {self.path}",
                              hint="check the folder exists, is writable and has space"
                              ) from err
        self.frames += 1

    def _encode(self, linear: np.ndarray) -> np.ndarray:
        """renderers.finish + 8-bit quantise, through a 65536-entry table of the transfer
        function (finish's float power costs ~25 ms a 720p frame; this, ~4 ms; the table
        is finer than a code value everywhere, near black included)."""
        from lexp import colour, stills

        if self._table is None:
            grid = np.linspace(0.0, 1.0, 65536, dtype=np.float32)
            self._table = stills.quantise(
                colour.encode(grid, colour.output_transfer(self.config.transfer)), 8)
        linear = colour.to_output_primaries(linear, self.config.transfer)
        if self.config.ev:
            linear = linear * np.float32(2.0 ** self.config.ev)
        if self.config.tone != "clip":
            linear = colour.tone_map(linear, self.config.tone)
        index = np.clip(linear, 0.0, 1.0)
        index *= 65535.0
        index += 0.5
        return self._table[index.astype(np.uint16)]

    def commit(self, crop: tuple[int, int, int, int] | None = None) -> None:
        """Finish the file (cropped to ``crop`` = x, y, w, h when given)."""
        if self.frames == 0:
            self.writer.abort()
            raise OutputError("the trail video has no frames")
        if crop is None:
            self.writer.commit()
            return
        tmp = self.writer.finish_unplaced()
        x, y, w, h = crop
        w, h = w - w % 2, h - h % 2  # H.264 4:2:0 wants even sizes
        from lexp.media import ffmpeg_exe
        from lexp.paths import replace_into, scratch_name

        cropped = self.path.with_name(f"{scratch_name('crop', hidden=True)}{id(self):x}.mp4")

        try:
            done = subprocess.run(
                [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                 "-i", str(tmp), "-vf", f"crop={w}:{h}:{x}:{y}", "-c:v", "libx264",
                 "-crf", "18", "-preset", "veryfast", "-pix_fmt", "yuv420p",
                 "-f", "mp4", str(cropped)], capture_output=True, text=True)
            if done.returncode != 0:
                raise OutputError(f"could not crop the trail video: {done.stderr.strip()[-200:]}")
            replace_into(cropped, self.path)
        finally:
            tmp.unlink(missing_ok=True)
            cropped.unlink(missing_ok=True)

    def abort(self) -> None:
        self.writer.abort()

    def __enter__(self) -> TrailVideo:
        return self

    def __exit__(self, kind, *exc: object) -> None:
        if kind is not None:  # the render failed or was interrupted: leave nothing
            self.abort()


def recording(spec: TrailSpec | None, config, method: str, fps: float | None,
              swap_channels: bool = False):
    """``with recording(...) as recorder:`` a TrailVideo (None without --video) that is
    removed if the block raises; the block commits it."""
    import contextlib

    if spec is None:
        return contextlib.nullcontext(None)
    return spec.open(config, method, fps, swap_channels)
