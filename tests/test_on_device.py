"""The flow render kept on a torch device (lexp.renderers.on_device): its frames, resizing
and sums against the numpy/OpenCV path's, and whole renders — a reduced flow, the trail
video, extrapolation, the generator — through it. Run on the CPU always (the same torch
code a GPU render runs), and on CUDA too under ``-m gpu``."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import lexp
from lexp import colour, metrics
from lexp.config import RenderConfig, TimeSpec
from lexp.media import MemoryClip
from lexp.renderers import flow as flow_render
from lexp.renderers import interpolate_torch, on_device, resolution
from lexp.renderers.trail_video import TrailSpec

from .test_controls import video_frames
from .test_flow_render import drifting, moving_square

torch = pytest.importorskip("torch")

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


@pytest.fixture(scope="module", params=DEVICES)
def integrator(request):
    return interpolate_torch.TorchIntegrator(torch.device(request.param))


@pytest.fixture(scope="module")
def frames(integrator):
    return integrator.frames(colour.decode_lut("srgb").astype(np.float32))


def _host(frames, image) -> np.ndarray:
    return frames.host(image)


def test_linear_light_is_the_lut_times_the_gain(frames):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    host = resolution.HostFrames(colour.decode_lut("srgb").astype(np.float32))
    for gain in (1.0, 1.7):
        np.testing.assert_allclose(_host(frames, frames.linear(rgb, gain)),
                                   host.linear(rgb, gain), rtol=1e-6)


@pytest.mark.parametrize("size", [(48, 27), (24, 14), (35, 19), (96, 54)])
def test_downscaling_is_opencvs_area(frames, size):
    """Whole factors (plain averages) and not (cv2's pixel-area weights)."""
    image = np.random.default_rng(1).random((54, 96, 3)).astype(np.float32)
    ours = _host(frames, frames.downscale(frames.on_device(image), size))
    np.testing.assert_allclose(ours, resolution.downscale(image, size), atol=1e-6)


@pytest.mark.parametrize("size", [(96, 54), (131, 77)])
def test_upscaling_is_opencvs_bilinear(frames, size):
    image = np.random.default_rng(2).random((27, 48, 1)).astype(np.float32)
    ours = _host(frames, frames.upscale(frames.on_device(image), size))
    theirs = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(ours[..., 0], theirs, atol=1e-5)


def test_the_sums_are_the_numpy_composers(frames, monkeypatch):
    """Full-size terms past a fold, numpy and device terms alike."""
    monkeypatch.setattr(resolution.Composer, "FOLD", 3)
    rng = np.random.default_rng(3)
    shape = (30, 40, 3)
    host, device = resolution.Composer(shape), frames.composer(shape)
    for _ in range(7):
        a, b = rng.random((2, *shape)).astype(np.float32)
        host.add_full(a)
        host.add_full(b)
        device.add_full(frames.on_device(a))
        device.add_full(b)  # numpy in: extrapolated light is
    total = device.total()
    assert isinstance(total, np.ndarray) and total.dtype == np.float64
    np.testing.assert_allclose(total, host.total(), atol=1e-5)


def _both(integrator, clip_frames, **config):
    """(the render on the CPU's numpy path, the same through ``integrator``)."""
    from lexp import flow

    cfg = RenderConfig(method="flow", **config)
    return [flow_render.render_flow(MemoryClip(clip_frames, 30.0), cfg,
                                    flow.make_estimator("dis"), integrator=i)
            for i in (None, integrator)]


def _close(a, b, floor: float = 50) -> None:
    assert metrics.psnr(np.clip(a.linear, 0, 1), np.clip(b.linear, 0, 1)) > floor


@pytest.mark.parametrize("velocity", [9.0, 2.6])
def test_a_reduced_flow_on_the_device_is_the_host_render(integrator, monkeypatch, velocity):
    """Flow at a reduced size, every interval at full size along it upsampled, in
    segments: the same image through torch as through numpy."""
    monkeypatch.setattr(resolution, "FULL_FLOW_SIDE", 64)
    monkeypatch.setattr(resolution, "FLOW_SIDE", 64)
    host, device = _both(integrator, drifting(5, velocity=velocity))
    assert device.details.flow.samples == host.details.flow.samples > 4
    _close(host, device)


def test_extrapolation_from_the_device(integrator):
    host, device = _both(integrator, moving_square(6), exposure=TimeSpec(14.0, "f"))
    assert device.details.flow.extrapolated == host.details.flow.extrapolated == 14 - 6
    _close(host, device)


def test_the_trail_video_from_the_device(integrator, tmp_path):
    from lexp import flow

    config = RenderConfig(method="flow", exposure=TimeSpec(8.0, "f"))
    clip = drifting(5, velocity=4.0)
    videos = []
    for name, chosen in (("host.mp4", None), ("device.mp4", integrator)):
        path = tmp_path / name
        flow_render.render_flow(MemoryClip(clip, 30.0), config, flow.make_estimator("dis"),
                                video=TrailSpec(str(path)), integrator=chosen)
        videos.append(video_frames(path))
    assert len(videos[0]) == len(videos[1]) == 4 + 1 + 3  # intervals, last frame, periods
    for ours, theirs in zip(*videos, strict=True):
        assert metrics.psnr(ours, theirs) > 40  # H.264 of near-equal frames


def test_the_generator_reads_frames_from_the_device(integrator, monkeypatch):
    from lexp import synthetic

    street = list(synthetic.night_street(96, 64, frames=6))
    renders, made, original = [], [], integrator.frames
    spy = lambda lut, exact=False: made.append(lut) or original(lut, exact)  # noqa: E731
    for chosen in (None, integrator):
        monkeypatch.setattr(interpolate_torch, "integrator_for",
                            lambda _spec, chosen=chosen: chosen)
        if chosen is not None:
            monkeypatch.setattr(chosen, "frames", spy, raising=False)
        renders.append(lexp.render(street, fps=20, method="learned", exposure="10f",
                                   flow="dis", cache=False))
    assert len(made) == 1 and renders[1].details.generator is not None
    assert metrics.psnr(np.clip(renders[0].linear, 0, 1),
                        np.clip(renders[1].linear, 0, 1)) > 40


def test_area_weights_are_shares_of_pixels():
    weights = on_device.area_weights(5, 2)  # each output pixel covers 2.5 inputs
    np.testing.assert_allclose(weights.sum(axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(weights[0], [0.4, 0.4, 0.2, 0, 0], atol=1e-6)
    assert cv2.resize(np.arange(5, dtype=np.float32)[None], (2, 1),
                      interpolation=cv2.INTER_AREA)[0] == pytest.approx(weights @ np.arange(5))


def test_path_bends_on_the_device_are_the_numpy_ones(frames):
    from lexp.renderers import interpolate

    rng = np.random.default_rng(4)
    forward, backward, back, on = rng.normal(0, 3, (4, 2, 30, 40)).astype(np.float32)
    ours = interpolate.path_bends(*map(frames.flow, (forward, backward)), 2.0,
                                  (frames.flow(back), 1.0), (frames.flow(on), 3.0),
                                  sample_flow=frames.sample_flow)
    theirs = interpolate.path_bends(forward, backward, 2.0, (back, 1.0), (on, 3.0))
    for x, y in zip(ours, theirs, strict=True):
        # remap rounds its coordinates to 1/32 px, grid_sample does not
        np.testing.assert_allclose(_host(frames, x), y, atol=0.05)
        assert np.abs(y).max() > 1  # and they bend


@pytest.mark.parametrize("size", [(20, 15), (80, 60), (33, 17)])
def test_flows_resampled_on_the_device_are_resolutions(frames, size):
    flow = np.random.default_rng(5).normal(0, 3, (2, 30, 40)).astype(np.float32)
    ours = _host(frames, frames.flow_at(frames.flow(flow), size))
    np.testing.assert_allclose(ours, resolution.flow_at(flow, size), atol=1e-4)
