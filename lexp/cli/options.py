"""The choices that command-line options take, shared by the commands.

Each is a ``str`` Enum, which Typer turns into a checked choice (and TAB completion);
members are named after their values, ``-`` spelled ``_`` (``FlowMethod.dis_fast`` is
``"dis-fast"``).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer


def choices(name: str, *values: str) -> type[Enum]:
    """A ``str`` Enum called ``name`` whose members are ``values``."""
    return Enum(name, {value.replace("-", "_"): value for value in values}, type=str,
                module=__name__)


Method = choices("Method", "auto", "flow", "learned", "mean", "max", "min", "median",
                 "lighten", "darken")
FlowMethod = choices("FlowMethod", "auto", "dis", "dis-fast", "dis-ultrafast", "farneback",
                     "raft-small", "raft-large")
Transfer = choices("Transfer", "auto", "srgb", "rec709", "hlg", "pq", "none")
Tone = choices("Tone", "auto", "clip", "soft", "reinhard")
Arch = choices("Arch", "lexp", "seed")
AlignModel = choices("AlignModel", "similarity", "homography")
AlignBorder = choices("AlignBorder", "crop", "fill")
ImageFormat = choices("ImageFormat", "jpeg", "png", "tiff")

# --cache-dir, the same for every command that uses the cache.
CacheDir = Annotated[Path | None, typer.Option(
    "--cache-dir", envvar="LEXP_CACHE_DIR", metavar="DIR",
    help="The lexp cache: flows, weights and datasets (default: the user cache folder).")]

CONTROLS = "Photographer's controls"  # the --help panel of align, keep-sharp, video, ...
