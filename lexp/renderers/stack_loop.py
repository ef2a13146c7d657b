"""The one streaming render loop of the stacking methods (:func:`stack_clip`): a clip's
window, prepared frame by frame (:mod:`lexp.renderers.prepare`: time weights, alignment,
deflicker, keep-sharp), through a stacker (:mod:`lexp.renderers.stack`)."""

from __future__ import annotations

import time

import numpy as np

from lexp.config import RenderConfig
from lexp.errors import InputError
from lexp.media import Clip, window_frames, window_length
from lexp.renderers.result import RenderResult
from lexp.renderers.stack import MedianStacker, ProgressCallback, make_stacker


def stack_clip(clip: Clip, config: RenderConfig,
               on_progress: ProgressCallback | None = None, frames=None,
               video=None) -> RenderResult:
    """Stream the clip's window through the configured stacker. ``frames``: an iterator
    of (index, RGB frame) to use instead of reading the window (it was peeked at).
    ``video``: a trail_video.TrailSpec to write the exposure building up."""
    import cv2

    from lexp.renderers.prepare import FrameStream, FramesUsed
    from lexp.renderers.trail_video import recording

    started = time.perf_counter()
    info = clip.info
    first, _ = config.window.frame_range(info.fps)  # validates the window before any work
    total = window_length(info, config.window)
    stacker = make_stacker(config.method, info.height, info.width, config, info.bit_depth)
    # Our stacking calls are per band and small; OpenCV's worker pool would only fight
    # the decoder threads for the two cores.
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        # Stacking treats channels alike, so take frames in the decoder's native order
        # and swap the one result instead of every frame.
        native = frames is None and clip.native_bgr
        reused = frames is None and not stacker.keeps_frames
        if frames is None:
            frames = window_frames(clip, config.window, reuse_buffer=reused,
                                   any_channel_order=True)
        stream = FrameStream(clip, config, frames, stacker.lut, reused=reused)
        with recording(video, config, config.method, info.fps, native) as recorder:
            used = FramesUsed()
            for frame in stream:
                stacker.add(frame.rgb, frame.weight, frame.gain)
                if recorder is not None:
                    recorder.add(stacker.lut[frame.rgb] * np.float32(frame.weight * frame.gain),
                                 frame.weight, stream.level())
                used.add(frame.index, on_progress, total)
            if used.count == 0:
                where = "" if first == 0 else f" at or after frame {first}"
                raise InputError(f"no frames to stack in {info.name}{where}",
                                 hint="check the clip and the --start/--end window")
            warnings = clip.warnings() + stream.notes.warnings
            if isinstance(stacker, MedianStacker) and stacker.sample_every > 1:
                warnings.append(
                    f"median used {stacker.frames_sampled} of {used.count} frames (1 in "
                    f"{stacker.sample_every}) to stay within --median-memory "
                    f"{config.median_memory_mb} MB")
            linear = stream.finish(stacker.result())
            if recorder is not None:
                recorder.commit(stream.crop_box())
    finally:
        cv2.setNumThreads(threads)
    if native:
        linear = np.ascontiguousarray(linear[..., ::-1])
    return RenderResult(linear, info, used.count, used.first, used.last,
                        time.perf_counter() - started, warnings, details=stream.notes.details)
