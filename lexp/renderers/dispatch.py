"""The one entry to rendering: :func:`render_clip` resolves ``auto`` and dispatches to a
renderer — stacking (:mod:`lexp.renderers.stack`), flow-guided integration
(:mod:`lexp.renderers.flow`) or the learned generator (:mod:`lexp.renderers.learned`) —
and returns a :class:`~lexp.renderers.result.RenderResult` that says what ran and why.
"""

from __future__ import annotations

from lexp import colour
from lexp.config import RenderConfig
from lexp.errors import UsageError
from lexp.media import Clip, ClipInfo, window_frames
from lexp.renderers.auto import choose_auto, gaps_would_show
from lexp.renderers.camera import drift_of
from lexp.renderers.result import RenderResult
from lexp.renderers.stack import ProgressCallback
from lexp.renderers.stack_loop import stack_clip


def render_clip(clip: Clip, config: RenderConfig, on_progress: ProgressCallback | None = None,
                *, cache=None, source=None, video=None) -> RenderResult:
    """Render the clip's window with ``config.method``, resolving ``auto`` (by what the
    picture would show: :mod:`lexp.renderers.auto`, which also steadies a drifting
    camera) and, for ``max``, whether to fill the gaps between frames along the flow.
    ``cache``/``source``: the flow cache and the clip's ClipSource (its content is the
    key; it is hashed only if flow runs). ``video``: a trail_video.TrailSpec.
    """
    config = resolved = for_clip(config, clip.info)
    method, reason = config.method, None
    frames, drift = None, None
    if method == "auto":
        config, method, reason, frames = choose_auto(clip, config,
                                                     learned_allowed=video is None,
                                                     source=source)
        resolved = config
    elif config.align is None and config.align_auto:
        drift = drift_of(clip, config, source)
    if method == "max":
        method, frames = _lighten_kind(clip, config, frames, video)
    result = _render(clip, config, method, frames, cache=cache, source=source, video=video,
                     on_progress=on_progress)
    result.method, result.config = ("max" if method == "max-trails" else method), resolved
    result.details.auto = reason
    if drift is not None:  # asked for a method, not for steadying: say what it costs
        result.warnings.append(f"the camera moves {drift:.1f} px/frame, so the picture "
                               "smears; --align steadies it (--no-align: keep it so)")
    if config.transfer in colour.HDR_TRANSFERS:
        result.details.hdr = (config.transfer, config.tone)
    return result


def _lighten_kind(clip: Clip, config: RenderConfig, frames, video):
    """("max-trails" to fill the gaps along the flow, or "max"; the window's frames, the
    first few perhaps read): --gap-fill, --no-gap-fill, or auto.gaps_would_show."""
    import itertools

    from lexp.renderers import flow as flow_render

    if config.gap_fill is False:
        return "max", frames
    if frames is None:
        frames = window_frames(clip, flow_render.window_for(config, clip.info.fps))
    peeked = list(itertools.islice(frames, 3))
    frames = itertools.chain(peeked, frames)
    filled = config.gap_fill or gaps_would_show(config, clip.info, peeked)
    return ("max-trails" if filled else "max"), frames


def _render(clip: Clip, config: RenderConfig, method: str, frames, *, cache, source, video,
            on_progress) -> RenderResult:
    """``method`` (resolved: flow, learned, max-trails, or a stacking method) on the
    clip's window (``frames``: its frames, when some were read already)."""
    from lexp.renderers.flow import estimator_for

    if method == "max-trails":
        from lexp.renderers.trails import max_along_flow

        return max_along_flow(clip, config, estimator_for(config), cache=cache, source=source,
                              frames=frames, on_progress=on_progress, video=video)
    if method == "learned":
        from lexp.renderers import learned

        if video is not None:
            raise UsageError("--video cannot show a learned render building up",
                             hint="use --method flow for the trail video")
        return learned.render_learned(clip, config, estimator_for(config), cache=cache,
                                      source=source, frames=frames, on_progress=on_progress)
    if method == "flow":
        from lexp.renderers import flow as flow_render
        from lexp.renderers.interpolate_torch import integrator_for

        return flow_render.render_flow(clip, config, estimator_for(config), cache=cache,
                                       source=source, frames=frames, on_progress=on_progress,
                                       video=video, integrator=integrator_for(config.device))
    periods = None
    if config.exposure is not None:
        from dataclasses import replace

        from lexp.renderers import flow as flow_render

        periods = flow_render.exposure_periods(config, clip.info.fps)
        config = replace(config, window=flow_render.window_for(config, clip.info.fps))
    result = stack_clip(clip, replace_method(config, method), on_progress, frames=frames,
                        video=video)
    if periods is not None and result.last_frame - result.first_frame + 1 < periods:
        result.warnings.append(f"--exposure is longer than the frames and {method} cannot "
                               "extrapolate; --method flow can")
    return result


def for_clip(config: RenderConfig, info: ClipInfo) -> RenderConfig:
    """``config`` with its ``auto`` transfer and tone curve resolved for this clip (see
    lexp.colour): HDR video is decoded with its own curve and tone-mapped softly."""
    from dataclasses import replace

    transfer = colour.transfer_for(config.transfer, info.transfer_tag)
    tone = colour.tone_for(config.tone, transfer)
    if (transfer, tone) == (config.transfer, config.tone):
        return config
    return replace(config, transfer=transfer, tone=tone)


def replace_method(config: RenderConfig, method: str) -> RenderConfig:
    from dataclasses import replace

    return config if config.method == method else replace(config, method=method)
