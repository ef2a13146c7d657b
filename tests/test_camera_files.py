"""What cameras and phones shoot (issue 41): RAW bursts developed to linear light and
blended there, RAW+JPEG pairs, HEIC stills with their 10 bits, Live Photos.

No camera file is kept in the repository: the DNGs are written by synthetic.write_dng (a known Bayer
mosaic, black and white levels, an as-shot white balance, a colour matrix that makes
the camera's space sRGB's, so the developed frame is the mosaic's own linear values);
the HEICs by pillow-heif, the Live Photos' videos by ffmpeg.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lexp
from lexp import synthetic
from lexp.errors import UsageError
from tests.conftest import assert_clean_failure, decode_rgb, run_lexp


def burst(folder: Path, frames: int = 4, size=(48, 64)) -> list[np.ndarray]:
    """A RAW burst: a smooth colour field and a bright square moving across it."""
    folder.mkdir(exist_ok=True)
    h, w = size
    yy, xx = np.mgrid[:h, :w] / np.array([h, w])[:, None, None]
    truth = []
    for t in range(frames):
        linear = np.stack([0.1 + 0.3 * xx, 0.2 + 0.2 * yy, 0.15 + 0.1 * xx * yy], axis=2)
        linear[10:22, 8 + 10 * t:20 + 10 * t] = (0.9, 0.7, 0.5)
        synthetic.write_dng(folder / f"IMG_{t + 1:04d}.DNG", linear)
        truth.append(linear)
    return truth


def test_a_raw_burst_blends_in_the_sensors_linear_light(tmp_path):
    """The mean of a RAW burst is the mean of the mosaics' linear values, to 1/1000 of
    the white level (interior pixels: demosaicing guesses at the borders and edges)."""
    truth = burst(tmp_path / "burst")
    image = lexp.render(tmp_path / "burst", method="mean", cache=False)
    assert image.clip.transfer_tag == "linear" and image.config.transfer == "linear"
    assert image.details.raw and image.clip.bit_depth == 16
    expected = np.mean(truth, axis=0)
    flat = (slice(26, 44), slice(4, 60))  # below the moving square: the colour field
    assert np.abs(image.linear[flat] - expected[flat]).max() < 1e-3
    inside = (slice(13, 19), slice(11, 17))  # the square's first place: 1 frame of 4
    assert np.abs(image.linear[inside] - expected[inside]).max() < 1e-3
    # The picture is written with the sRGB curve from that linear light.
    assert image.to_srgb()[35, 30] == pytest.approx(
        np.rint(255 * lexp.colour.encode(expected[35, 30], "srgb")), abs=1)


def test_every_frame_is_developed_with_the_first_frames_white_balance(tmp_path):
    """A burst whose camera changed its mind about white (auto WB) would flicker in
    colour: every frame takes the first frame's as-shot balance."""
    field = np.full((48, 64, 3), (0.3, 0.4, 0.2))
    (tmp_path / "a").mkdir()
    synthetic.write_dng(tmp_path / "a" / "IMG_0001.DNG", field, neutral=(0.5, 1.0, 0.8))
    synthetic.write_dng(tmp_path / "a" / "IMG_0002.DNG", field, neutral=(1.0, 1.0, 1.0))
    both = lexp.render(tmp_path / "a", method="mean", cache=False)
    first = lexp.render(tmp_path / "a" / "IMG_0001.DNG", method="mean", cache=False)
    assert np.abs(both.linear - first.linear).max() < 1e-4
    # The balance is the first's: red ×2, blue ×1.25 (the inverse of its neutral).
    assert both.linear[8, 8] == pytest.approx([0.6, 0.4, 0.25], abs=2e-3)


def test_sensor_highlights_stay_white_after_white_balance(tmp_path):
    """A clipped sky or star core is clipped in every channel of the sensor: scaling red
    by the white balance must not turn it magenta."""
    field = np.full((48, 64, 3), 1.0)
    synthetic.write_dng(tmp_path / "IMG_0001.DNG", field, neutral=(0.5, 1.0, 0.7))
    image = lexp.render(tmp_path / "IMG_0001.DNG", method="mean", cache=False)
    r, g, b = image.linear[8, 8]
    assert r == pytest.approx(g, abs=1e-3) and b == pytest.approx(g, abs=1e-3) and g > 0.99


