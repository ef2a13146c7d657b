import io

import cv2
import numpy as np
import pytest
import tifffile

from lexp import paths, stills
from lexp.errors import OutputError, UsageError

SETTINGS = {"method": "mean", "input": "clip ü.mp4", "frames_used": 3, "nested": {"a": [1, 2]}}


def gradient(h=24, w=40):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x / (w - 1), y / (h - 1), (x + y) / (w + h - 2)], axis=-1).astype(np.float32)


@pytest.mark.parametrize("fmt,depth,suffix", [
    ("jpeg", 8, ".jpg"), ("png", 8, ".png"), ("png", 16, ".png"), ("tiff", 16, ".tif"),
    ("tiff", 8, ".tif"),
])
def test_encode_round_trip_with_settings(tmp_path, fmt, depth, suffix):
    img = gradient()
    data = stills.encode_image(img, fmt, bit_depth=depth, quality=98, settings=SETTINGS)
    path = tmp_path / f"out{suffix}"
    path.write_bytes(data)
    assert stills.read_settings(path) == SETTINGS
    decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == (np.uint8 if depth == 8 else np.uint16)
    top = 255 if depth == 8 else 65535
    rgb = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB).astype(np.float64) / top
    tolerance = 3 / 255 if fmt == "jpeg" else 0.5 / top + 1e-9  # JPEG at q98, 4:4:4
    assert np.abs(rgb - img).max() <= tolerance


def test_tiff_is_rgb_with_the_settings_as_description():
    data = stills.encode_image(gradient(), "tiff", settings=SETTINGS)
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages[0]
        assert page.photometric == tifffile.PHOTOMETRIC.RGB and page.dtype == np.uint16
        assert page.description.startswith("lexp:")


def test_images_without_settings_read_as_none(tmp_path):
    path = tmp_path / "plain.png"
    cv2.imwrite(str(path), np.zeros((4, 4, 3), np.uint8))
    assert stills.read_settings(path) is None


def test_quantise_rounds_and_clips():
    x = np.array([-0.2, 0.0, 0.5 / 255, 0.4999, 1.0, 1.7], np.float32)
    assert stills.quantise(x, 8).tolist() == [0, 0, 0, 127, 255, 255]  # round half to even
    assert stills.quantise(np.float32([1.0]), 16).tolist() == [65535]


def test_formats_from_extensions_and_errors():
    assert stills.format_for("a.JPG", None) == "jpeg"
    assert stills.format_for("a.tiff", None) == "tiff"
    assert stills.format_for("a", "png") == "png"
    assert stills.format_for("a.png", "png") == "png"
    with pytest.raises(UsageError, match="is a JPEG name"):  # PNG bytes in a .jpg
        stills.format_for("a.jpg", "png")
    with pytest.raises(UsageError, match="unsupported"):
        stills.format_for("a.gif", None)
    with pytest.raises(UsageError, match="format"):
        stills.format_for("noext", None)
    with pytest.raises(UsageError, match="8-bit only"):
        stills.resolve_bit_depth("jpeg", 16)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.jpg"
    with pytest.raises(KeyboardInterrupt):
        with paths.atomic_write(target) as fh:
            fh.write(b"half an image")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    paths.write_bytes_atomic(target, b"whole")
    assert target.read_bytes() == b"whole" and len(list(tmp_path.iterdir())) == 1


def test_atomic_write_reports_a_full_disk(tmp_path, monkeypatch):
    import errno
    import os

    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError, match="no space left"):
        paths.write_bytes_atomic(tmp_path / "out.jpg", b"x" * 100)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_gives_normal_permissions(tmp_path):
    import os

    target = tmp_path / "out.bin"
    paths.write_bytes_atomic(target, b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
