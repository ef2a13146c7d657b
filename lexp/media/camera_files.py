"""What cameras and phones write: RAW files (through libraw, by rawpy) and HEIC/HEIF
stills (through libheif, by pillow-heif).

- **RAW** (DNG, CR2, CR3, NEF, ARW, RAF, ORF, RW2, ...): demosaiced to *linear* light in
  sRGB's primaries, 16 bits, no automatic brightening, highlights that clip in the sensor
  kept white (libraw's clip mode), turned upright as the file says. Every frame of a
  clip is developed with one white balance, the first frame's as-shot one, so a burst
  does not flicker in colour. The frames are linear already: a clip of them has the
  ``linear`` transfer (:mod:`lexp.colour`), which the blend does not decode and the
  picture is written from with the sRGB curve.
- **HEIC/HEIF** (iPhones, many Android phones and cameras): decoded with their full depth
  (10-bit stills become uint16, not squeezed to 8), as sRGB-encoded frames.

Both libraries are imported when such a file is read, so ``lexp --help`` and video
renders pay nothing for them.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from lexp.errors import InputError

# libraw's formats (its list is longer; these are the ones cameras write today).
RAW_EXTENSIONS = frozenset(
    ".dng .cr2 .cr3 .crw .nef .nrw .arw .srf .sr2 .raf .orf .rw2 .pef .srw .x3f .3fr "
    ".iiq .erf .kdc .dcr .mrw .rwl .raw".split())
HEIF_EXTENSIONS = frozenset(".heic .heif .hif".split())


def is_raw(path: Path) -> bool:
    return path.suffix.lower() in RAW_EXTENSIONS


def is_heif(path: Path) -> bool:
    return path.suffix.lower() in HEIF_EXTENSIONS


def raw_white_balance(path: Path, mode: str = "camera") -> list[float]:
    """A RAW file's white balance as libraw's four channel multipliers (R, G, B, G2):
    ``camera``, the camera's as-shot one (daylight's where it wrote none); ``daylight``,
    the camera's daylight balance (from its colour matrix); ``auto``, libraw's grey world
    on this frame (developed at half size for it); a colour temperature in kelvin
    (``"3200"``): the balance that makes a black body at it white
    (:func:`kelvin_white_balance`)."""
    from lexp.config import kelvin_of

    def balance(rawpy) -> list[float]:
        with rawpy.imread(str(path)) as raw:  # (its properties unpack the mosaic: here)
            shot = [float(m) for m in raw.camera_whitebalance]
            if mode == "auto":
                raw.postprocess(use_auto_wb=True, half_size=True)
                shot = [float(m) for m in raw.auto_whitebalance]
            if mode == "daylight" or not any(shot[:3]):
                shot = [float(m) for m in raw.daylight_whitebalance]
            if (kelvin := kelvin_of(mode)) is not None:
                shot = kelvin_white_balance(kelvin, np.array(raw.color_matrix)[:, :3],
                                            [float(m) for m in raw.daylight_whitebalance[:3]])
            return shot

    shot = _libraw(path, balance)
    if not shot[3]:
        shot[3] = shot[1]  # three-colour cameras: the second green is the first
    return shot


def kelvin_white_balance(kelvin: float, rgb_cam: np.ndarray,
                         daylight: list[float]) -> list[float]:
    """libraw's multipliers (R, G, B, G2; green 1) that turn a black body at ``kelvin``
    white, for a camera whose ``rgb_cam`` (3×3, libraw's ``color_matrix``) takes its
    values, balanced by its ``daylight`` multipliers, to linear sRGB.

    The camera's response to that light is found by running libraw's own conversion
    backwards: the light's linear sRGB (:func:`lexp.colour.white_in_srgb`) through the
    inverse matrix is its daylight-balanced camera value, and undoing the daylight
    multipliers gives the raw one; its inverse balances it. libraw gives one matrix (made
    for D65), not the DNG's pair interpolated by temperature, so far from daylight this
    is as close as the camera's D65 matrix is there, like most raw developers' fallback."""
    from lexp import colour

    balanced = np.linalg.solve(rgb_cam, colour.white_in_srgb(kelvin))
    response = np.maximum(balanced / np.asarray(daylight), 1e-6)
    multipliers = (1.0 / response) / (1.0 / response[1])
    return [float(m) for m in multipliers] + [float(multipliers[1])]


def read_raw(path: Path, white_balance: list[float] | None = None,
             half_size: bool = False) -> np.ndarray:
    """A RAW file developed to linear light: uint16 H×W×3 RGB in sRGB's primaries, 65535
    the sensor's white after the white balance (``white_balance``: libraw's four
    multipliers; None: the file's own as-shot balance). ``half_size``: each 2×2 block of
    the mosaic one pixel, no demosaicing (a quarter of the pixels, several times
    faster: previews)."""
    options = {"user_wb": white_balance} if white_balance is not None else \
        {"use_camera_wb": True}
    raw = _libraw(path, lambda rawpy: rawpy.imread(str(path)))
    with raw:
        # libraw holds the mosaic, a 4-channel 16-bit image and the 3-channel output
        need = raw.sizes.raw_width * raw.sizes.raw_height * 16
        return _libraw(path, need=need, call=lambda rawpy: raw.postprocess(
            gamma=(1, 1), no_auto_bright=True, output_bps=16,
            # the white level as the camera says, every frame alike (libraw would lower
            # it to each frame's brightest value: a burst would flicker)
            adjust_maximum_thr=0.0, output_color=rawpy.ColorSpace.sRGB,
            highlight_mode=rawpy.HighlightMode.Clip, half_size=half_size, **options))


_STDERR_TAKEN = threading.Lock()


def _libraw(path: Path, call, need: int | None = None):
    """``call(rawpy)``'s result, with libraw's failures as one InputError naming ``path``
    (``need``: the bytes it takes, said when memory runs out).
    libraw prints its own messages ("Unexpected end of file") on the process's stderr,
    from C: they are caught while it runs, put in our error, and anything caught from a
    call that succeeded is passed on."""
    import os
    import sys
    import tempfile

    import rawpy

    sys.stderr.flush()
    failure = None
    # One caller at a time (a folder's frames are decoded on threads): fd 2 is the
    # process's, and two redirections interleaved would leave it pointing at a temp file.
    with _STDERR_TAKEN, tempfile.TemporaryFile() as caught:
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            result = call(rawpy)
        except (rawpy.LibRawError, OSError, MemoryError) as err:
            failure = err
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        caught.seek(0)
        said = caught.read().decode(errors="replace").strip()
    if failure is not None:
        raise _raw_error(path, failure, said, need)
    if said:
        os.write(2, (said + "\n").encode())
    return result


def _raw_error(path: Path, err: Exception, said: str = "",
               need: int | None = None) -> InputError:
    import rawpy

    version = ".".join(str(v) for v in rawpy.libraw_version)
    why = said.splitlines()[-1].split(": ")[-1] if said else type(err).__name__
    if isinstance(err, rawpy.LibRawFileUnsupportedError):
        return InputError(f"cannot read {path}: libraw {version} does not know this file "
                          "or its camera, or the file is cut short",
                          hint="re-copy it from the card; for a camera newer than libraw, "
                               "convert it to DNG (Adobe DNG Converter) or update rawpy")
    if isinstance(err, MemoryError) or "memory" in said.lower():
        amount = f" (it needs about {need / 2**30:.1f} GiB)" if need else ""
        return InputError(f"not enough memory to develop {path}{amount}",
                          hint="close other programs, or render fewer frames at a time")
    return InputError(f"cannot decode RAW {path}: the file is damaged or truncated "
                      f"(libraw {version}: {why})",
                      hint="re-copy it from the card, or remove it")


def capture_time(path: Path) -> float | None:
    """When an image frame was shot (seconds, for lexp.timing): EXIF through Pillow, RAW
    files through their own tags (:func:`raw_capture_time`), HEIC through pillow-heif's
    opener for Pillow."""
    from lexp import timing

    if is_raw(path):  # Pillow cannot open RAW files
        stamp, _, fraction = (raw_capture_time(path) or "").partition(".")
        return timing.parse_exif_time(stamp, fraction)
    if is_heif(path):
        import pillow_heif

        pillow_heif.register_heif_opener()
    return timing.exif_time(path)


def pillow_exif(path: Path):
    """An image file's EXIF as Pillow reads it (HEIC through pillow-heif's opener), or None
    when it cannot be opened (reading the frame says why)."""
    from PIL import Image

    if is_heif(path):
        import pillow_heif

        pillow_heif.register_heif_opener()
    try:
        with Image.open(path) as image:
            return image.getexif()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def exposure_time(path: Path) -> float | None:
    """How long an image frame was exposed (seconds, EXIF ExposureTime), or None: RAW
    files through their TIFF tags, the others through Pillow (HEIC by pillow-heif)."""
    if is_raw(path):
        tags = _raw_tiff_tags(path)
        value = tags[1].get("ExposureTime") if tags is not None else None
        if isinstance(value, tuple) and len(value) == 2 and value[1]:
            value = value[0] / value[1]
    else:
        exif = pillow_exif(path)
        value = exif.get_ifd(0x8769).get(33434) if exif is not None else None
    try:
        seconds = float(value) if value is not None else None
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return seconds if seconds and seconds > 0 else None


def camera_of(path: Path, lens: bool = True) -> dict[str, str]:
    """The camera (``make``, ``model``) and ``lens`` that shot an image frame, from its
    EXIF (RAW files: their TIFF tags, and libraw's lens unless ``lens`` is False), as far
    as it says; {}."""
    found: dict[str, str] = {}
    if is_raw(path):
        ifd0, exif = _raw_tiff_tags(path) or ({}, {})
        for key, value in (("make", ifd0.get(271)), ("model", ifd0.get(272)),
                           ("lens", exif.get("LensModel"))):
            if value:
                found[key] = str(value)
        if lens and "lens" not in found:  # not TIFF inside, or no lens there: libraw's
            try:
                with _libraw(path, lambda rawpy: rawpy.imread(str(path))) as raw:
                    # libraw unpacks the mosaic to tell the lens: a damaged file fails here
                    if model := _libraw(path, lambda rawpy: raw.lens.model):
                        found["lens"] = model
            except InputError:
                pass  # reading the frame says why
    elif (exif := pillow_exif(path)) is not None:
        lens = exif.get_ifd(0x8769).get(42036)
        for key, value in (("make", exif.get(271)), ("model", exif.get(272)),
                           ("lens", lens)):
            if value:
                found[key] = str(value)
    return {k: v.strip("\x00 ") for k, v in found.items() if v.strip("\x00 ")}


def _raw_tiff_tags(path: Path) -> tuple[dict, dict] | None:
    """(IFD0's Make, Model and DateTime by tag number; the EXIF IFD by name, as tifffile
    reads it) of a RAW file with a TIFF structure (DNG, CR2, NEF, ARW, PEF: Pillow
    cannot open those); None for one without (CR3, RAF, RW2, ORF)."""
    import logging

    import tifffile

    # tifffile logs an error for the RAW variants of TIFF it cannot decode (RW2's "RAW
    # format 0x0055 not supported"), yet reads their tags, all that is wanted here.
    quiet = logging.getLogger("tifffile")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        with tifffile.TiffFile(path) as tif:
            tags = tif.pages[0].tags
            ifd0 = {tag: tags[tag].value for tag in (271, 272, 306) if tag in tags}
            exif = tags.get(34665)  # the EXIF IFD, a dict
            return ifd0, exif.value if exif is not None and isinstance(exif.value, dict) \
                else {}
    except (tifffile.TiffFileError, OSError, ValueError, KeyError, IndexError):
        return None
    finally:
        quiet.setLevel(level)


def raw_capture_time(path: Path) -> str | None:
    """When a RAW file was shot, as EXIF writes it ('2026:12:07 22:00:01', with '.25' when
    it gives sub-seconds), or None: from its TIFF structure where it has one (DNG, CR2,
    NEF, ARW, PEF: Pillow cannot open those, tifffile reads their tags; libraw would read
    the same tags), else libraw's capture time (whole seconds)."""
    tags = _raw_tiff_tags(path)
    if tags is not None:
        ifd0, exif = tags
        stamp = exif.get("DateTimeOriginal") or ifd0.get(306)
        if not stamp:
            return None
        subsec = exif.get("SubsecTimeOriginal")
        return str(stamp).strip("\x00 ") + (f".{str(subsec).strip()}" if subsec else "")
    try:  # not TIFF inside (CR3, RAF, RW2, ORF): libraw's, which unpacks the mosaic for it
        with _libraw(path, lambda rawpy: rawpy.imread(str(path))) as raw:
            shot = _libraw(path, lambda rawpy: raw.other.timestamp)
    except InputError:
        return None
    return shot.strftime("%Y:%m:%d %H:%M:%S") if shot.year > 1970 else None


def read_heif(path: Path) -> np.ndarray:
    """A HEIC/HEIF still: H×W×3 RGB, uint8 for 8-bit files and uint16 (scaled to 16 bits)
    for 10- and 12-bit ones, turned upright as it says (libheif applies the file's
    rotation and mirroring)."""
    import pillow_heif

    try:
        heif = pillow_heif.open_heif(str(path), convert_hdr_to_8bit=False)
        bits = int(heif.info.get("bit_depth", 8))
        pixels = np.asarray(heif)[..., :3]
    except (ValueError, RuntimeError, OSError) as err:
        raise InputError(f"cannot decode HEIC {path}: {err}",
                         hint="re-copy the file, or export it as JPEG") from None
    if pixels.dtype == np.uint16 and bits < 16:
        # libheif hands 10-bit values up in 16-bit words (v << 6): white to 65535.
        top = (1 << bits) - 1
        pixels = ((pixels >> (16 - bits)).astype(np.uint32) * 65535 // top).astype(np.uint16)
    if _is_display_p3(heif.info):
        pixels = _p3_to_srgb(pixels)
    return np.ascontiguousarray(pixels)


def _is_display_p3(info: dict) -> bool:
    """Whether a HEIF still's colours are Display P3's (iPhones'): its nclx colour
    primaries 12 (ITU-T H.273: P3-D65), or an ICC profile that names Display P3."""
    nclx = info.get("nclx_profile") or {}
    if nclx.get("color_primaries") == 12:
        return True
    icc = info.get("icc_profile") or b""
    return b"Display P3" in icc or b"D\x00i\x00s\x00p\x00l\x00a\x00y\x00 \x00P\x003" in icc


def _p3_to_srgb(pixels: np.ndarray) -> np.ndarray:
    """Display P3 (sRGB's curve) to sRGB's primaries, in linear light; colours outside
    sRGB's gamut clipped to it. uint16 out: the conversion's precision kept."""
    from lexp import colour

    top = np.iinfo(pixels.dtype).max
    linear = colour.decode(pixels / top, "srgb").astype(np.float32)
    linear = np.clip(linear @ colour.P3_TO_BT709.T, 0.0, 1.0)
    return np.rint(colour.encode(linear, "srgb") * 65535.0).astype(np.uint16)
