"""The torch integration (the GPU path) against the OpenCV one: run on the CPU always (the
same torch code a CUDA or MPS render runs), and on CUDA too where there is one (``-m gpu``;
scripts/device_checks runs them on a lent GPU machine)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lexp import metrics, torch_env
from lexp.config import RenderConfig
from lexp.errors import UsageError
from lexp.media import MemoryClip
from lexp.renderers import flow as flow_render
from lexp.renderers import interpolate, interpolate_torch
from lexp.renderers.result import FlowStats

from .test_flow_render import drifting, texture

torch = pytest.importorskip("torch")


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


@pytest.fixture(scope="module", params=DEVICES)
def integrator(request):
    """The torch integrator on each device: the CPU, and CUDA under ``-m gpu``."""
    return interpolate_torch.TorchIntegrator(torch.device(request.param))


def _pair(h: int, w: int, shift: float, seed: int = 0):
    """Two linear frames of a smooth texture, the second moved right by ``shift`` px (not
    whole: remap's 1/32-px rounding shows), and the flows between them, a little noisy."""
    rng = np.random.default_rng(seed)
    a = texture(h, w, seed).astype(np.float32) / 255
    b = cv2.warpAffine(a, np.float32([[1, 0, shift], [0, 1, 0]]), (w, h),
                       borderMode=cv2.BORDER_REFLECT)
    forward = np.zeros((2, h, w), np.float32)
    forward[0] = shift
    forward += rng.normal(0, 0.3, forward.shape).astype(np.float32)
    return a, b, forward, -forward


@pytest.mark.parametrize("bent", [False, True])
def test_torch_instants_match_opencv(integrator, bent):
    a, b, forward, backward = _pair(72, 96, 4.37)
    bends = interpolate.path_bends(forward, backward, 1.0, (backward * 1.2, 1.0),
                                   (forward * 0.8, 1.0)) if bent else None
    n = 6
    ours = interpolate.integrate_interval(a, b, forward, backward, n, bends) / n
    theirs = integrator.integrate(a, b, forward, backward, n, bends) / n
    assert theirs.shape == ours.shape and theirs.dtype == np.float32
    assert metrics.psnr(np.clip(theirs, 0, 1), np.clip(ours, 0, 1)) > 50
    # and the instants did something: the sum is not the plain blend
    plain = (a + (n - 1) / 2 * (a + b)) / n
    assert np.abs(ours - plain).max() > 0.01


def test_batches_of_instants_add_up_to_one(integrator, monkeypatch):
    a, b, forward, backward = _pair(40, 56, 3.3, seed=1)
    whole = integrator.integrate(a, b, forward, backward, 9)
    kind = integrator.device.type
    monkeypatch.setattr(interpolate_torch, "_BATCH_BYTES", {kind: 1})  # one at a time
    assert interpolate_torch.chunk_for(kind, 40, 56, 8) == 1
    np.testing.assert_allclose(integrator.integrate(a, b, forward, backward, 9), whole,
                               atol=1e-5)


def test_one_instant_is_the_first_frame(integrator):
    a, b, forward, backward = _pair(16, 20, 0.5)
    np.testing.assert_array_equal(integrator.integrate(a, b, forward, backward, 1), a)


@pytest.mark.parametrize("size", [1, 2, 5, 13, 30])
def test_mirrored_borders_are_opencvs(size):
    row = np.arange(size, dtype=np.float32)[None]
    padded = cv2.copyMakeBorder(row, 0, 0, 12, 12, cv2.BORDER_REFLECT_101) if size > 1 \
        else np.zeros((1, size + 24), np.float32)
    np.testing.assert_array_equal(interpolate_torch._reflect_101(size, 12), padded[0])


@pytest.mark.parametrize("shape", [(3, 4), (20, 9), (48, 64)])
def test_blur_is_opencvs(integrator, shape):
    """The local error's blur, even on images smaller than its kernel."""
    image = np.random.default_rng(2).random(shape).astype(np.float32)
    ours = cv2.GaussianBlur(image, (0, 0), 3.0)
    image_on = torch.from_numpy(image)[None, None].to(integrator.device)
    theirs = integrator._blur(image_on)[0, 0].cpu().numpy()
    np.testing.assert_allclose(theirs, ours, atol=1e-5)


def test_a_render_through_torch_is_the_opencv_render(integrator):
    frames = drifting(8, velocity=5.3)
    config = RenderConfig(method="flow")
    clip = MemoryClip(frames, 30.0)
    ours = flow_render.render_flow(clip, config, _dis())
    theirs = flow_render.render_flow(MemoryClip(frames, 30.0), config, _dis(),
                                     integrator=integrator)
    assert ours.details.flow.samples == theirs.details.flow.samples > 7 * 2
    on_gpu = integrator.device.type != "cpu"  # a CPU is not a GPU: it is not named
    assert theirs.details.flow.integrated_on == ("cuda" if on_gpu else None)
    assert metrics.psnr(np.clip(theirs.linear, 0, 1), np.clip(ours.linear, 0, 1)) > 50


def _dis():
    from lexp import flow

    return flow.make_estimator("dis")


def test_the_device_picks_the_integrator(monkeypatch):
    assert interpolate_torch.integrator_for("cpu") is None
    monkeypatch.setattr(torch_env, "gpu_possible", lambda: False)
    assert interpolate_torch.integrator_for("auto") is None  # and torch was not asked
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA is not available"):
            interpolate_torch.integrator_for("cuda")


def test_a_gpu_render_says_so():
    stats = FlowStats("raft-small", pairs=3, samples=9, integrated_on="cuda")
    assert stats.to_dict()["integrated_on"] == "cuda"
    assert "integrated_on" not in FlowStats("dis-medium").to_dict()
