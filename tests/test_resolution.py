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


def test_the_scale_follows_the_motion_and_the_size():
    slow = square((2.0, 0.0))
    assert resolution.choose_scale(slow[0], slow[1], 1.0) == 1.0  # full size, as before
    fast = square((40.0, 0.0))
    scale = resolution.choose_scale(fast[0], fast[1], 1.0)
    assert 40 / resolution.MAX_STEPS_PER_PERIOD * 0.7 < scale < 40 / 8 * 1.3  # ~5
    # Strided frames (a gap of 4 periods) move 4× as far for the same speed.
    assert resolution.choose_scale(fast[0], fast[1], 4.0) < scale
    wide = np.zeros((100, 4000, 3), np.uint8)
    assert resolution.choose_scale(wide, None, 1.0) == pytest.approx(4000 / 1920)


def test_a_still_clip_at_a_reduced_scale_is_still_its_mean(monkeypatch):
    monkeypatch.setattr(resolution, "MAX_WORK_SIDE", 40)  # force s = 128 / 40
    frames = [texture(96, 128, seed=3)] * 4
    result = render(frames)
    assert result.details.flow.work_size == (40, 30)
    assert np.abs(result.linear - linear_mean(frames)).max() < 1e-6


def test_fast_motion_at_a_reduced_scale_stays_close_and_the_still_part_exact(monkeypatch):
    frames = square((24.0, 0.0), frames=5)
    monkeypatch.setattr(resolution, "MAX_STEPS_PER_PERIOD", 1e9)  # full size: the reference
    monkeypatch.setattr(resolution, "MAX_WORK_SIDE", 10 ** 6)
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
    composer = resolution.Composer(a.shape, 4.0)
    small = [resolution.downscale(x, composer.size) for x in (a, b)]
    part = composer.add_interval(a, b, *small, None, 2.0, None, want_part=True)
    assert np.array_equal(part, (a + b) * np.float32(1.0))
    assert np.allclose(composer.total(), (a + b) * 1.0, atol=1e-6)


def test_the_cli_says_where_motion_was_worked_on(tmp_path, monkeypatch):
    monkeypatch.setattr(resolution, "MAX_WORK_SIDE", 64)
    result = render(drifting(4, velocity=3.0))
    assert any(part.startswith("motion at 64×") for part in result.details.summary())
    assert result.details.to_dict()["work_size"][0] == 64
