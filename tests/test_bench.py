import csv
import io
import json
import math

import cv2
import numpy as np
import pytest

from lexp import bench, colour, metrics, synthetic
from lexp.media import VideoClip
from tests.conftest import assert_clean_failure, run_lexp


def test_psnr_by_hand():
    ref = np.zeros((2, 2, 3))
    img = ref.copy()
    img[0, 0, 0] = 0.1  # one of 12 values off by 0.1: MSE = 0.01 / 12
    assert metrics.psnr(img, ref) == pytest.approx(10 * math.log10(12 / 0.01))
    mask = np.array([[True, False], [False, False]])  # only that pixel: MSE = 0.01 / 3
    assert metrics.psnr(img, ref, mask) == pytest.approx(10 * math.log10(3 / 0.01))
    assert metrics.psnr(ref, ref) == math.inf
    assert math.isnan(metrics.psnr(img, ref, np.zeros((2, 2), bool)))


def naive_ssim(x, y):
    """SSIM written out the slow, obvious way (explicit window, reflect padding)."""
    radius, sigma = 5, 1.5
    ax = np.arange(-radius, radius + 1)
    g = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma ** 2))
    g /= g.sum()
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    out = []
    for ch in range(3):
        a = np.pad(x[..., ch], radius, mode="symmetric")
        b = np.pad(y[..., ch], radius, mode="symmetric")
        vals = []
        for i in range(radius, x.shape[0] - radius):
            for j in range(radius, x.shape[1] - radius):
                wa = a[i:i + 2 * radius + 1, j:j + 2 * radius + 1]
                wb = b[i:i + 2 * radius + 1, j:j + 2 * radius + 1]
                ma, mb = (g * wa).sum(), (g * wb).sum()
                va = (g * (wa - ma) ** 2).sum()
                vb = (g * (wb - mb) ** 2).sum()
                cov = (g * (wa - ma) * (wb - mb)).sum()
                vals.append(((2 * ma * mb + c1) * (2 * cov + c2)) /
                            ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
        out.append(np.mean(vals))
    return float(np.mean(out))


def test_ssim_matches_an_independent_computation():
    rng = np.random.default_rng(3)
    x = rng.random((24, 28, 3))
    y = np.clip(x * 0.8 + 0.1 + rng.normal(0, 0.05, x.shape), 0, 1)
    assert metrics.ssim(x, y) == pytest.approx(naive_ssim(x, y), abs=1e-6)
    assert metrics.ssim(x, x) == pytest.approx(1.0)


def test_protocols_pick_the_right_frames():
    gap, ext = bench.PROTOCOLS["gap-fill"], bench.PROTOCOLS["extrapolate"]
    assert gap.inputs(57) == [0, 8, 16, 24, 32, 40, 48, 56] and gap.truth_end(300) == 57
    assert gap.inputs(56) is None  # too short: sits gap-fill out
    assert ext.inputs(47) == [0, 1, 2, 3, 4] and ext.truth_end(47) == 47
    assert ext.truth_end(300) == 64


@pytest.fixture(scope="module")
def seventy_frames(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    synthetic.write_video(folder / "street.mp4", synthetic.night_street(160, 90, 70), fps=24)
    return folder


def test_quality_scores_match_an_independent_computation(seventy_frames):
    clip = seventy_frames / "street.mp4"
    methods = bench.resolve_methods("first-frame,mean-8bit,mean")
    report = bench.run_quality([str(clip)], methods, [bench.PROTOCOLS["gap-fill"]])
    got = {s.method: s for s in report.scores}
    # Independently: the other decoder, float64 sums, the formulas above.
    with VideoClip(str(clip), "street") as c:
        frames = [f.astype(np.float64) / 255 for _, f in c.frames(0, 57)]
    truth = colour.encode(np.mean([colour.decode(f, "srgb") for f in frames], axis=0), "srgb")
    picks = frames[0:57:8]
    expected = {
        "first-frame": frames[0],
        "mean-8bit": np.mean(picks, axis=0),
        "mean": colour.encode(np.mean([colour.decode(f, "srgb") for f in picks], axis=0), "srgb"),
    }
    for name, image in expected.items():
        want = 10 * math.log10(1 / np.mean((image - truth) ** 2))
        assert got[name].psnr == pytest.approx(want, abs=0.01), name
    assert got["mean"].psnr > got["first-frame"].psnr


def test_bench_cli_json_csv_and_sheet(seventy_frames, tmp_path):
    sheet = tmp_path / "sheet.png"
    proc = run_lexp("bench", "--quality", str(seventy_frames), "--json", "--sheet", str(sheet))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    summary = {(r["protocol"], r["method"]): r for r in data["quality"]["summary"]}
    assert set(summary) == {(p, m) for p in ("gap-fill", "extrapolate")
                            for m in bench.DEFAULT_METHODS}
    assert summary[("gap-fill", "mean")]["clips"] == 1
    import cv2

    assert cv2.imread(str(sheet)) is not None
    proc = run_lexp("bench", "--quality", str(seventy_frames), "--csv", "--protocol",
                    "extrapolate", "--methods", "mean,max")
    rows = list(csv.DictReader(io.StringIO(proc.stdout.decode())))
    assert [(r["protocol"], r["method"]) for r in rows] == [("extrapolate", "mean"),
                                                          ("extrapolate", "max")]


def test_bench_speed_reports_every_stage_against_the_floor():
    proc = run_lexp("bench", "--speed", "synthetic:64x48x12", "--methods", "mean,max",
                    "--repeats", "1", "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    speed = json.loads(proc.stdout)["speed"]
    stages = {s["stage"]: s for s in speed["stages"]}
    assert stages["floor: ffmpeg decode to rgb24"]["ratio_to_floor"] == pytest.approx(1.0)
    assert {"decode (lexp reader)", "stack mean (frames in memory)", "encode JPEG q95",
            "render max (decode → jpeg)"} <= set(stages)
    assert speed["frames"] == 12 and speed["peak_rss_mb"] > 0


def test_bench_speed_times_a_raw_burst_against_rawpy_alone(tmp_path):
    """A RAW burst's floor is libraw developing each file alone (a plain rawpy loop); a
    folder of frames is timed the same way against its own decoder."""
    proc = run_lexp("bench", "--speed", "synthetic-raw:64x48x6", "--methods", "mean",
                    "--repeats", "1", "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    speed = json.loads(proc.stdout)["speed"]
    stages = [s["stage"] for s in speed["stages"]]
    assert stages[0] == "floor: rawpy develops each file alone" and speed["frames"] == 6
    assert "render mean (decode → jpeg)" in stages
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(synthetic.night_street(64, 48, 5)):
        cv2.imwrite(str(folder / f"f{i}.png"), frame)
    proc = run_lexp("bench", "--speed", str(folder), "--methods", "mean", "--repeats", "1",
                    "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    speed = json.loads(proc.stdout)["speed"]
    assert speed["stages"][0]["stage"] == "floor: each file decoded alone"
    assert speed["frames"] == 5 and speed["clip"] == "frames"


@pytest.mark.parametrize("args", [[], ["--quality", "x", "--methods", "blend"],
                                  ["--quality", "x", "--protocol", "sideways"]])
def test_bench_usage_errors(args):
    assert_clean_failure(run_lexp("bench", *args), 2)


def test_a_folder_of_frames_is_scored_like_its_video(tmp_path):
    """bench reads its inputs as render does (lexp.inputs): a frame folder is a clip."""
    frames = list(synthetic.night_street(96, 64, 60))
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):  # PNG: lossless, so the same pixels as the list
        cv2.imwrite(str(folder / f"f{i:03d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    methods = bench.resolve_methods("mean")
    report = bench.run_quality([str(folder)], methods, [bench.PROTOCOLS["gap-fill"]])
    assert report.clips == ["frames"] and len(report.scores) == 1
    lut = colour.decode_lut("srgb")
    truth = colour.encode(np.mean([lut[f] for f in frames[:57]], axis=0), "srgb")
    mean = colour.encode(np.mean([lut[f] for f in frames[0:57:8]], axis=0), "srgb")
    assert report.scores[0].psnr == pytest.approx(metrics.psnr(mean, truth), abs=1e-6)
