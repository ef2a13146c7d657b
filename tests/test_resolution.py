"""The flow render's sizes (lexp.renderers.resolution): flow of large frames estimated
smaller, every interval integrated at full size, and what does not move exactly its mean."""

from __future__ import annotations

import cv2
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


def test_flow_is_reduced_only_for_large_frames():
    assert resolution.flow_scale(720, 1280) == 1.0  # up to FULL_FLOW_SIDE: at full size
    assert resolution.flow_scale(2160, 3840) == pytest.approx(3840 / resolution.FLOW_SIDE)


def test_a_reduced_flow_still_integrates_at_full_size(monkeypatch):
    """Fine detail moving under a flow estimated at half the size keeps its full-size
    sharpness: the render along the flow upsampled is close to the one along a full-size
    flow, and far from the same frames shrunk and grown back."""
    frames = drifting(6, velocity=6.0)  # 6 px a frame at 128 px wide
    reference = render(frames, flow="dis")  # flow at full size
    monkeypatch.setattr(resolution, "FULL_FLOW_SIDE", 64)
    monkeypatch.setattr(resolution, "FLOW_SIDE", 64)  # flow at 64×48
    reduced = render(frames, flow="dis")
    encode = lambda x: colour.encode(x, "srgb")  # noqa: E731
    inner = (slice(8, -8), slice(8, -8))
    shrunk = cv2.resize(resolution.downscale(reduced.linear, (64, 48)), (128, 96),
                        interpolation=cv2.INTER_LINEAR)
    near, far = (metrics.psnr(encode(x)[inner], encode(reference.linear)[inner])
                 for x in (reduced.linear, shrunk))
    assert near > far + 3, (near, far)


def test_a_still_clip_at_a_reduced_scale_is_still_its_mean(monkeypatch):
    monkeypatch.setattr(resolution, "FULL_FLOW_SIDE", 40)
    monkeypatch.setattr(resolution, "FLOW_SIDE", 40)  # flow at 40×30
    frames = [texture(96, 128, seed=3)] * 4
    result = render(frames)
    assert np.abs(result.linear - linear_mean(frames)).max() < 1e-6


def test_fast_motion_keeps_the_still_part_exact():
    frames = square((24.0, 0.0), frames=5)
    result = render(frames, flow="dis")
    # Rows far from the square (it moves along rows 4..44; DIS spreads its motion some
    # 45 px around it) are exactly the plain mean.
    still = slice(110, 160)
    mean = linear_mean(frames)
    assert np.abs(result.linear[still] - mean[still]).max() < 1e-6


def test_the_composer_folds_its_terms_into_a_wide_total(monkeypatch):
    monkeypatch.setattr(resolution.Composer, "FOLD", 2)
    rng = np.random.default_rng(0)
    terms = rng.random((5, 12, 16, 3)).astype(np.float32)
    composer = resolution.Composer(terms[0].shape)
    for term in terms:
        composer.add_full(term)
    total = composer.total()
    assert total.dtype == np.float64
    np.testing.assert_allclose(total, terms.sum(axis=0, dtype=np.float64), atol=1e-6)


@pytest.mark.parametrize("velocity, at_full_size", [(1.5, True), (9.0, False)])
def test_a_slow_clip_has_its_flow_at_full_size(monkeypatch, velocity, at_full_size):
    """Slow fine detail (stars) is not followed on a reduced copy: a clip whose first
    interval moves under SLOW_FLOW_PX full-size px a period gets its flow at full size;
    a fast one keeps the reduced flow."""
    frames = drifting(5, velocity=velocity)  # 128×96
    full = render(frames, flow="dis")  # under FULL_FLOW_SIDE: flow at full size
    monkeypatch.setattr(resolution, "FULL_FLOW_SIDE", 64)
    monkeypatch.setattr(resolution, "FLOW_SIDE", 64)  # flow at 64×48 unless slow
    ours = render(frames, flow="dis")
    assert np.array_equal(ours.linear, full.linear) == at_full_size
