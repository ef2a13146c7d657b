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
Transfer = choices("Transfer", "auto", "srgb", "rec709", "hlg", "pq", "linear", "none")
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

# Options that several commands take, declared once (the default sits in each signature).
Device = Annotated[str, typer.Option(
    metavar="DEVICE", help="The torch device (RAFT, the generator, a render's in-between "
                           "frames): auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or "
                           "mps.", rich_help_panel="Flow")]
Start = Annotated[str | None, typer.Option(
    help="Start of the window: 2.5 (s) or 48f.", rich_help_panel="Frames")]
End = Annotated[str | None, typer.Option(
    help="End of the window (exclusive): 6 or 180f.", rich_help_panel="Frames")]
Stride = Annotated[int, typer.Option(
    min=1, help="Use every N-th frame of the window: fewer frames to decode and stack "
                "(auto fills the gaps along the flow where they would show).",
    rich_help_panel="Frames")]
Fps = Annotated[float | None, typer.Option(
    help="Frame rate for clips without one (image folders); overrides the video's rate "
         "for --start/--end in seconds.", rich_help_panel="Frames")]
JsonSummary = Annotated[bool, typer.Option(
    "--json", help="Print the summary as JSON on stdout.")]
Checkpoint = Annotated[str | None, typer.Option(
    metavar="NAME|FILE",
    help="For -m learned (and auto past the clip's end): the generator, a shipped name "
         "(lexp: the default; seed: the original system, for comparison) or a .pt file "
         "from `lexp train`.",
    rich_help_panel="Flow")]
