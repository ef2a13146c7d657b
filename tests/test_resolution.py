"""The flow render's working resolution (lexp.renderers.resolution): fast motion is
integrated on smaller frames, and what does not move keeps every full-size pixel."""

from __future__ import annotations

import numpy as np
import pytest

from lexp import colour, metrics, renderers, synthetic
from lexp.config import RenderConfig
from lexp.media import MemoryClip
from lexp.renderers import resolution

from .test_flow_render import drifting, texture


def linear_mean(frames) -> np.ndarray:
    lut = colour.decode_lut("srgb")
    return np.mean([lut[f] for f in frames], axis=0)


def render(frames, **config):
    return renderers.render_clip(MemoryClip(frames, 30.0), RenderConfig(method="flow",
                                                                        **config))


def square(velocity, frames=6, width=320, height=160):
    return list(synthetic.moving_square(width, height, frames, size=40, velocity=velocity))


def test_the_level_follows_the_motion_and_flow_the_size():
    flow = np.zeros((2, 720, 1280), np.float32)
    assert resolution.level_for(flow, 1.0) == 0
    flow[0] = 10.0  # under 12 px a period: full size
    assert resolution.level_for(flow, 1.0) == 0
    flow[0] = 80.0  # 80 px a period: 2^3 = 8 times smaller keeps it under 12
    assert resolution.level_for(flow, 1.0) == 3
    assert resolution.level_for(flow, 4.0) == 1  # over 4 periods, 20 px a period
    flow[0] = 4000.0  # never smaller than MIN_WORK_SIDE
    assert 1280 / 2 ** resolution.level_for(flow, 1.0) >= resolution.MIN_WORK_SIDE
    assert resolution.flow_scale(720, 1280) == 1.0  # up to FULL_FLOW_SIDE: at full size
    assert resolution.flow_scale(2160, 3840) == pytest.approx(3840 / resolution.FLOW_SIDE)


def test_slow_motion_is_finer_than_a_reduced_flow():
    flow = np.zeros((2, 540, 960), np.float32)
    flow[0] = 1.2  # 1.2 flow px a period
    assert resolution.level_for(flow, 1.0, 1.0) == 0  # flow at full size: level 0 is it
    assert resolution.level_for(flow, 1.0, 2.0) == -1  # 1080p: 2.4 px at full size
    assert resolution.level_for(flow, 1.0, 4.0) == -1  # 4K: 4.8 px at full, 2.4 at 1920
    assert resolution.level_for(flow, 2.0, 4.0) == -2  # over 2 periods: 2.4 at full
    assert resolution.level_for(flow, 1.0, 2.8) == -1  # 2.7K: 3.4 px at full size
    assert resolution.level_for(flow * 0.8, 1.0, 2.8) == -2  # 2.7 px: −2 is the full size
    flow[0] = 2.0  # 4 px a period at 1080p
    assert resolution.level_for(flow, 1.0, 2.0) == 0
    frame = texture(108, 192, seed=1).astype(np.float32)
    pyramid = resolution.Pyramid(frame, (48, 27))  # flow a quarter of the size
    assert pyramid.at(-1).shape == (54, 96, 3)  # twice the flow size, from the full frame
    np.testing.assert_array_equal(pyramid.at(-1), resolution.downscale(frame, (96, 54)))
    assert pyramid.at(-2) is frame and pyramid.at(-3) is frame  # the full size at most


def test_slow_motion_of_a_reduced_flow_keeps_full_size_detail(monkeypatch):
    """Fine detail drifting a pixel or two a period (stars) is integrated at full size, not
    at the reduced flow's size and upsampled."""
    frames = drifting(6, velocity=2.6)  # 2.6 px a frame at 128 px wide
    reference = render(frames, flow="dis")  # flow at full size: integrated there
    monkeypatch.setattr(resolution, "FULL_FLOW_SIDE", 64)
    monkeypatch.setattr(resolution, "FLOW_SIDE", 64)  # flow at 64×48: 1.3 px a period
    fine = render(frames, flow="dis")
    assert fine.details.flow.work_size is None  # nothing composed from a smaller size
    monkeypatch.setattr(resolution, "FINE_STEPS_PER_PERIOD", 0.0)  # as before: at 64×48
    coarse = render(frames, flow="dis")
    assert coarse.details.flow.work_size == (64, 48)
    encode = lambda x: colour.encode(x, "srgb")  # noqa: E731
    inner = (slice(8, -8), slice(8, -8))
    near, far = (metrics.psnr(encode(x.linear)[inner], encode(reference.linear)[inner])
                 for x in (fine, coarse))
    assert near > far + 3, (near, far)


def test_a_still_clip_at_a_reduced_scale_is_still_its_mean(monkeypatch):
    monkeypatch.setattr(resolution, "FULL_FLOW_SIDE", 40)
    monkeypatch.setattr(resolution, "FLOW_SIDE", 40)  # flow at 40×30
    frames = [texture(96, 128, seed=3)] * 4
    result = render(frames)
    assert result.details.flow.work_size is None  # nothing moved: nothing worked on small
    assert np.abs(result.linear - linear_mean(frames)).max() < 1e-6


def test_fast_motion_at_a_reduced_scale_stays_close_and_the_still_part_exact(monkeypatch):
    frames = square((24.0, 0.0), frames=5)
    monkeypatch.setattr(resolution, "MAX_STEPS_PER_PERIOD", 1e9)  # full size: the reference
    reference = render(frames, flow="dis")
    assert reference.details.flow.work_size is None
    monkeypatch.setattr(resolution, "MAX_STEPS_PER_PERIOD", 6.0)
    reduced = render(frames, flow="dis")
    w, h = reduced.details.flow.work_size
    assert w < 320 and h < 160  # worked on smaller
    encode = lambda x: colour.encode(x, "srgb")  # noqa: E731
    assert metrics.psnr(encode(reduced.linear), encode(reference.linear)) > 30
    # Rows far from the square (it moves along rows 4..44; DIS spreads its motion some
    # 45 px around it) keep every full-size pixel: exactly the plain mean there.
    still = slice(110, 160)
    mean = linear_mean(frames)
    assert np.abs(reduced.linear[still] - mean[still]).max() < 1e-6


def test_the_composer_keeps_plain_intervals_at_full_size():
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 12, 16, 3)).astype(np.float32)
    composer = resolution.Composer(a.shape)
    small = [resolution.downscale(x, (4, 3)) for x in (a, b)]
    part = composer.add_interval(a, b, *small, None, 2.0, None, want_part=True)
    assert np.array_equal(part, (a + b) * np.float32(1.0))
    assert np.allclose(composer.total(), (a + b) * 1.0, atol=1e-6)


def test_the_cli_says_where_motion_was_worked_on(tmp_path, monkeypatch):
    monkeypatch.setattr(resolution, "FULL_FLOW_SIDE", 64)
    monkeypatch.setattr(resolution, "FLOW_SIDE", 64)  # flow and motion at 64×48
    result = render(drifting(4, velocity=3.0))
    assert any(part.startswith("motion at 64×") for part in result.details.summary())
    assert result.details.to_dict()["work_size"][0] == 64
