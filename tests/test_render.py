import numpy as np
import pytest

from lexp import colour, renderers
from lexp.config import RenderConfig, TimeSpec, Window
from lexp.errors import InputError
from lexp.media import MemoryClip
from lexp.renderers.stack import MedianStacker


class ListClip(MemoryClip):
    """An in-memory clip that can also hand out BGR, as OpenCV's decoder does."""

    def __init__(self, frames, fps=10.0, bgr=False):
        super().__init__(frames, fps, "list")
        self.native_bgr = bgr

    def frames(self, first=0, end=None, stride=1, reuse_buffer=False, any_channel_order=False):
        for i, f in super().frames(first, end, stride):
            yield i, (f[..., ::-1].copy() if self.native_bgr and any_channel_order else f)


def random_frames(n, h=37, w=53, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def reference_linear(frames, transfer="srgb"):
    stack = np.stack(frames).astype(np.float64) / 255.0
    return colour.decode(stack, transfer)


@pytest.mark.parametrize("n", [1, 7, 130])  # 130 > one float32 block of 64 frames
def test_mean_matches_float64_reference(n):
    frames = random_frames(n)
    result = renderers.stack_clip(ListClip(frames), RenderConfig(method="mean"))
    want = reference_linear(frames).mean(axis=0)
    assert np.abs(result.linear - want).max() < 1e-6
    assert result.frames_used == n and (result.first_frame, result.last_frame) == (0, n - 1)


@pytest.mark.parametrize("method,reduce", [("max", np.max), ("min", np.min)])
def test_extremes_are_exact(method, reduce):
    frames = random_frames(9)
    result = renderers.stack_clip(ListClip(frames), RenderConfig(method=method))
    want = reference_linear(frames).max(axis=0) if method == "max" else \
        reference_linear(frames).min(axis=0)
    assert np.abs(result.linear - want).max() < 1e-6
    assert np.array_equal(result.linear,
                          colour.decode_lut("srgb")[reduce(np.stack(frames), axis=0)])


@pytest.mark.parametrize("n", [5, 6])  # odd: the middle value; even: mean of the two, linear
def test_median_in_linear_light(n):
    frames = random_frames(n)
    result = renderers.stack_clip(ListClip(frames), RenderConfig(method="median"))
    want = np.median(reference_linear(frames), axis=0)
    assert np.abs(result.linear - want).max() < 1e-6


def test_median_memory_is_bounded_by_sampling():
    frames = random_frames(40, h=64, w=64)  # 12 KiB a frame
    stacker = MedianStacker(64, 64, colour.decode_lut("srgb"), memory_mb=0)
    assert stacker.capacity == 3  # at least three frames, whatever the budget
    for f in frames:
        stacker.add(f)
    assert len(stacker.kept) <= 3 and stacker.sample_every == 16
    kept_ids = [id(f) for f in stacker.kept]
    assert kept_ids == [id(frames[i]) for i in (0, 16, 32)]  # evenly spaced


def test_bgr_decoders_give_the_same_image():
    frames = random_frames(4)
    a = renderers.stack_clip(ListClip(frames), RenderConfig()).linear
    b = renderers.stack_clip(ListClip(frames, bgr=True), RenderConfig()).linear
    assert np.array_equal(a, b)


def test_window_start_end_stride_and_max_frames():
    frames = random_frames(30)
    cfg = RenderConfig(window=Window(start=TimeSpec(0.5, "s"), end=TimeSpec(25, "f"),
                                     stride=4, max_frames=4))
    result = renderers.stack_clip(ListClip(frames, fps=10), cfg)
    used = [5, 9, 13, 17]
    assert (result.frames_used, result.first_frame, result.last_frame) == (4, 5, 17)
    want = reference_linear([frames[i] for i in used]).mean(axis=0)
    assert np.abs(result.linear - want).max() < 1e-6


def test_empty_window_is_an_input_error():
    with pytest.raises(InputError, match="no frames"):
        renderers.stack_clip(ListClip(random_frames(3)),
                          RenderConfig(window=Window(start=TimeSpec(10, "f"))))


def test_transfer_none_is_the_plain_code_mean():
    frames = [np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 255, np.uint8)]
    result = renderers.stack_clip(ListClip(frames), RenderConfig(transfer="none"))
    encoded = renderers.finish(result.linear, RenderConfig(transfer="none"))
    assert np.allclose(encoded * 255, 127.5)
    linear = renderers.stack_clip(ListClip(frames), RenderConfig()).linear
    assert np.allclose(renderers.finish(linear, RenderConfig()) * 255, 187.5, atol=0.5)


def test_exposure_compensation_doubles_light_per_stop():
    linear = np.full((2, 2, 3), 0.1, np.float32)
    plus_one = renderers.finish(linear, RenderConfig(ev=1.0))
    assert np.allclose(colour.decode(plus_one, "srgb"), 0.2, atol=1e-5)
    hot = renderers.finish(np.full((1, 1, 3), 0.9, np.float32), RenderConfig(ev=2, tone="soft"))
    assert 0.99 < hot.max() <= 1.0
