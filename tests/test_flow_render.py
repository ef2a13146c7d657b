"""Flow-guided long exposure on synthetic clips whose motion is known."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from lexp import colour, metrics, renderers, stills
from lexp.config import RenderConfig, TimeSpec, Window
from lexp.media import MemoryClip
from lexp.renderers import extrapolate, interpolate
from lexp.renderers import flow as flow_render

from .conftest import run_lexp

H, W = 96, 128


def texture(height: int, width: int, seed: int = 0, sigma: float = 2.5,
            rng: np.random.Generator | None = None) -> np.ndarray:
    """A smooth random RGB texture (uint8 height×width×3), its features ~``sigma`` px
    across; drawn from ``rng`` when given, else from ``seed``."""
    rng = np.random.default_rng(seed) if rng is None else rng
    base = cv2.GaussianBlur(rng.random((height, width)).astype(np.float32), (0, 0), sigma)
    base = (base - base.min()) / (base.max() - base.min())
    return np.rint(np.dstack([base, base * 0.8 + 0.1, 1 - base]) * 255).astype(np.uint8)


def drifting(frames: int, velocity: float = 2.0, seed: int = 0) -> list[np.ndarray]:
    """A smooth texture sliding right by ``velocity`` px per frame (wrapping around)."""
    wide = texture(H, W * 2, seed)
    out = []
    for t in range(frames):
        shift = velocity * t
        m = np.float32([[1, 0, shift], [0, 1, 0]])
        out.append(cv2.warpAffine(wide, m, (W * 2, H), flags=cv2.INTER_CUBIC,
                                  borderMode=cv2.BORDER_WRAP)[:, W // 2:W // 2 + W])
    return out


def truth(frames: list[np.ndarray]) -> np.ndarray:
    lut = colour.decode_lut("srgb")
    return colour.encode(np.mean([lut[f] for f in frames], axis=0), "srgb")


def rendered(frames, **config) -> tuple[np.ndarray, renderers.RenderResult]:
    cfg = RenderConfig(**config)
    result = renderers.render_clip(MemoryClip(frames, 30.0), cfg)
    return renderers.finish(result.linear, cfg), result


def score(image, reference) -> float:
    return metrics.psnr(image[8:-8, 8:-8], reference[8:-8, 8:-8])


def test_gaps_are_filled_along_the_flow():
    frames = drifting(33, velocity=2.0)  # 8 px between every 4th frame
    want = truth(frames)
    window = Window(stride=4)
    flow_image, result = rendered(frames, method="flow", flow="dis", window=window)
    mean_image, _ = rendered(frames, method="mean", window=window)
    assert result.method == "flow" and result.frames_used == 9
    assert result.details.flow.samples >= 8 * 4  # at least one sample per skipped frame
    assert score(flow_image, want) > score(mean_image, want) + 6


def test_a_still_scene_is_the_plain_mean():
    frames = [drifting(1)[0]] * 6
    flow_image, result = rendered(frames, method="flow", flow="dis")
    mean_image, _ = rendered(frames, method="mean")
    assert result.details.flow.samples == 5  # one per period: nothing to integrate
    assert np.abs(flow_image - mean_image).max() < 1e-5


def test_steady_motion_is_extrapolated_past_the_last_frame():
    frames = drifting(24, velocity=1.5)
    want = truth(frames)
    image, result = rendered(frames[:5], method="flow", flow="dis",
                             exposure=TimeSpec(24, "f"))
    held, _ = rendered(frames[:5], method="mean")
    assert result.details.flow.extrapolated == 19
    assert result.details.flow.steady > 0.8
    assert score(image, want) > score(held, want) + 3


def moving_square(frames: int, velocity: int = 3) -> list[np.ndarray]:
    """A bright, textured 12×12 square crossing a still, dim, textured background to the
    right by ``velocity`` px per frame."""
    rng = np.random.default_rng(5)
    ground = cv2.GaussianBlur(rng.random((H, W)).astype(np.float32), (0, 0), 3)
    ground = np.dstack([ground * 40 + 20] * 3)
    square = 150 + 100 * cv2.GaussianBlur(rng.random((12, 12)).astype(np.float32), (0, 0), 1)
    out = []
    for t in range(frames):
        image = ground.copy()
        x = 10 + velocity * t
        image[40:52, x:x + 12] = square[..., None]
        out.append(np.rint(image).astype(np.uint8))
    return out


def test_a_small_mover_leaves_its_trail_past_the_last_frame():
    # The square's light must travel on into pixels that held only background in all
    # 5 frames: looking each pixel's motion up backwards cannot put it there (those
    # pixels do not move), carrying the movers' light forward does.
    frames = moving_square(30)
    want = truth(frames)
    image, result = rendered(frames[:5], method="flow", flow="dis", exposure=TimeSpec(30, "f"))
    ahead = (slice(42, 50), slice(10 + 3 * 4 + 16, 10 + 3 * 29))  # never the square in 5
    lift = float(image[ahead].mean() - frames[0][ahead].mean() / 255)
    wanted = float(want[ahead].mean() - frames[0][ahead].mean() / 255)
    assert wanted > 0.1 and lift > 0.45 * wanted  # (0.54: DIS sees 2.7 px, not 3, per frame)
    held, _ = rendered(frames[:5], method="mean")
    assert score(image, want) > score(held, want) + 4


def test_carried_light_draws_a_continuous_trail():
    # One mover, 4 px per period: over the period centred 2 periods after the last frame
    # it sweeps x = 5 + 4·[1.5, 2.5) = 11 … 15, splatted at 4 instants: no gaps, all of
    # its light and nothing elsewhere.
    last = np.zeros((9, 40, 3), np.float32)
    last[4, 5] = 1.0
    share = np.zeros((9, 40), np.float32)
    share[4, 5] = 1.0
    velocity = np.zeros((2, 9, 40), np.float32)
    velocity[0, 4, 5] = 4.0
    light, coverage = extrapolate._CarriedLight(last, share, velocity).at(2.0)
    row = light[4, :, 0]
    assert np.all(row[11:16] > 0.1) and abs(row.sum() - 1) < 1e-5
    assert light.sum() == pytest.approx(3.0) and np.allclose(coverage, light[..., 0])



def test_carried_light_skips_movers_that_left_the_frame_without_changing_the_light():
    # Movers in every direction and at every speed, some leaving within a few periods:
    # what arrives must be what splatting every one of them gives, at every period,
    # including the last few a mover is partly on screen.
    rng = np.random.default_rng(5)
    h, w = 12, 30
    last = rng.random((h, w, 3)).astype(np.float32)
    share = (rng.random((h, w)) > 0.3).astype(np.float32)
    velocity = rng.uniform(-9, 9, (2, h, w)).astype(np.float32)
    velocity[:, :2] = rng.uniform(-0.02, 0.02, (2, 2, w))  # slow ones stay for a while
    carried = extrapolate._CarriedLight(last, share, velocity)
    for t in (1.0, 2.0, 3.0, 5.0, 8.0, 40.0, 400.0):
        tau = np.float32(t) + carried.offset
        every, mass = extrapolate._splat(carried.light, carried.mass,
                                         carried.x + tau * carried.vx,
                                         carried.y + tau * carried.vy, h, w)
        coverage = np.minimum(mass, 1)
        every *= (coverage / np.maximum(mass, 1e-6))[..., None]
        light, covered = carried.at(t)
        assert np.allclose(light, every, atol=1e-6) and np.allclose(covered, coverage)
    assert carried.at(400.0)[0].sum() > 0  # the slow ones are still there
    assert int(np.searchsorted(carried._minus_leaves, -399.95)) < carried.mass.size / 4


def test_the_summed_extrapolation_is_the_sum_of_its_periods():
    # Without --video or camera wander only the sum is needed, and it is made term by
    # term (faster); it must equal the sum of the periods made whole, with movers carried
    # on, a brightness trend, pixels looked up from outside the frame and a part period.
    from lexp import flow

    lut = colour.decode_lut("srgb").astype(np.float32)
    history = [lut[f] * np.float32(1 + 0.01 * t) for t, f in enumerate(moving_square(5))]
    shown = [np.rint(colour.encode(np.clip(x, 0, 1), "srgb") * 255).astype(np.uint8)
             for x in history]
    estimator = flow.make_estimator("dis")
    flows = [estimator.pair(a, b) for a, b in zip(shown, shown[1:], strict=False)]
    assert extrapolate.brightness_trend(history) is not None
    assert extrapolate.camera_wander(flows) is None
    parts = []
    whole, steady = extrapolate.extrapolate(history, flows, 40.5,
                                            on_period=lambda part, w: parts.append(part))
    summed, steady_too = extrapolate.extrapolate(history, flows, 40.5)
    assert len(parts) == 41 and steady == steady_too > 0
    assert np.allclose(np.sum(parts, axis=0), whole, rtol=1e-5, atol=1e-4)
    assert np.allclose(summed, whole, rtol=1e-5, atol=1e-4)
    assert np.abs(summed - whole).max() < 1e-4 * np.abs(whole).max()


def test_progress_counts_extrapolated_periods_as_frames():
    # A long exposure of a short clip spends most of its time past the last frame: the
    # bar must keep moving there, up to the exposure's length, never backwards.
    calls = []
    cfg = RenderConfig(method="flow", flow="dis", exposure=TimeSpec(40, "f"))
    renderers.render_clip(MemoryClip(moving_square(5), 30.0), cfg,
                       lambda done, total=None: calls.append((done, total)))
    done = [d for d, _ in calls]
    assert done == sorted(done) and calls[-1] == (40, 40)
    assert [d for d, total in calls if total == 40] == list(range(6, 41))


def redrawn_noise(frames: int, seed: int = 3) -> list[np.ndarray]:
    """Smooth noise redrawn every frame: texture that churns but whose look stays put."""
    rng = np.random.default_rng(seed)
    return [np.rint(cv2.GaussianBlur(rng.random((H, W, 3)).astype(np.float32), (0, 0), 2)
                    * 255).astype(np.uint8) for _ in range(frames)]


def test_unsteady_motion_is_not_extrapolated_but_averaged():
    """Churning texture 'moves' but does not travel: the exposure must not smear it along
    a flow; its 40-frame truth is smoother than the 5 frames' mean, and the unsettled
    estimate gets closer to it than that mean does."""
    frames = redrawn_noise(40)
    want = truth(frames)
    image, result = rendered(frames[:5], method="flow", flow="dis", exposure=TimeSpec(40, "f"))
    held, _ = rendered(frames[:5], method="mean")
    assert result.details.flow.steady < 0.3
    assert score(image, want) > score(held, want) + 2


def test_static_texture_keeps_its_detail_when_extrapolated():
    frames = [drifting(1)[0]] * 5
    image, _ = rendered(frames, method="flow", flow="dis", exposure=TimeSpec(40, "f"))
    held, _ = rendered(frames, method="mean")
    assert np.abs(image - held).max() < 1e-5


def jerky_camera(frames: int, seed: int, jump: float = 3.0) -> list[np.ndarray]:
    """A still texture seen by a handheld camera: most frames it holds still, now and then
    it jumps ``jump`` px along an axis (a phone's shake, as the real handheld clips show)."""
    rng = np.random.default_rng(seed)
    big = texture(H * 2, W * 2, sigma=2.0, rng=rng)
    steps = rng.choice([-jump, 0, 0, 0, jump], size=(frames, 2))
    steps[0] = 0
    return [cv2.warpAffine(big, np.float32([[1, 0, x - W // 2], [0, 1, y - H // 2]]), (W, H),
                           flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_WRAP)
            for x, y in np.cumsum(steps, axis=0)]


def test_a_shaking_camera_keeps_wandering_past_the_last_frame(monkeypatch):
    """The 48-frame truth of a handheld camera is blurred by where the camera went after
    the 5 frames; the wander estimated from their shake gets closer to it, on average
    over four shakes, than extrapolating without it does."""
    gains = []
    for seed in range(4):
        frames = jerky_camera(48, seed)
        want = truth(frames)
        exposure = TimeSpec(48, "f")
        image, _ = rendered(frames[:5], method="flow", flow="dis", exposure=exposure)
        with monkeypatch.context() as patch:
            patch.setattr(extrapolate, "WANDER_FLOOR", math.inf)
            steady, _ = rendered(frames[:5], method="flow", flow="dis", exposure=exposure)
        gains.append(score(image, want) - score(steady, want))
    assert np.mean(gains) > 1.0, gains


def test_camera_wander_is_the_spread_of_the_global_motion():
    def flows(steps):
        return [np.stack([np.full((H, W), x, np.float32), np.full((H, W), y, np.float32)])
                for x, y in steps]

    assert extrapolate.camera_wander(flows([(2, 0), (2, 0), (2, 0), (2, 0)])) is None  # a pan
    x, y = extrapolate.camera_wander(flows([(0, 0), (3, 0), (0, 0), (-3, 0.4)]))
    assert x == pytest.approx(np.std([0, 3, 0, -3], ddof=1), rel=1e-4)
    assert y == 0  # its spread, 0.2, is under the floor
    assert extrapolate.camera_wander(flows([(0.1, 0), (-0.1, 0), (0.2, 0)])) is None
    assert extrapolate.camera_wander(flows([(0, 0), (3, 3)])) is None  # 2 flows tell nothing


@pytest.mark.parametrize("sigmas", [(0.0, 0.0), (2.5, 0.7), (9.0, 30.0)])
def test_wide_gaussian_blur_matches_the_full_size_one(sigmas):
    rng = np.random.default_rng(1)
    image = rng.random((180, 240, 3)).astype(np.float32)
    image[90, 120] = 50.0  # an impulse: its spread is the blur's
    exact = cv2.GaussianBlur(image, (0, 0), sigmaX=max(sigmas[0], 1e-3),
                             sigmaY=max(sigmas[1], 1e-3), borderType=cv2.BORDER_REFLECT)
    fast = extrapolate.gaussian_blur(image, *sigmas)
    assert fast.shape == image.shape and fast.dtype == np.float32
    assert np.abs(fast - exact)[40:-40, 40:-40].max() < 0.02 * exact.max()


def brightening(frames: int, per_frame: float, flicker: bool = False) -> list[np.ndarray]:
    """A still texture whose linear level changes by ``per_frame`` of the first frame's
    each frame (auto-exposure drifting); ``flicker``: up and down instead."""
    lut = colour.decode_lut("srgb")
    base = lut[drifting(1)[0]] * 0.5
    out = []
    for t in range(frames):
        step = (1 if t % 2 else -1) if flicker else t
        linear = np.clip(base * (1 + per_frame * step), 0, 1)
        out.append(np.rint(colour.encode(linear, "srgb") * 255).astype(np.uint8))
    return out


def test_a_steady_change_of_light_is_carried_on():
    frames = brightening(40, 0.01)
    want = truth(frames)
    image, _ = rendered(frames[:5], method="flow", flow="dis", exposure=TimeSpec(40, "f"))
    held, _ = rendered(frames[:5], method="mean")
    assert score(image, want) > score(held, want) + 8
    lut = colour.decode_lut("srgb").astype(np.float32)
    assert extrapolate.brightness_trend([lut[f] for f in frames[:5]]) is not None
    flicker = [lut[f] for f in brightening(5, 0.01, flicker=True)]
    assert extrapolate.brightness_trend(flicker) is None
    fireworks = [lut[f] for f in brightening(5, 0.2)]  # 20 % a frame: content, not light
    assert extrapolate.brightness_trend(fireworks) is None


def test_exposure_shorter_than_the_clip_selects_a_window():
    frames = drifting(20)
    _, result = rendered(frames, method="flow", flow="dis", exposure=TimeSpec(6, "f"))
    assert (result.first_frame, result.last_frame, result.frames_used) == (0, 5, 6)
    _, stacked = rendered(frames, method="mean", exposure=TimeSpec(6, "f"))
    assert stacked.frames_used == 6


def test_fewer_than_three_frames_extrapolate_as_stationary():
    frames = drifting(2)
    image, result = rendered(frames, method="flow", flow="dis", exposure=TimeSpec(10, "f"))
    assert result.details.flow.steady == 0.0 and np.isfinite(image).all()


def test_samples_follow_the_motion():
    still = np.zeros((2, 50, 50), np.float32)
    assert interpolate.samples_for(still, 1) == 1
    assert interpolate.samples_for(still, 8) == 8
    moving = np.full((2, 50, 50), 3.0, np.float32)  # 4.2 px per period
    assert interpolate.samples_for(moving, 1) == 5
    huge = np.full((2, 50, 50), 500.0, np.float32)
    assert interpolate.samples_for(huge, 1) == interpolate.MAX_SAMPLES_PER_PAIR


def test_cli_auto_says_what_it_chose_and_why(tmp_path):
    from lexp import synthetic

    # (A textured square's copies show in a mean; a smooth texture's would not.)
    moving = synthetic.write_video(tmp_path / "moving.mp4",
                                   synthetic.moving_square(96, 64, frames=12, velocity=(5, 0)),
                                   fps=10)
    still = synthetic.write_video(tmp_path / "still.mp4", iter([drifting(1)[0]] * 12), fps=10)
    env = {"LEXP_CACHE_DIR": str(tmp_path / "cache")}
    proc = run_lexp("render", str(moving), str(still), "-o", f"{tmp_path}/out/", "--json",
                    env=env)
    assert proc.returncode == 0, proc.stderr
    results = {json.loads(line)["input"].rsplit("/", 1)[1]: json.loads(line)
               for line in proc.stdout.decode().splitlines()}
    assert results["moving.mp4"]["method"] == "flow"
    assert "stacked frames would show separate copies" in results["moving.mp4"]["details"]["auto"]
    assert results["still.mp4"]["method"] == "mean"
    assert "nothing moves" in results["still.mp4"]["details"]["auto"]
    assert "(auto: stacked frames would show separate copies of what moves)" in proc.stderr
    settings = stills.read_settings(results["moving.mp4"]["output"])
    assert settings["method"] == "flow" and settings["method_details"]["flow"] == "dis-medium"

    # Longer than the clip: auto extrapolates; a second run reads every flow from the cache
    # and gives the same image.
    args = ("render", str(moving), "-o", str(tmp_path / "long.png"), "--exposure", "3s",
            "--json", "--overwrite")
    first = json.loads(run_lexp(*args, env=env).stdout)
    # The flow render extrapolates, refined by the generator where its checkpoint earned it.
    from lexp import checkpoint

    earned = checkpoint.measured(checkpoint.resolve(None)).earned()
    assert first["method"] == ("learned" if earned else "flow")
    assert first["details"]["extrapolated_frames"] == 18
    image = cv2.imread(str(tmp_path / "long.png"))
    second = json.loads(run_lexp(*args, env=env).stdout)
    assert second["details"]["cache_misses"] == 0
    assert np.array_equal(image, cv2.imread(str(tmp_path / "long.png")))


@pytest.mark.parametrize("value", ["0", "-2s", "abc"])
def test_bad_exposure_is_a_usage_error(clips, tmp_path, value):
    proc = run_lexp("render", str(clips["square"]), "-o", str(tmp_path / "x.jpg"),
                    f"--exposure={value}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.jpg").exists()


def test_the_exposure_is_centred_on_the_frames():
    # Each frame stands for the period centred on it, so the render of a dense clip is the
    # mean of its frames even where the motion needs several instants per period: here
    # 3 px per frame (3 instants) while the light rises steadily. A sum in which every
    # instant stood for the time after it would be a third of a period late: brighter,
    # and the texture a pixel further on.
    lut = colour.decode_lut("srgb")
    frames = [stills.quantise(colour.encode(lut[f] * (0.4 + 0.05 * t), "srgb"), 8)
              for t, f in enumerate(drifting(13, velocity=3.0))]
    image, result = rendered(frames, method="flow", flow="dis")
    assert result.details.flow.samples >= 12 * 3
    want = truth(frames)
    assert abs(float(image.mean()) - float(want.mean())) < 1e-3
    assert score(image, want) > 50  # (a late sum: 44 dB, and 0.005 too bright)


def circling(frames: int, radius: float = 10.0, period: int = 48) -> list[np.ndarray]:
    """A smooth texture carried round a circle of ``radius`` px once every ``period``
    frames: a camera wandering in a loop."""
    big = texture(H * 3, W * 3)
    out = []
    for t in range(frames):
        angle = 2 * math.pi * t / period
        m = np.float32([[1, 0, radius * math.cos(angle) - W],
                        [0, 1, radius * math.sin(angle) - H]])
        out.append(cv2.warpAffine(big, m, (W, H), flags=cv2.INTER_CUBIC,
                                  borderMode=cv2.BORDER_WRAP))
    return out


def test_a_circling_camera_draws_arcs_not_chords(monkeypatch):
    """Every 8th frame of a loop is a hexagon of key positions; the shutter saw the
    circle. Paths bent by the neighbouring intervals follow it, straight ones cut it."""
    frames = circling(57)
    reference = truth(frames)
    curved = score(rendered(frames, method="flow", window=Window(stride=8))[0], reference)
    monkeypatch.setattr(flow_render, "path_bends", lambda *args, **kwargs: None)
    straight = score(rendered(frames, method="flow", window=Window(stride=8))[0], reference)
    assert curved > straight + 4.0, (curved, straight)  # measured: 47.6 against 39.5


@pytest.mark.parametrize("before_gap,after_gap", [(1.0, 1.0), (2.0, 0.5)])
def test_paths_continuing_their_neighbours_are_straight(before_gap, after_gap):
    """Steady motion, however unevenly sampled, bends nowhere; a turn bends the path."""
    def field(x: float, y: float) -> np.ndarray:  # (2, H, W) flow, the same everywhere
        return np.broadcast_to(np.float32([x, y])[:, None, None], (2, H, W)).copy()

    gap = 2.0  # frame periods; the motion is (3, -1) px per period
    forward = field(3 * gap, -gap)
    bends = interpolate.path_bends(forward, -forward, gap,
                                   (field(-3 * before_gap, before_gap), before_gap),
                                   (field(3 * after_gap, -after_gap), after_gap))
    for bend in bends:
        np.testing.assert_allclose(bend, 0, atol=1e-5)
    a_start, a_end, b_start, b_end = interpolate.path_bends(forward, -forward, gap, None,
                                                            (field(0, 3), 1.0))
    assert np.allclose(a_start, 0) and np.allclose(b_end, 0)  # no frame before A
    assert a_end[1].mean() > 0.5 and b_start[1].mean() < -0.5  # both lean into the turn
