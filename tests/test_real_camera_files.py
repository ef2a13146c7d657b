"""Real cameras' files (issue 41): ExifTool's test images (tests/data/camera_files/,
MANIFEST.md there), whose metadata is what the cameras wrote and whose image data is
mostly stripped. What must hold on them: the camera and the capture time read from each
format that carries them in a TIFF structure; the two libraw can still develop render
with their camera in the result; the cut-short ones fail as one line naming the file,
never a traceback, and never leave an output."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from lexp.media.camera_files import camera_of, raw_capture_time
from tests.conftest import assert_clean_failure, run_lexp

FILES = Path(__file__).parent / "data" / "camera_files"


@pytest.mark.parametrize(("name", "make", "model", "shot"), [
    ("CanonRaw.cr2", "Canon", "Canon EOS 350D DIGITAL", "2005:08:03 18:59:18"),
    ("DNG.dng", "Canon", "Canon EOS 350D DIGITAL", "2005:08:03 18:59:18"),
    ("Nikon.nef", "NIKON CORPORATION", "NIKON D70", "2004:06:09 16:02:35.00"),
    ("Panasonic.rw2", "Panasonic", "DMC-LX3", "2008:08:06 15:21:56"),
])
def test_the_camera_and_the_capture_time_are_read(name, make, model, shot):
    path = FILES / name
    assert camera_of(path, lens=False) == {"make": make, "model": model}
    assert raw_capture_time(path) == shot


@pytest.mark.parametrize("name", ["DNG.dng", "Panasonic.rw2"])
def test_a_burst_of_real_raw_files_renders_with_its_camera(tmp_path, name):
    """Two copies of the file are a burst: developed, blended, written with the camera
    in the JPEG's EXIF and nothing on stderr from the libraries (tifffile logs an error
    for RW2's TIFF variant; libraw prints on fd 2)."""
    burst = tmp_path / "burst"
    burst.mkdir()
    for n in range(2):
        shutil.copy(FILES / name, burst / f"IMG_{n}{Path(name).suffix}")
    out = tmp_path / "out.jpg"
    proc = run_lexp("render", str(burst), "-o", str(out), "-m", "mean", "--raw-draft",
                    timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "tifffile" not in proc.stderr and "RAW format" not in proc.stderr
    exif = Image.open(out).getexif()
    expected = camera_of(FILES / name, lens=False)
    assert (exif.get(271), exif.get(272)) == (expected["make"], expected["model"])


@pytest.mark.parametrize("name", ["CanonRaw.cr2", "CanonRaw.cr3", "FujiFilm.raf",
                                  "Nikon.nef", "QuickTime.heic"])
def test_a_cut_short_camera_file_is_one_line_naming_it(tmp_path, name):
    out = tmp_path / "out.jpg"
    proc = run_lexp("render", str(FILES / name), "-o", str(out), "-m", "mean")
    assert_clean_failure(proc, 1)
    assert name in proc.stderr
    assert not out.exists()
