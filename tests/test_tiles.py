"""Instants only where things move (lexp.renderers.tiles): a tile's pixels get the sum the
whole frame gives them; still tiles are their plain blend."""

from __future__ import annotations

import numpy as np
import pytest

from lexp.renderers import interpolate, tiles

from .test_interpolate_torch import _pair


def _whole(a, b, forward, backward, n, bends, gap=1.0):
    """interval_sum's whole-frame sum with n instants."""
    ends = (b - a) * np.float32(0.5)
    return (interpolate.integrate_interval(a, b, forward, backward, n, bends) + ends) \
        * np.float32(gap / n)


@pytest.mark.parametrize("bent", [False, True])
def test_tiles_see_what_the_whole_frame_sees(bent):
    """Uniform motion: every tile takes the whole frame's instants, and each tile's
    crop is wide enough that its sum is the whole frame's."""
    a, b, forward, backward = _pair(150, 200, 3.6)
    bends = interpolate.path_bends(forward, backward, 1.0, (backward * 1.3, 1.0),
                                   (forward * 0.7, 1.0)) if bent else None
    n = interpolate.samples_for(forward, 1.0)
    plan = [(tile, n, crop) for tile, _, crop in
            tiles.plan(forward, backward, bends, 1.0, lambda *_: n)[0]]
    assert len(plan) == 12 and any(crop != tile for tile, _, crop in plan)
    tiled = tiles.tiled_integral(a, b, forward, backward, bends, 1.0, plan,
                                 interpolate.integrate_interval)
    np.testing.assert_allclose(tiled, _whole(a, b, forward, backward, n, bends), atol=2e-5)


def test_still_tiles_are_their_plain_blend_and_moving_ones_their_own_count():
    h, w = 128, 192
    a, b, forward, backward = _pair(h, w, 0.0)
    forward[:] = 0
    forward[0, :, 128:] = 5.0  # only the right-hand column of tiles moves
    backward = -forward
    b[:, 128:] = np.roll(a[:, 128:], 5, axis=1)
    summed, n = interpolate.interval_sum(a, b, forward, 1.0, lambda: backward)
    assert n == 5
    still = (a[:, :128] + b[:, :128]) * np.float32(0.5)  # the trapezoid over one period
    np.testing.assert_allclose(summed[:, :128], still, atol=1e-6)
    np.testing.assert_allclose(summed[:, 128:], _whole(a, b, forward, backward, 5, None)
                               [:, 128:], atol=2e-5)


def test_fast_motion_everywhere_takes_the_whole_frame():
    a, b, forward, backward = _pair(96, 128, 30.0)
    n = interpolate.samples_for(forward, 1.0)
    _, work = tiles.plan(forward, backward, None, 1.0, interpolate.samples_for)
    assert work > tiles.WORTH_IT * (n - 1) * 96 * 128  # so: the frame at once
    summed, count = interpolate.interval_sum(a, b, forward, 1.0, lambda: backward)
    assert count == n
    np.testing.assert_array_equal(summed, _whole(a, b, forward, backward, n, None))


def test_reach_bounds_every_lookup():
    """No instant looks further from a pixel than reach says (the crops rely on it)."""
    rng = np.random.default_rng(3)
    fields = [rng.normal(0, 4, (2, 8, 8)).astype(np.float32) for _ in range(6)]
    forward, backward, bends = fields[0], fields[1], tuple(fields[2:])
    far = tiles.reach(forward, backward, bends)
    stack = np.stack([np.zeros_like(forward), forward, backward, *bends])
    for s in np.linspace(0, 1, 41):
        for weights in interpolate.instant_weights(float(s), True):
            offset = np.tensordot(np.float32(weights), stack, axes=1)
            assert (np.abs(offset).max(axis=0) <= far + 1e-4).all()
