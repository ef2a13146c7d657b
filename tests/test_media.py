from pathlib import Path

import cv2
import numpy as np
import pytest

from lexp import media, synthetic
from lexp.errors import InputError
from lexp.media import ClipSource, CvVideoClip, StdinClip, VideoClip


def video_source(path: Path) -> ClipSource:
    return ClipSource(str(path), "video", (path,))


def all_frames(clip, **kw) -> list[np.ndarray]:
    return [f.copy() for _, f in clip.frames(**kw)]


def test_natural_sort():
    names = ["frame10.png", "frame2.png", "Frame1.png", "frame002b.png"]
    assert sorted(names, key=media.natural_key) == [
        "Frame1.png", "frame2.png", "frame002b.png", "frame10.png"]


def test_frame_folder_in_natural_order(frames_dir):
    files = sorted(frames_dir.iterdir(), key=media.natural_key)
    with media.FrameFolderClip(str(frames_dir), files, fps=None) as clip:
        assert clip.info.frame_count == 12 and clip.info.frame_count_exact
        got = all_frames(clip)
    want = list(synthetic.moving_square(96, 64, frames=12))
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


def test_images_of_every_kind_become_rgb8(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (8, 10, 3), dtype=np.uint8)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(tmp_path / "a.png"), bgr.astype(np.uint16) * 257)  # 16-bit
    cv2.imwrite(str(tmp_path / "b.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA))  # alpha
    cv2.imwrite(str(tmp_path / "c.png"), rgb[..., 0])  # grey
    assert np.array_equal(media.read_image_rgb8(tmp_path / "a.png"), rgb)
    assert np.array_equal(media.read_image_rgb8(tmp_path / "b.png"), rgb)
    grey = media.read_image_rgb8(tmp_path / "c.png")
    assert grey.shape == (8, 10, 3) and np.array_equal(grey[..., 2], rgb[..., 0])


def test_mixed_frame_sizes_are_refused(tmp_path):
    for i, size in enumerate([(8, 10), (8, 10), (6, 10)]):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), np.zeros((*size, 3), np.uint8))
    files = sorted(tmp_path.iterdir(), key=media.natural_key)
    with media.FrameFolderClip("x", files, None) as clip:
        with pytest.raises(InputError, match=r"frame 2 \(f2.png\) is 10x6"):
            all_frames(clip)


def test_video_info_and_frames(clips):
    with media.open_clip(video_source(clips["square"])) as clip:
        assert isinstance(clip, CvVideoClip)
        info = clip.info
        assert (info.width, info.height, info.fps) == (96, 64, 10)
        frames = all_frames(clip)
    assert len(frames) == 12 and frames[0].dtype == np.uint8 and frames[0].shape == (64, 96, 3)
    # Decoded frames are close to what was encoded (H.264 at crf 18 is lossy).
    want = list(synthetic.moving_square(96, 64, frames=12))
    assert np.abs(frames[5].astype(int) - want[5]).mean() < 4


def test_opencv_and_ffmpeg_decoders_agree_bit_for_bit(clips):
    for name in ("square", "street"):
        with CvVideoClip(str(clips[name]), name) as a, VideoClip(str(clips[name]), name) as b:
            assert a.info.width == b.info.width and a.info.height == b.info.height
            assert a.info.fps == pytest.approx(b.info.fps)
            fa, fb = all_frames(a), all_frames(b)
        assert all(np.array_equal(x, y) for x, y in zip(fa, fb, strict=True))


@pytest.mark.parametrize("decoder", [CvVideoClip, VideoClip])
def test_window_selection(clips, decoder):
    with decoder(str(clips["square"]), "sq") as clip:
        reference = all_frames(clip)
    with decoder(str(clips["square"]), "sq") as clip:
        got = list(clip.frames(first=2, end=9, stride=3))
    assert [i for i, _ in got] == [2, 5, 8]
    assert all(np.array_equal(f, reference[i]) for i, f in got)


@pytest.mark.parametrize("decoder", [CvVideoClip, VideoClip])
def test_stopping_early_does_not_hang(clips, decoder):
    with decoder(str(clips["street"]), "st") as clip:
        for n, _ in enumerate(clip.frames(reuse_buffer=True)):
            if n == 3:
                break  # the reader thread / ffmpeg must be stopped by close()


def test_any_channel_order_gives_bgr_from_opencv(clips):
    with CvVideoClip(str(clips["street"]), "st") as clip:
        rgb = all_frames(clip)[0]
    with CvVideoClip(str(clips["street"]), "st") as clip:
        native = all_frames(clip, any_channel_order=True)[0]
    assert clip.native_bgr and np.array_equal(native[..., ::-1], rgb)


