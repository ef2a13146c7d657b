"""The lexp generator's warp residual: how far each frame's flow fails to explain the next
frame, the cue for where a blur beats the flow's extrapolation (``lexp.model.warp_residual``)."""

from __future__ import annotations

import pytest
import torch

from lexp import checkpoint
from lexp.model import LOG_FLOOR, GeneratorConfig, build, warp_residual


def drifting_texture(speed: float, frames: int = 4, h: int = 40, w: int = 60) -> torch.Tensor:
    """Log frames 1×T×3×H×W of a random texture moving ``speed`` px per period to the right
    (whole pixels: each frame is the last one rolled)."""
    base = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    linear = torch.stack([torch.roll(base, int(speed) * i, dims=-1) for i in range(frames)], 1)
    return torch.log(linear + LOG_FLOOR)


def flow_field(dx: float, frames: int = 4, h: int = 40, w: int = 60) -> torch.Tensor:
    flows = torch.zeros(1, frames, 2, h, w)
    flows[:, 1:, 0] = dx  # entry 0: no flow into the first frame
    return flows


def inner(residual: torch.Tensor) -> torch.Tensor:
    return residual[..., 4:-4]  # away from the columns the roll wraps round


def test_the_true_flow_explains_the_frames_and_no_flow_does_not():
    logs = drifting_texture(3)
    right = warp_residual(logs, flow_field(3), torch.ones(1))
    still = warp_residual(logs, flow_field(0), torch.ones(1))
    wrong = warp_residual(logs, flow_field(-3), torch.ones(1))
    assert right.shape == (1, 4, 1, 40, 60)
    assert right[:, 0].abs().max() == 0  # nothing leads into the first frame
    assert inner(right).max() < 1e-4
    assert inner(still[:, 1:]).mean() > 0.3 and inner(wrong[:, 1:]).mean() > 0.3
    assert 0 <= still.min() and still.max() <= 4  # bounded


def test_the_flow_is_per_period_and_the_gap_scales_it():
    # Inputs two periods apart: a texture moving 4 px between inputs has a flow of 2 px
    # per period, and only the gap turns it into the displacement.
    logs = drifting_texture(4)
    assert inner(warp_residual(logs, flow_field(2), torch.tensor([2.0]))).max() < 1e-4
    assert inner(warp_residual(logs, flow_field(2), torch.tensor([1.0]))[:, 1:]).mean() > 0.3


def test_one_frame_has_no_residual():
    logs = drifting_texture(3, frames=1)
    assert warp_residual(logs, flow_field(3, frames=1), torch.ones(1)).abs().max() == 0


def test_the_network_reads_it_and_older_checkpoints_are_rebuilt_without_it():
    assert GeneratorConfig().warp_residual is True
    with_cue, without = build(GeneratorConfig()), build(GeneratorConfig(warp_residual=False))
    assert with_cue.encode[0].in_channels == without.encode[0].in_channels + 1
    # A description from before the field existed is a network trained without the cue.
    older = GeneratorConfig().to_dict()
    del older["warp_residual"]
    assert GeneratorConfig.from_dict(older).warp_residual is False
    with pytest.raises(ValueError, match="warp_residual"):
        GeneratorConfig(warp_residual="yes")
    # The shipped checkpoints load (and say which they are) whatever they were trained with.
    for name in ("lexp", "seed"):
        network, config = checkpoint.load_network(checkpoint.resolve(name))
        assert isinstance(config.warp_residual, bool)
