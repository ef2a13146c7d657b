"""A finished long exposure: the linear-light image, what made it, and the ways out of it
(display values, an image file with its settings embedded).

This is what :func:`lexp.render` returns and what ``lexp render`` writes: the command
line encodes the same :class:`Image` the Python API hands back, so the two cannot differ.
:func:`render_source` is that one shared path, from a clip to an Image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lexp import __version__
from lexp.config import RenderConfig
from lexp.errors import OutputError
from lexp.media import ClipInfo, ClipSource
from lexp.renderers.result import RenderDetails

# The methods whose renders may read optical flow, and so the flow cache: max and lighten
# for their gap filling (lexp.renderers.trails).
FLOW_METHODS = ("auto", "flow", "learned", "max", "lighten")


@dataclass(frozen=True)
class Image:
    """A rendered long exposure.

    ``linear`` is float32 H×W×3 RGB scene light in [0, ∞) (1.0 = diffuse white; highlights
    may exceed it), in the clip's own primaries: BT.709/sRGB, or BT.2020 for HLG and PQ
    clips. :meth:`to_srgb` applies ``config``'s exposure (``ev``), tone curve and output
    transfer to give display values; :meth:`save` writes a file carrying ``settings``.
    """

    linear: np.ndarray  # float32 H×W×3 linear light (see the class docstring)
    config: RenderConfig  # the settings it was made with, ``auto`` transfer and tone resolved
    method: str  # the method that ran ("auto" resolved), e.g. "flow"
    input: str  # the clip's name
    clip: ClipInfo  # the clip's size, rate and kind
    frames_used: int  # frames that went into it
    first_frame: int  # index of the first frame used
    last_frame: int  # index of the last frame used
    seconds: float  # wall time of decoding and rendering
    details: RenderDetails = field(default_factory=RenderDetails)  # what each step did, and why
    warnings: list[str] = field(default_factory=list)  # problems that did not stop it

    @property
    def settings(self) -> dict[str, Any]:
        """What made it, as the JSON that image files carry (see :mod:`lexp.stills`)."""
        return {
            "lexp_version": __version__,
            "input": self.input,
            "method": self.method,
            **({"method_details": details} if (details := self.details.to_dict()) else {}),
            "frames_used": self.frames_used,
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "clip": {"width": self.clip.width, "height": self.clip.height,
                     "fps": self.clip.fps},
            "config": self.config.to_dict(),
        }

    def exif(self) -> dict[str, Any]:
        """What a photo's EXIF says of it: the camera and lens of its frames (when they
        said), the software, and the exposure it represents in seconds (the time its
        frames span, continued motion included; none without a frame rate)."""
        from lexp.renderers.result import exposure_seconds

        tags: dict[str, Any] = dict(self.details.camera or {})
        tags["software"] = f"lexp {__version__}"
        seconds = exposure_seconds(self.first_frame, self.last_frame, self.clip.fps,
                                   self.details)
        if seconds:
            tags["exposure_s"] = seconds
        return tags

    def encoded(self) -> np.ndarray:
        """Display values: float32 H×W×3 in [0, 1], sRGB-encoded (or the transfer that
        ``config`` asks for), after exposure and tone curve."""
        from lexp import renderers

        return renderers.finish(self.linear, self.config)

    def linear_master(self) -> np.ndarray:
        """Scene light for editing (``--bit-depth 32``): float32 H×W×3 in sRGB's primaries,
        after ``ev``, with no tone curve and no transfer curve (1.0 is diffuse white,
        highlights above it kept), as a RAW editor wants to start from."""
        from lexp import colour

        linear = colour.to_output_primaries(self.linear, self.config.transfer)
        if self.config.ev:
            linear = linear * np.float32(2.0 ** self.config.ev)
        return np.ascontiguousarray(linear, np.float32)

    def to_srgb(self, bit_depth: int = 8) -> np.ndarray:
        """Display values as uint8 (``bit_depth`` 8) or uint16 (16) H×W×3 RGB, rounded."""
        from lexp import stills

        if bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, not {bit_depth!r}")
        return stills.quantise(self.encoded(), bit_depth)

    def encode(self, format: str = "jpeg", *, bit_depth: int | None = None,
               quality: int = 95, output: dict | None = None) -> bytes:
        """The image file's bytes (``jpeg``, ``png`` or ``tiff``) with :attr:`settings`
        embedded; ``output``: more to record under ``settings["output"]``."""
        from lexp import stills

        depth = stills.resolve_bit_depth(format, bit_depth)
        settings = {**self.settings, "output": {"format": format, "bit_depth": depth,
                                                "quality": quality, **(output or {})}}
        pixels = self.linear_master() if depth == 32 else self.encoded()
        data = stills.encode_image(pixels, format, bit_depth=depth, quality=quality,
                                   settings=settings, exif=self.exif())
        if not data:
            raise OutputError(f"could not encode the image as {format}")
        return data

    def save(self, path: str | Path, *, format: str | None = None,
             bit_depth: int | None = None, quality: int = 95) -> Path:
        """Write the image (format from the extension unless given), atomically."""
        from lexp import stills
        from lexp.paths import check_writable_dir, write_bytes_atomic

        target = Path(path)
        chosen = stills.format_for(target, format)
        check_writable_dir(target.parent, target)
        write_bytes_atomic(target, self.encode(chosen, bit_depth=bit_depth, quality=quality))
        return target


def render_source(source: ClipSource | None, config: RenderConfig, *, clip=None,
                  on_progress: Callable | None = None, flow_cache: bool = True,
                  video=None) -> Image:
    """Open ``source`` (or use the already open ``clip``), render it with ``config`` and
    return the :class:`Image`. ``flow_cache``: read and fill the flow cache (for files);
    ``video``: a ``trail_video.TrailSpec``. Both the CLI and :func:`lexp.render` call this."""
    import contextlib

    from lexp import errors, media, renderers
    from lexp.media.sources import open_again
    from lexp.renderers import calibrate

    cache = None
    if flow_cache and source is not None and source.paths and \
            config.method in FLOW_METHODS:
        from lexp.flow.cache import FlowCache

        cache = FlowCache()
    opened = media.open_clip(source, config.fps, config.raw) if clip is None else \
        contextlib.nullcontext(clip)
    with opened as clip:
        if calibrate.wanted(config):  # darks, flats, hot pixels, rejections: first
            clip = calibrate.calibrated(
                clip, config, source,
                reopen=lambda c=clip: open_again(c, source, config.fps, config.raw))
        try:
            rendered = renderers.render_clip(clip, config, on_progress, cache=cache,
                                            source=source, video=video)
        except Exception as exc:  # a full memory is one line with a hint, like the rest
            error = errors.memory_error(exc, source.name if source is not None
                                        else clip.info.name)
            if error is None:
                raise
            raise error from exc
    if cache is not None and (rendered.method in ("flow", "learned") or
                              rendered.details.trails is not None):
        cache.prune()
    if cache is not None and cache.write_problem is not None:
        rendered.warnings.append(cache.write_problem)
    rendered.details.raw = rendered.clip.transfer_tag == "linear"
    rendered.details.live_photo = source.live_photo if source is not None else None
    rendered.details.camera = getattr(clip, "camera", None) or None  # frames' EXIF
    rendered.details.calibration = getattr(clip, "stats", None)
    return Image(rendered.linear, rendered.config, rendered.method,
                 source.name if source is not None else rendered.clip.name, rendered.clip,
                 rendered.frames_used, rendered.first_frame, rendered.last_frame,
                 rendered.seconds, rendered.details, list(rendered.warnings))
