"""Photographer's controls: alignment, keep-sharp, trail video, timestamps, deflicker,
motion guidance. Synthetic clips with known answers."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from lexp import colour, renderers
from lexp.config import RenderConfig, Window
from lexp.media import MemoryClip
from lexp.renderers.extrapolate import guide_velocity

from .conftest import assert_clean_failure, decode_rgb, run_lexp

LUT = colour.decode_lut("srgb")


def texture(h: int, w: int, seed: int = 0, scale: float = 3.0) -> np.ndarray:
    """Smooth random colour texture, float32 H×W×3 in [0, 1] (linear light)."""
    rng = np.random.default_rng(seed)
    noise = rng.random((h, w, 3)).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), scale)


def encode8(linear: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(colour.encode(linear, "srgb") * 255), 0, 255).astype(np.uint8)


def stacked(frames, times=None, **config) -> np.ndarray:
    """The rendered image, encoded, float in [0, 1]."""
    cfg = RenderConfig(**{"method": "mean", **config})
    result = renderers.render_clip(MemoryClip(frames, 10.0, times=times), cfg)
    return renderers.finish(result.linear, cfg), result


# ------------------------------------------------------------------ timestamps


def timelapse(count: int = 24) -> list[np.ndarray]:
    """Light that rises steadily over a scene with a slow gradient (linear light)."""
    base = 0.15 + 0.5 * texture(48, 64, seed=3, scale=6)
    return [encode8(base * (0.4 + 0.6 * k / (count - 1))) for k in range(count)]


DROPPED = {2, 3, 4, 5, 6, 8, 9, 15}  # uneven: most are missing early in the sequence


def write_exif_frames(folder: Path, frames, keep, interval_s: float = 10.0) -> Path:
    from datetime import datetime, timedelta

    from PIL import Image

    folder.mkdir()
    start = datetime(2026, 11, 21, 6, 0, 0)
    for k in keep:
        exif = Image.Exif()
        stamp = start + timedelta(seconds=k * interval_s)
        exif.get_ifd(0x8769)[36867] = stamp.strftime("%Y:%m:%d %H:%M:%S")
        Image.fromarray(frames[k]).save(folder / f"img_{k:04d}.png", exif=exif.tobytes())
    return folder


def test_timestamps_weigh_frames_by_the_time_they_cover(tmp_path):
    frames = timelapse()
    keep = [k for k in range(len(frames)) if k not in DROPPED]
    even = write_exif_frames(tmp_path / "even", frames, range(len(frames)))
    sparse = write_exif_frames(tmp_path / "sparse", frames, keep)
    outs = {}
    for name, folder, extra in (("even", even, []), ("timed", sparse, []),
                                ("untimed", sparse, ["--no-timestamps"])):
        out = tmp_path / f"{name}.png"
        proc = run_lexp("render", str(folder), "-o", str(out), "-m", "mean",
                        "--bit-depth", "16", *extra)
        assert proc.returncode == 0, proc.stderr
        outs[name] = decode_rgb(out).astype(np.float64) / 65535
    timed = np.abs(outs["timed"] - outs["even"]).max()
    untimed = np.abs(outs["untimed"] - outs["even"]).max()
    assert timed <= 0.5 / 255, timed * 255
    assert untimed > 4 * timed and untimed > 2 / 255, (untimed * 255, timed * 255)


def test_flow_uses_timestamps_for_the_gaps():
    frames = timelapse(12)
    keep = [0, 1, 2, 3, 4, 5, 11]  # the second half of the light ramp is one frame
    sparse = [frames[k] for k in keep]
    truth, _ = stacked(frames)
    timed, result = stacked(sparse, times=[float(k) for k in keep], method="flow",
                            flow="dis-ultrafast")
    untimed, _ = stacked(sparse, method="flow", flow="dis-ultrafast")
    assert np.abs(timed - truth).max() < np.abs(untimed - truth).max() / 4
    assert result.first_frame == 0 and result.last_frame == 6


def test_video_presentation_times_reach_the_renderer(tmp_path):
    from lexp.media import ffmpeg_exe, open_video

    path = tmp_path / "vfr.mp4"
    import subprocess

    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=96x64:rate=10", "-t", "2", "-vf",
                    r"select='not(between(n\,3\,6))'", "-fps_mode", "passthrough",
                    "-pix_fmt", "yuv420p", str(path)], check=True)
    with open_video(str(path), "vfr") as clip:
        indices = [i for i, _ in clip.frames()]
        times = [clip.frame_time(i) * 10 / clip.info.fps for i in indices]
    assert times[:5] == pytest.approx([0, 1, 2, 7, 8], abs=0.01)


def test_unusable_exif_times_fall_back_with_a_warning(tmp_path):
    frames = timelapse(6)
    folder = write_exif_frames(tmp_path / "f", frames, range(6), interval_s=0.0)
    out = tmp_path / "o.png"
    proc = run_lexp("render", str(folder), "-o", str(out), "-m", "mean")
    assert proc.returncode == 0 and out.exists()
    assert "EXIF capture times do not increase" in proc.stderr


# ------------------------------------------------------------------ deflicker


def flickering(count: int = 40, seed: int = 1):
    """(steady frames, flickering frames): a scene under 0.45 linear (so +1 stop never
    clips) with a drifting bright spot; 30% of the frames jump ±1 stop."""
    rng = np.random.default_rng(seed)
    base = 0.05 + 0.4 * texture(48, 64, seed=seed, scale=4)
    steady, flicker = [], []
    for k in range(count):
        scene = base.copy()
        cv2.circle(scene, (8 + k, 24), 5, (0.45, 0.4, 0.3), -1)
        stops = rng.choice([-1.0, 1.0]) if rng.random() < 0.3 else 0.0
        steady.append(encode8(scene))
        flicker.append(encode8(scene * 2 ** stops))
    return steady, flicker


def test_deflicker_matches_the_steady_clip():
    steady, flicker = flickering()
    truth, _ = stacked(steady)
    fixed, result = stacked(flicker, deflicker=True)
    raw, _ = stacked(flicker)
    assert np.abs(fixed - truth).max() <= 1 / 255, np.abs(fixed - truth).max() * 255
    assert np.abs(raw - truth).max() > 5 / 255
    assert result.details.deflicker.corrected_frames >= 8


@pytest.mark.parametrize("method", ["max", "median", "flow"])
def test_deflicker_works_with_every_method(method):
    steady, flicker = flickering(16)
    truth, _ = stacked(steady, method=method)
    fixed, _ = stacked(flicker, method=method, deflicker=True)
    raw, _ = stacked(flicker, method=method)
    assert np.abs(fixed - truth).mean() < np.abs(raw - truth).mean() / 4


# ------------------------------------------------------------------ alignment


def shaky(count: int = 12, seed: int = 0, junk_at: int | None = None):
    """A textured scene seen by a shaking camera (known similarity per frame), with
    a small object moving across it. Returns (frames, reference scene crop)."""
    rng = np.random.default_rng(seed)
    pattern = texture(200, 260, seed=seed, scale=2.0)
    pattern = (pattern - pattern.min()) / (pattern.max() - pattern.min())  # full contrast
    scene = encode8(0.02 + 0.9 * pattern ** 2)
    frames = []
    for k in range(count):
        dx, dy = rng.uniform(-6, 6, 2) if k else (0, 0)
        angle = rng.uniform(-1.5, 1.5) if k else 0
        m = cv2.getRotationMatrix2D((130, 100), angle, 1.0)
        m[:, 2] += (dx, dy)
        view = cv2.warpAffine(scene, m, (260, 200), borderMode=cv2.BORDER_REFLECT)
        view = np.ascontiguousarray(view[20:180, 20:240])
        cv2.circle(view, (20 + 12 * k, 80), 6, (255, 240, 0), -1)
        if k == junk_at:
            view = np.full_like(view, 128)
        frames.append(view)
    return frames


def sharpness(image: np.ndarray) -> float:
    grey = cv2.cvtColor((image * 255).astype(np.float32), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def test_align_makes_a_shaky_clip_sharp_and_crops_to_the_common_area():
    frames = shaky()
    plain, _ = stacked(frames)
    aligned, result = stacked(frames, align="similarity")
    info = result.details.align.to_dict()
    assert info["aligned"] == len(frames) and not info["skipped"]
    x, y, w, h = info["crop"]
    assert aligned.shape == (h, w, 3) and w < 220 and h < 160 and w > 150 and h > 100
    first = renderers.finish(LUT[frames[0]], RenderConfig())[y:y + h, x:x + w]
    # Against the reference frame, the aligned mean is close away from the mover.
    still = np.ones((h, w), bool)
    still[max(0, 70 - y):max(0, 92 - y)] = False
    err_aligned = np.abs(aligned - first)[still].mean()
    err_plain = np.abs(plain[y:y + h, x:x + w] - first)[still].mean()
    assert err_aligned < err_plain / 3, (err_aligned, err_plain)
    assert sharpness(aligned) > 1.4 * sharpness(plain[y:y + h, x:x + w])


def test_align_fill_keeps_the_full_frame():
    frames = shaky(6)
    filled, result = stacked(frames, align="homography", align_border="fill")
    assert filled.shape == frames[0].shape and result.details.align.crop is None


def test_frames_that_cannot_be_registered_are_skipped_and_reported():
    frames = shaky(10, junk_at=4)
    _, result = stacked(frames, align="similarity")
    assert result.details.align.skipped == [4]
    assert result.frames_used == 9
    assert any("skipped 1 frame" in w and ": 4" in w for w in result.warnings)


def test_align_on_the_command_line(tmp_path):
    from lexp import synthetic

    video = synthetic.write_video(tmp_path / "shaky.mp4", iter(shaky(8)), fps=10)
    out = tmp_path / "steady.png"
    proc = run_lexp("render", str(video), "-o", str(out), "-m", "mean", "--align", "--json")
    assert proc.returncode == 0, proc.stderr
    import json

    details = json.loads(proc.stdout)["details"]["align"]
    assert details["aligned"] == 8 and decode_rgb(out).shape[:2] == tuple(details["crop"][3:1:-1])


def test_a_featureless_reference_is_a_clear_error(tmp_path):
    from lexp import synthetic

    flat = [np.full((64, 96, 3), 90, np.uint8)] * 4
    video = synthetic.write_video(tmp_path / "flat.mp4", iter(flat), fps=10)
    proc = run_lexp("render", str(video), "-o", str(tmp_path / "o.jpg"), "--align")
    assert_clean_failure(proc)
    assert "too few features" in proc.stderr and not (tmp_path / "o.jpg").exists()


# ------------------------------------------------------------------ keep-sharp


def waterfall_like(count: int = 16):
    """A static textured rock face with a band of "water" whose texture changes every
    frame (what flow cannot track) and a block sliding across (what it can)."""
    rng = np.random.default_rng(5)
    rock = 0.05 + 0.6 * texture(72, 96, seed=7, scale=1.2)
    frames = []
    for k in range(count):
        scene = rock.copy()
        scene[:, 40:56] = 0.3 + 0.5 * rng.random((72, 16, 3)).astype(np.float32)
        scene[55:65, 2 * k:2 * k + 10] = 0.9
        frames.append(encode8(scene))
    return frames


def test_keep_sharp_puts_the_sharp_frame_only_where_nothing_moves():
    frames = waterfall_like()
    blur, _ = stacked(frames)
    kept, result = stacked(frames, keep_sharp="first")
    sharp = renderers.finish(LUT[frames[0]], RenderConfig())
    rock = (slice(5, 45), slice(2, 30))
    water = (slice(10, 45), slice(44, 52))
    assert np.abs(kept[rock] - sharp[rock]).max() < 1 / 255
    assert np.abs(kept[water] - blur[water]).max() < 2 / 255
    assert np.abs(kept[60, 5:20] - blur[60, 5:20]).max() < 2 / 255  # the block's trail
    assert result.details.keep_sharp.frame == 0


def test_a_user_mask_forces_the_sharp_frame(tmp_path):
    frames = waterfall_like()
    mask = tmp_path / "mask.png"
    cv2.imwrite(str(mask), np.full((36, 48), 255, np.uint8))  # half size: resized
    kept, _ = stacked(frames, keep_sharp="last", still_below=0.0, sharp_mask=str(mask))
    sharp = renderers.finish(LUT[frames[-1]], RenderConfig())
    assert np.abs(kept - sharp).max() < 1 / 255


def test_rear_curtain_is_the_blur_plus_a_half_strength_flash():
    frames = waterfall_like()
    blur_linear = renderers.render_clip(MemoryClip(frames, 10.0), RenderConfig()).linear
    result = renderers.render_clip(MemoryClip(frames, 10.0),
                                RenderConfig(method="mean", rear_curtain=True))
    expected = 0.5 * (blur_linear + LUT[frames[-1]])
    water = (slice(10, 45), slice(44, 52))
    assert np.abs(result.linear[water] - expected[water]).max() < 1e-4


def test_keep_sharp_errors(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for k, frame in enumerate(waterfall_like(4)):
        cv2.imwrite(str(frames / f"{k}.png"), frame)
    out = str(tmp_path / "o.jpg")
    assert_clean_failure(run_lexp("render", str(frames), "-o", out, "--still-below", "2"), 2)
    assert_clean_failure(run_lexp("render", str(frames), "-o", out, "--keep-sharp", "first",
                                  "--sharp-mask", str(tmp_path / "none.png")), 2)
    wide = tmp_path / "wide.png"
    cv2.imwrite(str(wide), np.zeros((10, 80), np.uint8))
    proc = run_lexp("render", str(frames), "-o", out, "--keep-sharp", "first",
                    "--sharp-mask", str(wide))
    assert_clean_failure(proc)
    assert "aspect ratio" in proc.stderr
    proc = run_lexp("render", str(frames), "-o", out, "--keep-sharp", "90f")
    assert_clean_failure(proc)
    assert "no such frame" in proc.stderr
    assert not Path(out).exists()


# ------------------------------------------------------------------ trail video


def video_frames(path: Path) -> list[np.ndarray]:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    return [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader]


def test_trail_video_builds_up_to_the_image(tmp_path, clips):
    out, video = tmp_path / "trails.png", tmp_path / "trails.mp4"
    proc = run_lexp("render", str(clips["square"]), "-o", str(out), "-m", "max",
                    "--video", str(video))
    assert proc.returncode == 0, proc.stderr
    frames = video_frames(video)
    assert len(frames) == 12
    image = decode_rgb(out).astype(float)
    # H.264 at crf 18, chroma at half resolution on this clip's 4-pixel colour cells.
    assert np.abs(frames[-1].astype(float) - image).mean() < 5
    # It builds up: each frame is at least as bright as the one before (max).
    means = [f.mean() for f in frames]
    assert means[-1] > means[0] + 1


def test_comet_video_forgets_old_light(tmp_path, clips):
    build, comet = tmp_path / "b.mp4", tmp_path / "c.mp4"
    for video, extra in ((build, []), (comet, ["--comet", "1f"])):
        proc = run_lexp("render", str(clips["square"]), "-o", str(video.with_suffix(".png")),
                        "-m", "max", "--video", str(video), *extra)
        assert proc.returncode == 0, proc.stderr
    b, c = video_frames(build)[-1].astype(float), video_frames(comet)[-1].astype(float)
    assert b.mean() > c.mean() + 1


def test_trail_video_of_an_aligned_render_is_cropped_like_the_image(tmp_path):
    from lexp import synthetic

    clip = synthetic.write_video(tmp_path / "shaky.mp4", iter(shaky(6)), fps=10)
    out, video = tmp_path / "o.png", tmp_path / "o.mp4"
    proc = run_lexp("render", str(clip), "-o", str(out), "-m", "mean", "--align",
                    "--video", str(video))
    assert proc.returncode == 0, proc.stderr
    h, w = decode_rgb(out).shape[:2]
    frame = video_frames(video)[-1]
    assert frame.shape[:2] == (h - h % 2, w - w % 2)


def test_trail_video_refusals(tmp_path, clips):
    square = str(clips["square"])
    out = str(tmp_path / "o.jpg")
    assert_clean_failure(run_lexp("render", square, "-o", out, "--comet", "1s"), 2)
    assert_clean_failure(run_lexp("render", square, "-o", out, "-m", "median",
                                  "--video", str(tmp_path / "v.mp4")), 2)
    assert_clean_failure(run_lexp("render", square, "-o", out, "--video",
                                  str(tmp_path / "v.gif.txt")), 2)
    existing = tmp_path / "there.mp4"
    existing.write_bytes(b"keep me")
    proc = run_lexp("render", square, "-o", out, "--video", str(existing))
    assert_clean_failure(proc)
    assert existing.read_bytes() == b"keep me" and not Path(out).exists()
    assert not list(tmp_path.glob(".lexp-*"))


def test_flow_trail_video_covers_the_extrapolation(tmp_path, clips):
    video = tmp_path / "v.mp4"
    proc = run_lexp("render", str(clips["street"]), "-o", str(tmp_path / "o.jpg"),
                    "-m", "flow", "--end", "5f", "--exposure", "12f", "--video", str(video))
    assert proc.returncode == 0, proc.stderr
    assert len(video_frames(video)) == 4 + 1 + 7  # 4 intervals, the last frame, 7 periods


# ------------------------------------------------------------------ motion guidance


def test_guide_velocity_snaps_or_overrides_the_direction():
    v = np.zeros((2, 1, 3), np.float32)
    v[:, 0, 0] = (3.0, 0.4)  # mostly right
    v[:, 0, 1] = (-0.2, -2.0)  # mostly up (image y is down)
    v[:, 0, 2] = (1.0, 1.0)  # diagonal down-right
    four = guide_velocity(v, "4way")
    assert np.allclose(four[:, 0, 0], (math.hypot(3, 0.4), 0), atol=1e-5)
    assert np.allclose(four[:, 0, 1], (0, -math.hypot(0.2, 2)), atol=1e-5)
    eight = guide_velocity(v, "8way")
    assert np.allclose(eight[:, 0, 2], (1, 1), atol=1e-5)
    down = guide_velocity(v, "270")
    assert np.allclose(down[0], 0, atol=1e-5)
    assert np.allclose(down[1], np.hypot(v[0], v[1]), atol=1e-5)
    assert guide_velocity(v, "flow") is v


def test_motion_guide_changes_only_the_extrapolated_blur():
    from .test_flow_render import drifting

    frames = drifting(5, velocity=2.0)
    free, _ = stacked(frames, method="flow", exposure=None)
    guided, _ = stacked(frames, method="flow", motion_guide="90")
    assert np.abs(free - guided).max() < 1e-6  # no extrapolation: nothing to guide
    from lexp.config import TimeSpec

    spec = TimeSpec(20.0, "f")
    a, _ = stacked(frames, method="flow", exposure=spec)
    b, _ = stacked(frames, method="flow", exposure=spec, motion_guide="90")
    assert np.abs(a - b).mean() > 1 / 255


def test_a_bad_motion_guide_is_a_usage_error(clips, tmp_path):
    proc = run_lexp("render", str(clips["square"]), "-o", str(tmp_path / "o.jpg"),
                    "--motion-guide", "sideways")
    assert_clean_failure(proc, 2)
    assert "4way" in proc.stderr


def test_window_stride_weights_stay_even():
    frames = timelapse(9)
    cfg = dict(window=Window(stride=2))
    strided, _ = stacked(frames, **cfg)
    picked, _ = stacked(frames[::2])
    assert np.abs(strided - picked).max() < 1e-6