def test_raw_plus_jpeg_pairs_are_the_raw_frames_said_once(tmp_path):
    import cv2

    burst(tmp_path / "card", frames=3)
    for t in range(3):  # the camera's JPEG twins
        cv2.imwrite(str(tmp_path / "card" / f"IMG_{t + 1:04d}.JPG"),
                    np.zeros((48, 64, 3), np.uint8))
    out = tmp_path / "out.png"
    proc = run_lexp("render", str(tmp_path / "card"), "-o", str(out), "-m", "mean",
                    "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("RAW+JPEG") == 1 and "3 RAW+JPEG pairs" in proc.stderr
    record = json.loads(proc.stdout)
    assert record["frames"] == 3 and record["details"]["raw"] is True
    assert decode_rgb(out).mean() > 30  # the RAW frames, not the black JPEGs


def test_raw_and_other_frames_that_are_not_pairs_are_refused(tmp_path):
    import cv2

    burst(tmp_path / "mixed", frames=2)
    cv2.imwrite(str(tmp_path / "mixed" / "other.jpg"), np.zeros((48, 64, 3), np.uint8))
    proc = run_lexp("render", str(tmp_path / "mixed"), "-o", str(tmp_path / "o.jpg"))
    assert_clean_failure(proc, 1)
    assert "mixes RAW files with other images" in proc.stderr


@pytest.mark.parametrize("damage", ["truncated", "junk"])
def test_a_damaged_raw_is_one_line_naming_the_file(tmp_path, damage):
    burst(tmp_path / "b", frames=3)
    bad = tmp_path / "b" / "IMG_0002.DNG"
    data = bad.read_bytes()
    bad.write_bytes(data[:len(data) // 3] if damage == "truncated" else b"not a raw" * 100)
    proc = run_lexp("render", str(tmp_path / "b"), "-o", str(tmp_path / "o.jpg"), "-m", "mean")
    assert_clean_failure(proc, 1)
    assert "IMG_0002.DNG" in proc.stderr
    assert not (tmp_path / "o.jpg").exists()


def heic(path: Path, rgb16: np.ndarray, content_identifier: str | None = None) -> Path:
    """A lossless 10-bit HEIC of ``rgb16`` (uint16 H×W×3); ``content_identifier``: a Live
    Photo's, in an Apple MakerNote as iPhones write it."""
    import pillow_heif

    h, w = rgb16.shape[:2]
    extra = {"exif": apple_exif(content_identifier)} if content_identifier else {}
    pillow_heif.from_bytes(mode="RGB;16", size=(w, h), data=rgb16.tobytes()).save(
        str(path), quality=-1, **extra)
    return path


def apple_exif(content_identifier: str) -> bytes:
    """EXIF whose MakerNote is Apple's, holding a Live Photo content identifier (tag
    0x0011): 'Apple iOS\\0', version 1, 'MM', one IFD entry whose value lies after the
    IFD, its offset counted from the note's start."""
    import struct

    from PIL import Image

    value = content_identifier.encode() + b"\x00"
    note = (b"Apple iOS\x00\x00\x01MM" + struct.pack(">H", 1)
            + struct.pack(">HHII", 0x0011, 2, len(value), 14 + 2 + 12 + 4)
            + struct.pack(">I", 0) + value)
    exif = Image.Exif()
    exif[271], exif[272] = "Apple", "iPhone 15"
    exif.get_ifd(0x8769)[0x927C] = note
    return exif.tobytes()


def live_video(path: Path, frames: int, content_identifier: str | None = None) -> Path:
    """A Live Photo's video: ``frames`` of 160×90 traffic, the content identifier in its
    QuickTime metadata as ffmpeg writes it (moov/udta/meta, keys and ilst)."""
    import subprocess

    from lexp.media.ffmpeg import ffmpeg_exe

    plain = synthetic.write_video(path.with_suffix(".plain.mp4"),
                                  synthetic.night_street(160, 90, frames), fps=30)
    tag = ["-metadata", f"com.apple.quicktime.content.identifier={content_identifier}",
           "-movflags", "use_metadata_tags"] if content_identifier else []
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(plain), "-c", "copy", *tag,
                    str(path)], check=True)
    plain.unlink()
    return path


def test_a_heic_keeps_its_10_bits(tmp_path):
    """Phones' HEIC stills are 10-bit: squeezed to 8 bits, a smooth sky bands."""
    from lexp.media import read_image

    ramp = np.repeat(np.linspace(0, 65535, 64)[None, :, None], 32, axis=0)
    ramp = np.repeat(ramp, 3, axis=2).astype(np.uint16)
    frame = read_image(heic(tmp_path / "IMG_0001.HEIC", ramp))
    assert frame.dtype == np.uint16 and frame.shape == (32, 64, 3)
    levels = len(np.unique(frame[16, :, 1]))
    assert levels > 40  # 64 steps of 10 bits; 8 bits would merge neighbours
    assert np.abs(frame.astype(float) - ramp).mean() < 0.01 * 65535  # lossless up to 10 bits


def test_a_live_photo_renders_its_video_and_says_so(tmp_path):
    still = heic(tmp_path / "IMG_1234.HEIC", np.full((90, 160, 3), 30000, np.uint16))
    synthetic.write_video(tmp_path / "IMG_1234.MOV", synthetic.night_street(160, 90, 30),
                          fps=30)
    out = tmp_path / "out.jpg"
    proc = run_lexp("render", str(still), "-o", str(out), "-m", "mean", "--json")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["frames"] == 30 and record["details"]["live_photo"] == "IMG_1234.HEIC"
    assert "of the Live Photo IMG_1234.HEIC" in proc.stderr
    # Alone, a HEIC is a one-frame clip, and that is said.
    (tmp_path / "IMG_1234.MOV").unlink()
    proc = run_lexp("render", str(still), "-o", str(out), "-m", "mean", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert "no Live Photo video" in proc.stderr and "1 frame stacked" in proc.stderr


def test_a_folder_of_live_photos_is_a_batch_of_their_videos(tmp_path):
    for name in ("IMG_0001", "IMG_0002"):
        heic(tmp_path / f"{name}.HEIC", np.full((90, 160, 3), 30000, np.uint16))
        synthetic.write_video(tmp_path / f"{name}.MOV", synthetic.night_street(160, 90, 12),
                              fps=30)
    proc = run_lexp("render", str(tmp_path), "-o", f"{tmp_path}/out/", "-m", "mean",
                    "--json")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert sorted(r["details"]["live_photo"] for r in records) == ["IMG_0001.HEIC",
                                                                  "IMG_0002.HEIC"]
    assert all(r["frames"] == 12 for r in records)


ID_A = "6A1B2C3D-1111-4222-8333-444455556666"
ID_B = "7F00AA11-2222-4333-8444-555566667777"


def test_a_live_photo_is_paired_by_its_content_identifier(tmp_path):
    """A still and a video that share Apple's content identifier are one Live Photo
    whatever their names (a renamed copy); two different identifiers are not, whatever
    their names (files of two phones merged in one folder); the name pairs them only
    where an identifier is missing."""
    grey = np.full((90, 160, 3), 30000, np.uint16)
    still = heic(tmp_path / "IMG_1234.HEIC", grey, content_identifier=ID_A)
    live_video(tmp_path / "IMG_1234.MOV", 12, content_identifier=ID_B)  # another phone's
    live_video(tmp_path / "IMG_1234 (1).MOV", 20, content_identifier=ID_A)  # renamed copy
    out = tmp_path / "out.jpg"
    proc = run_lexp("render", str(still), "-o", str(out), "-m", "mean", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["frames"] == 20
    # The folder: each video a clip, the copy paired with the still, the other alone.
    proc = run_lexp("render", str(tmp_path), "-o", f"{tmp_path}/out/", "-m", "mean", "--json")
    assert proc.returncode == 0, proc.stderr
    paired = {r["frames"]: r.get("details", {}).get("live_photo")
              for r in map(json.loads, proc.stdout.decode().splitlines())}
    assert paired == {20: "IMG_1234.HEIC", 12: None}
    # Without its copy, the namesake's other identifier keeps it apart.
    (tmp_path / "IMG_1234 (1).MOV").unlink()
    proc = run_lexp("render", str(still), "-o", str(out), "-m", "mean", "--json", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["frames"] == 1 and "no Live Photo video" in proc.stderr
    # A video with no identifier (an export that dropped it) pairs by its name.
    live_video(tmp_path / "IMG_1234.MOV", 12)
    proc = run_lexp("render", str(still), "-o", str(out), "-m", "mean", "--json", "--overwrite")
    assert json.loads(proc.stdout)["details"]["live_photo"] == "IMG_1234.HEIC"


def test_content_identifiers_are_read_where_iphones_and_ffmpeg_write_them(tmp_path):
    """The video's identifier in moov/meta, a plain atom as QuickTime (an iPhone) writes
    it, and in moov/udta/meta, a full atom as ffmpeg does; the still's from a JPEG's
    Apple MakerNote as well as a HEIC's; nothing from files without one."""
    import struct

    from PIL import Image

    from lexp.media.live_photos import still_content_identifier, video_content_identifier

    def atom(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", 8 + len(payload)) + kind + payload

    key = b"com.apple.quicktime.content.identifier"
    keys = atom(b"keys", struct.pack(">II", 0, 2) + atom(b"mdta", b"com.apple.other")
                + atom(b"mdta", key))
    item = atom(struct.pack(">I", 2), atom(b"data", struct.pack(">II", 1, 0)
                                               + ID_B.lower().encode()))
    meta = atom(b"meta", atom(b"hdlr", bytes(8) + b"mdta" + bytes(12)) + keys
                + atom(b"ilst", item))
    iphone = tmp_path / "iphone.mov"
    iphone.write_bytes(atom(b"ftyp", b"qt  \x00\x00\x00\x00qt  ") + atom(b"mdat", bytes(64))
                       + atom(b"moov", atom(b"mvhd", bytes(100)) + meta))
    assert video_content_identifier(iphone) == ID_B
    assert video_content_identifier(live_video(tmp_path / "ff.mov", 3, ID_A)) == ID_A
    assert video_content_identifier(live_video(tmp_path / "none.mov", 3)) is None
    (tmp_path / "junk.mov").write_bytes(b"\xff" * 100)
    assert video_content_identifier(tmp_path / "junk.mov") is None
    jpeg = tmp_path / "IMG_1.JPG"
    Image.new("RGB", (16, 16)).save(jpeg, exif=apple_exif(ID_A))
    assert still_content_identifier(jpeg) == ID_A
    assert still_content_identifier(heic(tmp_path / "x.heic", np.zeros((8, 8, 3), np.uint16),
                                         content_identifier=ID_B)) == ID_B
    Image.new("RGB", (16, 16)).save(tmp_path / "plain.jpg")
    assert still_content_identifier(tmp_path / "plain.jpg") is None


def test_a_colour_temperature_whitens_a_card_lit_by_that_light(tmp_path):
    """--white-balance 2856: a grey card under CIE illuminant A (a tungsten black body at
    2856 K, xy 0.44757, 0.40745 as published, not computed by lexp) comes out grey; the
    camera's as-shot balance (set for daylight here) leaves it orange."""
    x, y = 0.44757, 0.40745
    xyz_to_srgb = np.array([[3.2404542, -1.5371385, -0.4985314],
                            [-0.9692660, 1.8760108, 0.0415560],
                            [0.0556434, -0.2040259, 1.0572252]])
    card = xyz_to_srgb @ np.array([x / y, 1.0, (1 - x - y) / y])  # the synthetic camera
    (tmp_path / "a").mkdir()
    for n in range(2):
        synthetic.write_dng(tmp_path / "a" / f"IMG_{n}.DNG",
                            np.full((48, 64, 3), 0.4 * card / card.max()))
    balanced = lexp.render(tmp_path / "a", method="mean", cache=False, white_balance="2856")
    centre = balanced.linear[16:32, 16:48].reshape(-1, 3).mean(axis=0)
    assert centre / centre[1] == pytest.approx([1, 1, 1], abs=0.01)
    as_shot = lexp.render(tmp_path / "a", method="mean", cache=False).linear[24, 32]
    assert as_shot[0] / as_shot[2] > 5  # orange
    with pytest.raises(UsageError, match="outside 1700-25000 K"):
        lexp.render(tmp_path / "a", white_balance="900K")


def test_a_linear_master_keeps_the_blends_light_for_editing(tmp_path):
    """--bit-depth 32: a float TIFF of the blend in linear light, after --ev and before
    any tone or transfer curve, highlights above white kept; not for PNG or JPEG."""
    import tifffile

    from lexp import stills

    truth = burst(tmp_path / "burst", frames=3)
    out = tmp_path / "master.tif"
    proc = run_lexp("render", str(tmp_path / "burst"), "-o", str(out), "-m", "mean",
                    "--bit-depth", "32", "--ev", "1")
    assert proc.returncode == 0, proc.stderr
    master = tifffile.imread(out)
    assert master.dtype == np.float32
    expected = 2 * np.mean(truth, axis=0)  # +1 stop
    flat = (slice(26, 44), slice(4, 60))
    assert np.abs(master[flat] - expected[flat]).max() < 2e-3
    assert master.max() > 1.0  # the square's light at +1 stop: above white, kept
    assert stills.read_settings(out)["output"]["bit_depth"] == 32
    refused = run_lexp("render", str(tmp_path / "burst"), "-o", str(tmp_path / "m.png"),
                       "--bit-depth", "32")
    assert_clean_failure(refused, 2)
    assert "float TIFF" in refused.stderr


def test_capture_times_of_raw_and_heic_frames_weigh_them(tmp_path):
    """Capture times feed the uneven-spacing logic for RAW (Pillow cannot open them:
    their TIFF tags, or libraw's time) and HEIC frames (Pillow through pillow-heif)."""
    import pillow_heif
    from PIL import Image

    from lexp import timing
    from lexp.media.camera_files import capture_time

    field = np.full((48, 64, 3), 0.3)
    seconds = (0, 1, 3)
    raws = [synthetic.write_dng(tmp_path / f"IMG_{i}.DNG", field, shot=f"2026:12:07 22:00:0{t}")
            for i, t in enumerate(seconds)]
    heics = []
    for i, t in enumerate(seconds):
        exif = Image.Exif()
        exif[306] = f"2026:12:07 22:00:0{t}"
        heif = pillow_heif.from_bytes(mode="RGB", size=(64, 48),
                                      data=np.full((48, 64, 3), 80, np.uint8).tobytes())
        heif.save(str(tmp_path / f"IMG_{i}.HEIC"), quality=90, exif=exif.tobytes())
        heics.append(tmp_path / f"IMG_{i}.HEIC")
    for files in (raws, heics):
        times, why = timing.folder_times(files, capture_time)
        assert why is None and times == pytest.approx([0, 0.5, 1.5])  # gaps 1 and 2 s


def test_a_raw_draft_is_the_half_size_blend(tmp_path):
    """--raw-draft: each 2x2 block of the sensor one pixel (libraw's half size): the
    same light at half the size, for previews; its flows are cached apart."""
    truth = burst(tmp_path / "burst", frames=3)
    draft = lexp.render(tmp_path / "burst", method="mean", raw_draft=True, cache=False)
    full = lexp.render(tmp_path / "burst", method="mean", cache=False)
    assert draft.linear.shape == (24, 32, 3) and full.linear.shape == (48, 64, 3)
    expected = np.mean(truth, axis=0)[1::2, 1::2]  # a 2x2 block's light, near its centre
    flat = (slice(14, 22), slice(2, 30))
    assert np.abs(draft.linear[flat] - expected[flat]).max() < 0.02
    for draft_or_not, size in ((), (48, 64, 3)), (("--raw-draft",), (24, 32, 3)):
        out = tmp_path / "out.jpg"  # one cache: the full-size flows are not the draft's
        proc = run_lexp("render", str(tmp_path / "burst"), "-o", str(out), "-m", "flow",
                        "--overwrite", *draft_or_not,
                        env={"LEXP_CACHE_DIR": str(tmp_path / "cache")})
        assert proc.returncode == 0, proc.stderr
        assert decode_rgb(out).shape == size


def test_running_out_of_memory_on_a_raw_says_how_much_it_needs(tmp_path):
    from lexp.errors import InputError
    from lexp.media import camera_files

    def runs_out(rawpy):
        raise MemoryError

    with pytest.raises(InputError, match=r"not enough memory to develop .*IMG\.CR2 \(it "
                                         r"needs about 3\.1 GiB\)"):
        camera_files._libraw(tmp_path / "IMG.CR2", runs_out, need=200 * 2**20 * 16)


def test_the_result_says_which_camera_and_lens_and_how_long_it_exposed(tmp_path):
    """A long exposure's EXIF: the camera and lens of its frames, and an ExposureTime
    that is the exposure the blend represents (its frames' span), not a frame's."""
    from PIL import Image

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(4):
        exif = Image.Exif()
        exif[271], exif[272] = "Fujifilm", "X-T5"
        exif.get_ifd(0x8769)[42036] = "XF16-55mmF2.8"
        Image.fromarray(np.full((32, 48, 3), 60 + 20 * i, np.uint8)).save(
            frames / f"DSCF{i:04d}.JPG", exif=exif)
    out = tmp_path / "long.jpg"
    proc = run_lexp("render", str(frames), "-o", str(out), "-m", "mean", "--fps", "2",
                    "--json")
    assert proc.returncode == 0, proc.stderr
    written = Image.open(out).getexif()
    assert (written[271], written[272]) == ("Fujifilm", "X-T5")
    sub = written.get_ifd(0x8769)
    assert sub[42036] == "XF16-55mmF2.8" and float(sub[33434]) == pytest.approx(2.0)
    assert json.loads(proc.stdout)["details"]["camera"]["model"] == "X-T5"
    # RAW frames: their TIFF tags (the synthetic DNG's make and model).
    burst(tmp_path / "raw", frames=2)
    tif = tmp_path / "raw.tif"
    proc = run_lexp("render", str(tmp_path / "raw"), "-o", str(tif), "-m", "mean")
    assert proc.returncode == 0, proc.stderr
    import tifffile

    with tifffile.TiffFile(tif) as written_tif:
        tags = written_tif.pages[0].tags
        assert (tags[271].value, tags[272].value) == ("lexp", "Synthetic")


def test_the_white_balance_can_be_the_cameras_daylight_or_grey_world(tmp_path):
    """--white-balance: as shot (the default), daylight, or auto (grey world), always
    one for the whole burst, from its first frame."""
    field = np.full((48, 64, 3), (0.2, 0.4, 0.1))
    (tmp_path / "b").mkdir()
    for i, neutral in enumerate(((0.5, 1.0, 0.8), (1.0, 1.0, 1.0))):
        synthetic.write_dng(tmp_path / "b" / f"IMG_{i}.DNG", field, neutral=neutral)
    shot = lexp.render(tmp_path / "b", method="mean", cache=False)
    daylight = lexp.render(tmp_path / "b", method="mean", cache=False,
                           white_balance="daylight")
    grey = lexp.render(tmp_path / "b", method="mean", cache=False, white_balance="auto")
    assert shot.linear[24, 32] == pytest.approx([0.4, 0.4, 0.125], abs=3e-3)
    assert daylight.linear[24, 32] == pytest.approx([0.2, 0.4, 0.1], abs=3e-3)
    r, g, b = grey.linear[24, 32]
    assert r == pytest.approx(g, rel=0.02) and b == pytest.approx(g, rel=0.02)
    proc = run_lexp("render", str(tmp_path / "b"), "-o", str(tmp_path / "o.jpg"),
                    "--white-balance", "tungsten")
    assert proc.returncode == 2 and "tungsten" in proc.stderr


def test_frames_from_two_cameras_are_refused(tmp_path):
    from PIL import Image

    (tmp_path / "frames").mkdir()
    for i, model in enumerate(("X-T5", "X-T5", "EOS R5")):
        exif = Image.Exif()
        exif[272] = model
        Image.fromarray(np.full((32, 48, 3), 90, np.uint8)).save(
            tmp_path / "frames" / f"IMG_{i}.JPG", exif=exif)
    proc = run_lexp("render", str(tmp_path / "frames"), "-o", str(tmp_path / "o.jpg"),
                    "-m", "mean")
    assert_clean_failure(proc, 1)
    assert "IMG_2.JPG was shot with a EOS R5" in proc.stderr and "X-T5" in proc.stderr


def test_a_display_p3_heic_is_brought_into_srgb(tmp_path):
    """iPhones' stills are Display P3: read as sRGB, a saturated green came out duller
    and shifted. The conversion is made in linear light; a grey stays a grey."""
    import pillow_heif

    from lexp import colour
    from lexp.media import read_image

    patch = np.zeros((48, 64, 3), np.uint8)
    patch[:, :32] = (60, 200, 90)  # a saturated P3 green: sRGB (0, 203, 73), red clipped
    patch[:, 32:] = (128, 128, 128)
    pillow_heif.from_bytes(mode="RGB", size=(64, 48), data=patch.tobytes()).save(
        str(tmp_path / "p3.heic"), quality=-1, color_primaries=12, transfer_characteristic=13,
        matrix_coefficients=0)
    frame = read_image(tmp_path / "p3.heic").astype(float) / 65535
    linear = colour.decode(np.array([60, 200, 90]) / 255, "srgb") @ colour.P3_TO_BT709.T
    expected = colour.encode(np.clip(linear, 0, 1), "srgb")
    assert frame[24, 10] == pytest.approx(expected, abs=1.5 / 255)
    # Read as sRGB it would be the codes themselves: several codes off.
    assert np.abs(frame[24, 10] - np.array([60, 200, 90]) / 255).max() > 5 / 255
    assert frame[24, 50] == pytest.approx([128 / 255] * 3, abs=1 / 255)
