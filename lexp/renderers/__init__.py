"""From frames to a long exposure in linear light. One way down:

- :mod:`~lexp.renderers.dispatch` — :func:`render_clip`, the one entry: resolves ``auto``
  (and says why), picks a renderer and returns a :class:`RenderResult`;
- :mod:`~lexp.renderers.stack` — mean, max, min, median: one streaming pass; and
  :func:`finish`, linear light to display values;
- :mod:`~lexp.renderers.flow` — flow-guided integration (the driver and the interpolation
  of each interval), :mod:`~lexp.renderers.extrapolate` (light carried past the last
  frame) and :mod:`~lexp.renderers.warp` (the sampling both use);
- :mod:`~lexp.renderers.learned` — the generator riding on the flow render;
- :mod:`~lexp.renderers.prepare` — every renderer's frames pass through it:
  :mod:`~lexp.renderers.align`, :mod:`~lexp.renderers.deflicker`, timestamps, and
  :mod:`~lexp.renderers.sharp` (keep-sharp);
- :mod:`~lexp.renderers.trail_video` — the exposure building up, as a video;
- :mod:`~lexp.renderers.result` — what they all return, typed.

Renderers import ``lexp.media``, ``lexp.flow`` and the leaves, never the CLI, batch or
training. Heavy modules (torch, the flow estimators) are imported inside the functions
that need them.
"""

from lexp.renderers.dispatch import for_clip, render_clip, replace_method
from lexp.renderers.result import RenderDetails, RenderResult
from lexp.renderers.stack import finish, make_stacker
from lexp.renderers.stack_loop import stack_clip

__all__ = ["RenderDetails", "RenderResult", "finish", "for_clip", "make_stacker",
           "render_clip", "replace_method", "stack_clip"]
