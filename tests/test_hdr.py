"""HDR video (HLG, PQ): decoded with its own curve, blended in linear light, written as sRGB.

The clips are made here from known signal values: 16-bit PNG frames holding BT.2100
signals (BT.2020 primaries), encoded losslessly as 10-bit HEVC with the colour tags a
phone writes. Flat patches, so 4:2:0 chroma costs nothing; what is left is the 10-bit
limited-range YUV round trip and the 8-bit decode, under 1 % of a code value's light.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lexp import colour, media
from tests.conftest import decode_rgb, run_lexp

TAGS = {"hlg": "arib-std-b67", "pq": "smpte2084"}
SIZE = (64, 48)  # width, height: four 16×48 patches side by side


def make_hdr_clip(path: Path, frames: list[np.ndarray], transfer: str) -> Path:
    """An HEVC 10-bit clip tagged BT.2020 + ``transfer`` whose frames (H×W×3 signal
    values in [0, 1], BT.2020 RGB) are ``frames``."""
    import cv2

    folder = path.parent / f"{path.stem}_frames"
    folder.mkdir()
    for i, signal in enumerate(frames):
        codes = np.round(np.clip(signal, 0, 1) * 65535).astype(np.uint16)
        cv2.imwrite(str(folder / f"{i:03d}.png"), codes[..., ::-1])
    trc = TAGS[transfer]
    subprocess.run(
        [media.ffmpeg_exe(), "-v", "error", "-y", "-framerate", "10",
         "-i", str(folder / "%03d.png"),
         "-vf", "scale=out_color_matrix=bt2020:out_range=tv,format=yuv420p10le",
         "-colorspace", "bt2020nc", "-color_primaries", "bt2020", "-color_trc", trc,
         "-c:v", "libx265", "-x265-params",
         f"log-level=error:lossless=1:colorprim=bt2020:transfer={trc}:colormatrix=bt2020nc",
         str(path)], check=True)
    return path


def patches(*signals: tuple[float, float, float]) -> np.ndarray:
    """A frame of side-by-side flat patches of the given signal values."""
    width, height = SIZE
    frame = np.zeros((height, width, 3))
    step = width // len(signals)
    for i, rgb in enumerate(signals):
        frame[:, i * step:(i + 1) * step] = rgb
    return frame


def patch_values(image: np.ndarray, count: int) -> np.ndarray:
    """The centre pixel of each of ``count`` patches, as floats in [0, 1]."""
    width, height = SIZE
    step = width // count
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    return np.array([image[height // 2, i * step + step // 2] for i in range(count)]) / scale


def srgb(linear) -> np.ndarray:
    return colour.encode(np.asarray(linear, np.float64), "srgb").astype(np.float64)


@pytest.fixture(scope="module")
def hlg_greys(tmp_path_factory) -> Path:
    """HLG: reference white (75 %), 50 % and 25 % grey, and a patch that flickers between
    50 % and 75 % from frame to frame (4 frames)."""
    root = tmp_path_factory.mktemp("hdr")
    frames = [patches((.75,) * 3, (.5,) * 3, (.25,) * 3, ((.5, .75)[i % 2],) * 3)
              for i in range(4)]
    return make_hdr_clip(root / "greys_hlg.mp4", frames, "hlg")


def test_the_colour_tags_are_read_by_both_decoders(hlg_greys, monkeypatch):
    # OpenCV would turn each frame into SDR, clipping its highlights: an HDR clip is
    # decoded by the ffmpeg pipe whichever decoder is asked for, so both give its signal.
    with media.open_video(str(hlg_greys), "greys") as clip:
        assert isinstance(clip, media.VideoClip)
        assert clip.info.transfer_tag == "arib-std-b67"
        frames = [f.copy() for _, f in clip.frames()]
    assert len(frames) == 4
    assert patch_values(frames[0], 4)[0] == pytest.approx([0.75] * 3, abs=1.5 / 255)


def test_hlg_greys_are_blended_in_scene_light(hlg_greys, tmp_path):
    out = tmp_path / "greys.png"
    proc = run_lexp("render", str(hlg_greys), "-o", str(out), "-m", "mean", "--tone", "clip",
                    "--bit-depth", "16", "--json")
    assert proc.returncode == 0, proc.stderr
    got = patch_values(decode_rgb(out), 4)[:, 1]
    white, half, quarter = colour.decode(np.array([0.75, 0.5, 0.25]), "hlg")
    assert white == pytest.approx(1.0)  # HLG's reference white is lexp's white
    # Reference white is white; the flickering patch is the mean of the *scene light*
    # of its two greys, not of their signals.
    expected = srgb([white, half, quarter, (half + white) / 2])
    assert got == pytest.approx(expected, abs=0.01)
    assert abs(got[3] - srgb(colour.decode(np.array([0.625]), "hlg"))[0]) > 0.03
    result = json.loads(proc.stdout)
    assert result["details"]["hdr"] == {"transfer": "hlg", "tone": "clip"}


def test_hdr_highlights_are_tone_mapped_softly_by_default(hlg_greys, tmp_path):
    out = tmp_path / "greys.png"
    proc = run_lexp("render", str(hlg_greys), "-o", str(out), "-m", "mean", "--bit-depth", "16")
    assert proc.returncode == 0, proc.stderr
    assert "HLG HDR brought into sRGB, highlights rolled off" in proc.stderr
    got = patch_values(decode_rgb(out), 4)[:, 1]
    linear = colour.decode(np.array([0.75, 0.5]), "hlg")
    expected = srgb(colour.tone_map(np.repeat(linear[:, None], 3, axis=1), "soft")[:, 0])
    assert got[:2] == pytest.approx(expected, abs=0.01)
    assert got[0] < 0.99  # white gives way to the highlights above it


def test_transfer_can_be_forced(hlg_greys, tmp_path):
    # --transfer srgb takes the HLG signal for sRGB codes: the 50 % patch stays 50 %.
    out = tmp_path / "forced.png"
    proc = run_lexp("render", str(hlg_greys), "-o", str(out), "-m", "mean",
                    "--transfer", "srgb", "--bit-depth", "16")
    assert proc.returncode == 0, proc.stderr
    assert "HDR" not in proc.stderr
    assert patch_values(decode_rgb(out), 4)[1, 1] == pytest.approx(0.5, abs=0.01)


def test_stdin_gives_the_same_image(hlg_greys, tmp_path):
    from_file = run_lexp("render", str(hlg_greys), "-o", "-", "--format", "png", "-m", "mean")
    piped = run_lexp("render", "-", "-o", "-", "--format", "png", "-m", "mean",
                     stdin=hlg_greys.read_bytes())
    assert from_file.returncode == 0 and piped.returncode == 0, piped.stderr
    assert "HLG HDR" in piped.stderr
    (tmp_path / "file.png").write_bytes(from_file.stdout)
    (tmp_path / "piped.png").write_bytes(piped.stdout)
    assert np.array_equal(decode_rgb(tmp_path / "file.png"), decode_rgb(tmp_path / "piped.png"))


def test_pq_reference_white_and_hundred_nits(tmp_path):
    def pq_signal(nits: float) -> float:
        return float(colour.encode(np.array([nits / colour.REFERENCE_WHITE_NITS]), "pq")[0])

    frame = patches((pq_signal(203),) * 3, (pq_signal(100),) * 3, (pq_signal(1000),) * 3,
                    (0.0,) * 3)
    clip = make_hdr_clip(tmp_path / "pq.mp4", [frame] * 2, "pq")
    out = tmp_path / "pq.png"
    proc = run_lexp("render", str(clip), "-o", str(out), "-m", "mean", "--tone", "clip",
                    "--bit-depth", "16")
    assert proc.returncode == 0, proc.stderr
    assert "PQ HDR" in proc.stderr
    got = patch_values(decode_rgb(out), 4)[:, 1]
    # 203 cd/m² is white, 100 cd/m² is a little under half of it, 1000 clips.
    assert got == pytest.approx(srgb([1.0, 100 / 203, 1.0, 0.0]), abs=0.01)


def test_bt2020_colours_are_converted_to_srgb_primaries(tmp_path):
    # Colours inside sRGB's gamut, written as BT.2020 HLG signals: the render gives the
    # sRGB colours back. Shown as if they were sRGB already, they would be far duller.
    wanted = np.array([[0.6, 0.2, 0.1], [0.1, 0.5, 0.2], [0.2, 0.25, 0.7], [0.3, 0.3, 0.3]])
    in_2020 = wanted @ np.linalg.inv(colour.BT2020_TO_BT709.astype(np.float64)).T
    signals = colour.encode(in_2020, "hlg").astype(np.float64)
    clip = make_hdr_clip(tmp_path / "colours.mp4", [patches(*map(tuple, signals))] * 2, "hlg")
    out = tmp_path / "colours.png"
    proc = run_lexp("render", str(clip), "-o", str(out), "-m", "mean", "--tone", "clip",
                    "--bit-depth", "16")
    assert proc.returncode == 0, proc.stderr
    got = patch_values(decode_rgb(out), 4)
    assert got == pytest.approx(srgb(wanted), abs=0.015)
    unconverted = srgb(in_2020)
    assert np.abs(unconverted - srgb(wanted)).max() > 0.05


def test_flow_render_and_trail_video_of_an_hdr_clip(hlg_greys, tmp_path):
    out, video = tmp_path / "flow.png", tmp_path / "trail.mp4"
    proc = run_lexp("render", str(hlg_greys), "-o", str(out), "-m", "flow", "--tone", "clip",
                    "--bit-depth", "16", "--video", str(video))
    assert proc.returncode == 0, proc.stderr
    assert "HLG HDR brought into sRGB, highlights clipped" in proc.stderr
    expected = srgb(colour.decode(np.array([0.75, 0.5, 0.25]), "hlg"))
    assert patch_values(decode_rgb(out), 4)[:3, 1] == pytest.approx(expected, abs=0.01)
    with media.open_video(str(video), "trail") as clip:
        last = [f for _, f in clip.frames()][-1]
    assert patch_values(last, 4)[:3, 1] == pytest.approx(expected, abs=0.03)  # 8-bit H.264
