"""The Python API: what ``lexp render`` and ``lexp flow`` do, as functions.

(``lexp.optical_flow``, not ``lexp.flow``: ``lexp.flow`` is the module of the estimators,
and a package attribute cannot be both a submodule and a function.)

    import lexp

    image = lexp.render("falls.mp4", method="flow", exposure="2s")
    image.save("falls.jpg")                 # the settings embedded, as the CLI does
    pixels = image.to_srgb()                # uint8 H×W×3 RGB display values
    light = image.linear                    # float32 H×W×3 linear light

    frames = [...]                          # uint8 H×W×3 RGB arrays (or an iterator)
    image = lexp.render(frames, fps=30, method="mean")

    flows = lexp.optical_flow("falls.mp4", end="30f")   # [(2, H, W) float32 px, ...]

Errors are :class:`lexp.errors.LexpError` (``UsageError`` for a bad argument), each with
a ``message`` and a ``hint``, as the CLI prints them. Times (``start``, ``end``,
``exposure``, ``keep_sharp``) take what the CLI takes: seconds as a number or ``"2.5s"``,
frames as ``"48f"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    import numpy as np

    from lexp.image import Image

Source = Union[str, Path, "Iterable[np.ndarray]"]  # noqa: UP007 (a string part: Union)
Time = str | float | int | None


def render(source: Source, *, method: str = "auto", exposure: Time = None,
           start: Time = None, end: Time = None, stride: int = 1,
           max_frames: int | None = None, fps: float | None = None, flow: str = "auto",
           device: str = "auto", exact: bool = False, checkpoint: str | None = None,
           transfer: str = "auto", ev: float = 0.0, tone: str = "auto",
           align: bool | None = None, gap_fill: bool | None = None,
           keep_sharp: Time = None, motion_guide: str = "flow", deflicker: bool = False,
           raw_draft: bool = False, white_balance: str = "camera",
           dark: str | Sequence[str] = (), flat: str | Sequence[str] = (),
           hot_pixels: bool = False, reject: str | Sequence[str] = (), cache: bool = True,
           on_progress: Callable[..., None] | None = None) -> Image:
    """A long exposure of ``source``, as ``lexp render`` makes it.

    ``source``: a video file, a folder of frames (or of one video), a glob, or the frames
    themselves: a sequence or an iterator of uint8 H×W×3 RGB arrays of one size (give
    ``fps`` for times in seconds). ``method``: auto, flow, learned, mean, max, min,
    median. ``exposure``: the exposure's length (longer than the clip: ``flow``
    extrapolates). ``flow``: the estimator (auto, dis, dis-fast, dis-ultrafast,
    farneback, raft-small, raft-large); ``device``: auto, cpu, cuda, cuda:N, mps.
    ``exact``: the reference flow render (every instant at full size, slow).
    ``gap_fill`` (max): the lighten blend over the instants between frames too, along
    the flow (True), the frames only (False), or where the gaps would show (None).
    ``align``: True steadies the frames, False keeps the camera's motion, None (default)
    lets ``auto`` align a drifting camera. ``raw_draft``: RAW frames developed at half
    size (previews); ``white_balance``: theirs, camera, daylight, auto or a temperature
    in kelvin ("3200"). ``dark``, ``flat``: dark and flat frames (files, folders,
    globs) subtracted and divided first; ``hot_pixels``: repair them; ``reject``: leave
    out frames by rule ("bright", "blur"; lexp.renderers.calibrate).
    ``cache``: read and fill lexp's flow cache (files only).
    ``on_progress(done, total)``: frames rendered so far (total may be None). The other
    arguments are the CLI's options of the same names (``lexp render --help``).
    """
    from lexp.config import RenderConfig, Window
    from lexp.image import render_source

    _check_estimator(flow, "flow")
    config = RenderConfig(
        method=method, window=Window.from_options(_time(start), _time(end), stride,
                                                  max_frames),
        fps=fps, transfer=transfer, ev=ev, tone=tone, exposure=_timespec(exposure, "exposure"),
        flow=flow, device=device, exact=exact, align="similarity" if align else None,
        align_auto=align is None, gap_fill=gap_fill,
        deflicker=deflicker, keep_sharp=_time(keep_sharp), motion_guide=motion_guide,
        checkpoint=checkpoint, raw_draft=raw_draft, white_balance=white_balance,
        dark=dark, flat=flat, hot_pixels=hot_pixels, reject=reject)
    clip_source, clip = _open(source, fps)
    return render_source(clip_source, config, clip=clip, on_progress=on_progress,
                         flow_cache=cache)


def optical_flow(source: Source, *, method: str = "auto", start: Time = None, end: Time = None,
         stride: int = 1, max_frames: int | None = None, fps: float | None = None,
         scale: float = 1.0, device: str = "auto", backward: bool = False,
         cache: bool = True) -> list[np.ndarray]:
    """The optical flow between consecutive frames of ``source`` (as for :func:`render`):
    a list of float32 (2, H, W) arrays in pixels, ``flow[0]`` rightwards and ``flow[1]``
    downwards, from each frame to the next (``backward``: also from each frame to the one
    before, interleaved after its forward flow). ``method``: auto (RAFT when its weights
    are cached and a GPU is there, else DIS medium), dis, dis-fast, dis-ultrafast,
    farneback, raft-small, raft-large. Flows of files are cached unless ``cache`` is off.
    """
    from lexp import flow as flows
    from lexp.config import RenderConfig, Window, check_type
    from lexp.flow.cache import FlowCache

    _check_estimator(method, "method")
    check_type(scale, float, "scale")
    config = RenderConfig(fps=fps, window=Window.from_options(_time(start), _time(end),
                                                              stride, max_frames))
    estimator = flows.auto_estimator(scale=scale, device=device) if method == "auto" else \
        flows.make_estimator(method, scale=scale, device=device)
    clip_source, clip = _open(source, fps)
    found: list[np.ndarray] = []
    flows.clip_flows(clip_source, estimator, config, clip=clip,
                     cache=FlowCache() if cache and clip is None else None,
                     backward=backward, on_flow=lambda i, j, f: found.append(f))
    return found


def load_generator(checkpoint: str | Path = "lexp", device: str = "cpu"):
    """The learned generator (a ``torch.nn.Module`` in eval mode) and its
    ``model.GeneratorConfig``, from a shipped name (``lexp``, ``seed``) or a ``.pt``
    file written by ``lexp train``. The checkpoint is read as data, never as code."""
    from lexp import checkpoint as checkpoints
    from lexp.config import check_device
    from lexp.torch_env import resolve_device

    check_device(device)
    return checkpoints.load_network(checkpoints.resolve(str(checkpoint)),
                                    resolve_device(device))


def _check_estimator(name, argument: str) -> None:
    """A UsageError for a flow estimator lexp does not have (checked even where the
    method would not use it: flow="bogus" with method="mean" is still a mistake)."""
    from lexp.errors import UsageError
    from lexp.flow import ESTIMATORS

    if name != "auto" and name not in ESTIMATORS:
        raise UsageError(f"unknown flow estimator {argument}={name!r}",
                         hint="choose one of: auto, " + ", ".join(ESTIMATORS))


def _time(value: Time) -> str | None:
    """A time as the CLI spells it: numbers are seconds."""
    return None if value is None else str(value)


def _timespec(value: Time, name: str):
    from lexp.config import TimeSpec

    return None if value is None else TimeSpec.parse(str(value), f"--{name}")


def _open(source: Source, fps: float | None):
    """(ClipSource, None) for a path, or (None, an open Clip) for frames in memory."""
    import numpy as np

    from lexp import inputs, media
    from lexp.errors import UsageError

    if isinstance(source, (str, Path)):
        sources = inputs.resolve_inputs([str(source)])
        if len(sources) != 1:
            raise UsageError(f"{source} holds {len(sources)} clips; render takes one",
                             hint="name one video (or one folder of frames)")
        return sources[0], None
    if isinstance(source, np.ndarray) and source.ndim == 4:
        source = list(source)  # N×H×W×3: a stack of frames
    if isinstance(source, (list, tuple)):
        if not source:
            raise UsageError("no frames given", hint="give at least one H×W×3 uint8 frame")
        frames = [media.check_frame(f, i) for i, f in enumerate(source)]
        for i, frame in enumerate(frames):
            if frame.dtype != frames[0].dtype:
                raise UsageError(f"frame {i} is {frame.dtype}, but frame 0 is "
                                 f"{frames[0].dtype}", hint="give every frame one depth")
            if frame.shape != frames[0].shape:
                from lexp.errors import InputError

                raise InputError(f"frame {i} is {frame.shape[1]}x{frame.shape[0]}, but frame 0 "
                                 f"is {frames[0].shape[1]}x{frames[0].shape[0]}",
                                 hint="every frame of a clip has one size")
        return None, media.MemoryClip(frames, fps)
    if isinstance(source, Iterable):
        return None, media.IteratorClip(iter(source), fps)
    raise UsageError(f"cannot render a {type(source).__name__}",
                     hint="give a path, or frames: uint8 H×W×3 RGB arrays")