@pytest.mark.parametrize("name", ["street", "street_mkv"])
def test_stdin_matches_the_file(clips, name):
    with media.open_clip(video_source(clips["street"])) as clip:
        want = all_frames(clip)
    with open(clips[name], "rb") as stream, StdinClip(stream=stream) as clip:
        assert clip.info.kind == "stdin"
        got = all_frames(clip)
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


def test_empty_stdin_is_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with open(empty, "rb") as stream, pytest.raises(InputError, match="nothing arrived"):
        StdinClip(stream=stream)


def test_broken_files_give_one_line_reasons(tmp_path, clips):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    truncated = tmp_path / "truncated.mp4"
    data = clips["street"].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    cases = {empty: "empty", text: "not a video", truncated: "truncated"}
    for path, reason in cases.items():
        with pytest.raises(InputError, match=reason) as err:
            with media.open_clip(video_source(path)) as clip:
                all_frames(clip)
        assert "\n" not in err.value.message


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        media.open_clip(video_source(tmp_path / "nope.mp4"))


@pytest.mark.parametrize("suffix,codec", [
    (".mov", ["-c", "copy"]), (".mkv", ["-c", "copy"]), (".avi", ["-c:v", "mpeg4"]),
    (".webm", ["-c:v", "libvpx-vp9", "-b:v", "300k"]), (".gif", []),
])
def test_every_container_decodes_the_same_both_ways(clips, tmp_path, suffix, codec):
    import subprocess

    path = tmp_path / f"clip{suffix}"
    subprocess.run([media.ffmpeg_exe(), "-v", "error", "-i", str(clips["street"]), *codec,
                    str(path)], check=True)
    with media.open_clip(video_source(path)) as clip:
        assert isinstance(clip, CvVideoClip)
        fast = all_frames(clip)
    with VideoClip(str(path), path.name) as clip:
        piped = all_frames(clip)
    assert len(fast) == 40
    assert all(np.array_equal(a, b) for a, b in zip(fast, piped, strict=True))


@pytest.mark.parametrize(("line", "pixels", "tag", "deep"), [
    ("  Stream #0:0[0x1](und): Video: hevc (Main 10) (hev1 / 0x31766568), yuv420p10le(tv, "
     "bt2020nc/bt2020/arib-std-b67, progressive), 384x256, 162 kb/s, 10 fps",
     "yuv420p10le", "arib-std-b67", True),
    ("  Stream #0:0: Video: h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709, "
     "progressive), 1280x720 [SAR 1:1 DAR 16:9], 30 fps", "yuv420p", "bt709", False),
    ("  Stream #0:0: Video: prores (HQ) (apch / 0x68637061), yuv422p10le(tv, bt709/bt709/"
     "smpte2084, progressive), 320x180, 30 fps", "yuv422p10le", "smpte2084", True),
    ("  Stream #0:0: Video: gif, bgra, 320x180, 30 fps", "bgra", None, False),
])
def test_colour_tags_from_the_ffmpeg_header(line, pixels, tag, deep):
    header = ["Input #0, mov,mp4 from 'x.mp4':", line, "Output #0, rawvideo, to 'pipe:1':",
              "  Stream #0:0: Video: rawvideo (RGB[24] / 0x18424752), rgb24(pc, gbr/bt2020/"
              "arib-std-b67, progressive), 384x256"]
    from lexp.media import ffmpeg  # (its private readers of ffmpeg's header)

    assert ffmpeg._input_pixel_format(header)[0] == pixels
    assert ffmpeg._transfer_tag(header) == tag
    assert ffmpeg._deep_pixels(header) is deep


def test_ten_bit_video_is_decoded_with_rounding(tmp_path, monkeypatch):
    # Flat patches at known 8-bit values, encoded losslessly as 10-bit: both decoders
    # give them back exactly (swscale's default conversion came out 2 codes dark, and
    # OpenCV's 2 codes short in green).
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:, :16], frame[:, 16:32], frame[:, 32:48], frame[:, 48:] = 128, 60, 200, (200, 120, 60)
    cv2.imwrite(str(tmp_path / "f.png"), frame[..., ::-1])
    clip = tmp_path / "ten_bit.mp4"
    import subprocess

    subprocess.run([media.ffmpeg_exe(), "-v", "error", "-y", "-loop", "1", "-i",
                    str(tmp_path / "f.png"), "-frames:v", "2",
                    "-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p10le",
                    "-colorspace", "bt709", "-c:v", "libx265",
                    "-x265-params", "log-level=error:lossless=1", str(clip)], check=True)
    for decoder in ("", "ffmpeg"):
        monkeypatch.setenv("LEXP_DECODER", decoder)
        with media.open_video(str(clip), "ten_bit") as opened:
            assert isinstance(opened, VideoClip)
            got = next(opened.frames())[1]
        assert np.abs(got[24, 8::16].astype(int) - frame[24, 8::16]).max() <= 1, decoder

