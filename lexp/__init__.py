"""lexp: long-exposure photographs from short clips.

    import lexp
    image = lexp.render("clip.mp4", exposure="2s")   # an lexp.Image
    image.save("long.jpg")

The Python API is :func:`render`, :func:`optical_flow` and :func:`load_generator` (see
:mod:`lexp.api`), returning :class:`Image` (:mod:`lexp.image`). Importing ``lexp`` is
cheap: nothing heavy (numpy, cv2, torch) is imported until one of them is used, so
``lexp --help`` stays fast.
"""

import os as _os
from typing import TYPE_CHECKING as _TYPE_CHECKING

__version__ = "0.1.0"

# OpenCV logs to stderr on its own (e.g. "[ WARN:0] ... can't open ..."); lexp reports
# every problem itself, in one line, so keep OpenCV quiet unless the user asks for it.
_os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
_os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

__all__ = ["Image", "__version__", "load_generator", "optical_flow", "render"]

if _TYPE_CHECKING:
    from lexp.api import load_generator, optical_flow, render
    from lexp.image import Image


def __getattr__(name: str):
    """The API's names, imported on first use (PEP 562)."""
    if name in ("render", "optical_flow", "load_generator"):
        from lexp import api

        return getattr(api, name)
    if name == "Image":
        from lexp.image import Image

        return Image
    raise AttributeError(f"module 'lexp' has no attribute {name!r}")
