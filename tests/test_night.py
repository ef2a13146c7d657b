"""Night skies as astrophotographers make them (issue 43): darks, flats, hot pixels and
rejected frames, each measured against a synthetic night's clean truth
(lexp.synthetic.NightSky: stars rotating about a pole, a fixed horizon, a dark signal
with 3 hot pixels, vignetting, noise, a plane in one frame, two cloud-lit frames)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import lexp
from lexp import synthetic
from tests.conftest import assert_clean_failure, run_lexp


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    sky = synthetic.NightSky()
    root = sky.write(tmp_path_factory.mktemp("night"))
    clear = [k for k in range(sky.frames) if k not in sky.CLOUDY_FRAMES]
    return {"root": root, "sky": sky, "clear": clear,
            "mean": np.mean([sky.truth(k) for k in clear], axis=0),
            "max": np.max([sky.truth(k) for k in clear], axis=0)}


def render(night, method="mean", **options):
    root = night["root"]
    for key in ("dark", "flat"):
        if options.get(key):
            options[key] = str(root / options[key])
    return lexp.render(root / "lights", method=method, align=False, cache=False,
                       **({"gap_fill": False} if method == "max" else {}), **options)


def without_hot(sky, mask):
    for y, x in sky.HOT:
        mask[max(0, y - 1):y + 2, max(0, x - 1):x + 2] = False
    return mask


def test_rejecting_bright_frames_drops_the_two_cloud_lit_ones(night):
    image = render(night, reject="bright", dark="darks", flat="flats")
    rejected = image.details.calibration.rejected
    assert [r["frame"] for r in rejected] == list(night["sky"].CLOUDY_FRAMES)
    assert rejected[0]["name"] == "lights_012.png" and rejected[0]["why"].startswith("bright")
    kept = render(night, dark="darks", flat="flats")
    sky = night["sky"]
    everywhere = without_hot(sky, np.ones(night["mean"].shape[:2], bool))
    before = np.abs(kept.linear - night["mean"])[everywhere].mean()
    after = np.abs(image.linear - night["mean"])[everywhere].mean()
    assert after < before / 2 and after < 0.0025, (before, after)


def test_the_dark_takes_the_sensors_signal_out_of_the_sky(night):
    """The sky's background (away from stars) against the truth under the same
    vignetting: the dark signal (~0.01 of white) is gone."""
    sky = night["sky"]
    background = without_hot(sky, (night["max"].max(axis=2) < 0.02))
    expected = (night["mean"] * sky.vignetting)[background]
    before = render(night, reject="bright").linear[background]
    after = render(night, reject="bright", dark="darks").linear[background]
    error_before, error_after = np.abs(before - expected).mean(), np.abs(after - expected).mean()
    assert error_before > 0.008 and error_after < error_before / 5, (error_before, error_after)


def test_the_flat_takes_the_vignetting_out(night):
    """Where vignetting darkened the frame most (its outer ring, under 75 % of the
    centre's light), the calibrated light over the truth's is 1 with the flat and the
    vignetting's share without it."""
    sky = night["sky"]
    ring = without_hot(sky, (sky.vignetting[..., 0] < 0.75) & (night["mean"].min(axis=2) >
                                                                0.004))
    truth = night["mean"][ring]
    dark_only = np.median(render(night, reject="bright", dark="darks").linear[ring] / truth)
    flattened = np.median(render(night, reject="bright", dark="darks",
                                 flat="flats").linear[ring] / truth)
    assert dark_only == pytest.approx(np.median(sky.vignetting[ring]), abs=0.05)
    assert flattened == pytest.approx(1.0, abs=0.05), (dark_only, flattened)


def test_hot_pixels_are_found_without_darks_and_repaired(night):
    """A lighten blend keeps a hot pixel at its brightest in every frame: --hot-pixels
    finds the 3 (a pixel above all its neighbours in most frames, where stars move on)
    and gives them their neighbours' light; the trails stay whole."""
    sky = night["sky"]
    plain = render(night, "max", reject="bright")
    repaired = render(night, "max", reject="bright", hot_pixels=True)
    assert repaired.details.calibration.hot_pixels == 3
    for y, x in sky.HOT:
        assert plain.linear[y, x].max() > 0.4  # before: a bright dot (a streak if aligned)
        assert abs(repaired.linear[y, x] - night["max"][y, x] * sky.vignetting[y, x]).max() \
            < 0.03
    stars = night["max"].max(axis=2) > 0.2
    kept = repaired.linear[stars].max(axis=1) / (night["max"] * sky.vignetting)[stars].max(axis=1)
    assert 0.9 < np.median(kept) < 1.15  # the star trails are as bright as in the truth


def test_a_planes_streak_is_masked_and_the_star_trails_kept(night):
    """The plane crosses the sky in frame 7 only: masked there (and only there), its
    line in the lighten blend is the sky's, while every star trail keeps its light."""
    import cv2

    sky = night["sky"]
    plain = render(night, "max", reject="bright", dark="darks", flat="flats")
    clean = render(night, "max", reject="bright,streaks", dark="darks", flat="flats")
    assert [m["frame"] for m in clean.details.calibration.masked] == [sky.PLANE_FRAME]
    line = np.zeros(night["max"].shape[:2], np.uint8)
    cv2.line(line, (0, int(sky.height * 0.15)), (sky.width - 1, int(sky.height * 0.55)), 1, 1)
    on_line = (line > 0) & ~sky.ground & (night["max"].max(axis=2) < 0.05)  # off the stars
    assert plain.linear[on_line].max(axis=1).mean() > 0.5
    assert np.abs(clean.linear[on_line] - night["max"][on_line]).max(axis=1).mean() < 0.02
    stars = (night["max"].max(axis=2) > 0.2) & (line == 0)
    kept = clean.linear[stars].max(axis=1) / night["max"][stars].max(axis=1)
    assert np.percentile(kept, 5) > 0.85  # every trail whole, none masked away


def test_the_ground_is_the_frames_median_under_the_star_trails(night):
    """--keep-sharp median: where nothing moves (the ground), the lighten blend's noise
    (the brightest of 22 noisy values) gives way to the frames' median; the trails
    stay whole."""
    sky = night["sky"]
    common = dict(reject="bright", dark="darks", flat="flats", hot_pixels=True)
    plain = render(night, "max", **common)
    grounded = render(night, "max", keep_sharp="median", **common)
    ground = sky.ground.copy()
    ground[-3:] = ground[:, :3] = ground[:, -3:] = False  # away from the border
    truth = night["mean"][ground]
    before = np.abs(plain.linear[ground] - truth).mean()
    after = np.abs(grounded.linear[ground] - truth).mean()
    assert after < before / 2, (before, after)
    stars = night["max"].max(axis=2) > 0.2
    kept = grounded.linear[stars].max(axis=1) / night["max"][stars].max(axis=1)
    assert np.percentile(kept, 5) > 0.85


def test_the_whole_night_calibrated_through_the_cli_says_what_it_did(night, tmp_path):
    root = night["root"]
    out = tmp_path / "trails.png"
    proc = run_lexp("render", str(root / "lights"), "-o", str(out), "-m", "max",
                    "--no-gap-fill", "--dark", str(root / "darks"), "--flat",
                    str(root / "flats"), "--hot-pixels", "--reject", "bright,blur,streaks",
                    "--json")
    assert proc.returncode == 0, proc.stderr
    calibration = json.loads(proc.stdout)["details"]["calibration"]
    assert calibration["dark_frames"] == 6 and calibration["flat_frames"] == 6
    assert [r["frame"] for r in calibration["rejected"]] == [12, 13]
    assert [m["name"] for m in calibration["masked"]] == ["lights_007.png"]
    assert "dark subtracted, flat divided" in proc.stderr and "2 frames rejected" in proc.stderr


def test_a_cosmic_ray_in_one_dark_does_not_mark_every_light(night, tmp_path):
    """Each pixel's brightest and darkest darks are left out of the master: a hit of 0.9
    in one of six darks would otherwise take 0.15 off that pixel in every light."""
    sky = night["sky"]
    (tmp_path / "darks").mkdir()
    for k in range(6):
        dark = sky.dark_frame(k)
        if k == 2:
            dark[60, 80] = 0.9
        synthetic.write_png16(tmp_path / "darks" / f"d{k}.png", dark)
    clean = render(night, reject="bright", dark="darks")
    hit = render(night, reject="bright", dark=str(tmp_path / "darks"))
    assert np.abs(hit.linear[60, 80] - clean.linear[60, 80]).max() < 0.01  # noise apart


def test_masters_are_made_once_and_read_from_the_cache(night, tmp_path, monkeypatch):
    from lexp.renderers import masters

    monkeypatch.setenv("LEXP_CACHE_DIR", str(tmp_path / "cache"))
    first = render(night, dark="darks", flat="flats")
    assert len(list((tmp_path / "cache" / "masters").glob("*.npz"))) == 2
    made = []
    monkeypatch.setattr(masters, "_save_master", lambda *args: made.append(args))
    again = render(night, dark="darks", flat="flats")
    assert made == [] and np.array_equal(first.linear, again.linear)


def test_calibration_frames_of_another_size_or_a_dead_flat_are_refused(night, tmp_path):
    root = night["root"]
    (tmp_path / "small").mkdir()
    synthetic.write_png16(tmp_path / "small" / "d.png", np.zeros((60, 80, 3)))
    proc = run_lexp("render", str(root / "lights"), "-o", str(tmp_path / "o.jpg"), "-m",
                    "mean", "--dark", str(tmp_path / "small"))
    assert_clean_failure(proc, 2)
    assert "are 80x60, the lights" in proc.stderr and "160x120" in proc.stderr
    (tmp_path / "dead").mkdir()
    flat = np.full((120, 160, 3), 0.5)
    flat[50:60, 50:60] = 0
    synthetic.write_png16(tmp_path / "dead" / "f.png", flat)
    proc = run_lexp("render", str(root / "lights"), "-o", str(tmp_path / "o.jpg"), "-m",
                    "mean", "--flat", str(tmp_path / "dead"))
    assert_clean_failure(proc, 1)
    assert "100 pixels at zero" in proc.stderr
    proc = run_lexp("render", str(root / "lights"), "-o", str(tmp_path / "o.jpg"), "--dark",
                    str(root / "lights"))
    assert_clean_failure(proc, 2)
    assert "names the lights themselves" in proc.stderr
    proc = run_lexp("render", str(root / "lights"), "-o", str(tmp_path / "o.jpg"), "--reject",
                    "planes")
    assert_clean_failure(proc, 2)
    assert not (tmp_path / "o.jpg").exists()


def test_darks_longer_than_the_lights_are_said_and_not_scaled(tmp_path):
    """EXIF says the darks were 60 s, the lights 30 s: a warning says the dark was
    subtracted as it is."""
    from PIL import Image

    def shoot(folder, seconds, level):
        folder.mkdir()
        exif = Image.Exif()
        exif.get_ifd(0x8769)[33434] = seconds
        for k in range(3):
            Image.fromarray(np.full((32, 48, 3), level + 10 * k, np.uint8)).save(
                folder / f"f{k}.jpg", exif=exif.tobytes(), quality=95)

    shoot(tmp_path / "lights", 30.0, 80)
    shoot(tmp_path / "darks", 60.0, 10)
    image = lexp.render(tmp_path / "lights", method="mean", dark=str(tmp_path / "darks"),
                        align=False, cache=False)
    assert any("exposed 60 s, the lights 30 s" in w and "not scaled" in w
               for w in image.warnings)


@pytest.mark.slow
def test_a_real_milky_way_time_lapse_keeps_its_trails(tmp_path):
    """../shared/clips' Milky Way time-lapse (a tripod, a tree, a glow on the horizon;
    skipped without it): calibrated with every rule, its star trails keep their light,
    few pixels are taken for hot ones and few frames for streaked ones. (Its slow plane,
    short blinking segments in many frames, is not a one-frame streak: it stays.)"""
    from tests.conftest import SHARED_CLIPS

    clip = SHARED_CLIPS / "milkyway_timelapse_tree_1280w.mp4"
    if not clip.exists():
        pytest.skip("../shared/clips is absent")
    plain = lexp.render(clip, method="max", gap_fill=False, max_frames=60, align=False,
                        cache=False)
    done = lexp.render(clip, method="max", gap_fill=False, max_frames=60, align=False,
                       cache=False, hot_pixels=True, reject="bright,blur,streaks",
                       keep_sharp="median")
    calibration = done.details.calibration
    h, w = done.linear.shape[:2]
    assert calibration.hot_pixels < 1e-4 * h * w
    assert len(calibration.masked) <= 6 and len(calibration.rejected) <= 6
    assert np.percentile(done.linear, 99.9) > 0.95 * np.percentile(plain.linear, 99.9)
