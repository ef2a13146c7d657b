"""Writing the result image, with the settings that made it embedded, and reading them back.

Input: float32 H×W×3 RGB *encoded* values in [0, 1] (already tone-mapped and passed
through the transfer function, see ``colour``). Quantised with rounding to 8 or 16 bits.

Formats and where the settings (a JSON object) live:

- JPEG (8-bit): a COM segment, ``lexp:`` + JSON (exiftool shows it as Comment). Pillow
  (libjpeg-turbo) encodes, with 4:4:4 chroma at quality 90 and up.
- PNG: an iTXt chunk with keyword ``lexp`` before the image data. Pillow encodes 8-bit;
  it writes no 16-bit RGB, so OpenCV encodes those and the chunk is added here.
- TIFF (16-bit by default, or 8): the ImageDescription tag, via tifffile (deflate):
  neither Pillow nor OpenCV writes that tag for 16-bit RGB.

Reading back goes through the same libraries, headers only where they allow.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from lexp.errors import UsageError

METADATA_KEY = "lexp"
EXTENSIONS = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".tif": "tiff", ".tiff": "tiff"}
DEFAULT_SUFFIX = {"jpeg": ".jpg", "png": ".png", "tiff": ".tif"}


def format_for(path: str | Path | None, explicit: str | None) -> str:
    """The image format: ``explicit`` if given, else from the extension of ``path``."""
    suffix = Path(str(path)).suffix.lower() if path else ""
    if explicit:
        named = EXTENSIONS.get(suffix)
        if named is not None and named != explicit:  # PNG bytes in a .jpg fool every viewer
            raise UsageError(f"{path} is a {named.upper()} name but --format is {explicit}",
                             hint=f"name it {Path(str(path)).stem}{DEFAULT_SUFFIX[explicit]}, "
                                  "or drop --format")
        return explicit
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    if not suffix:
        raise UsageError(f"cannot tell the image format of {path}",
                         hint="add an extension (.jpg, .png, .tif) or pass --format")
    raise UsageError(f"unsupported image extension {suffix!r} in {path}",
                     hint="use .jpg, .png or .tif, or pass --format")


def resolve_bit_depth(fmt: str, bit_depth: int | None) -> int:
    if bit_depth is None:
        return 16 if fmt == "tiff" else 8
    if fmt == "jpeg" and bit_depth != 8:
        raise UsageError("JPEG is 8-bit only", hint="use a .png or .tif output for 16 bits")
    if bit_depth == 32 and fmt != "tiff":
        raise UsageError(f"--bit-depth 32 is a float TIFF in linear light, not {fmt}",
                         hint="write to a .tif for the linear master")
    return bit_depth


def quantise(encoded: np.ndarray, bit_depth: int) -> np.ndarray:
    """float [0, 1] -> uint8 or uint16 with rounding (values outside are clipped)."""
    top = 255 if bit_depth == 8 else 65535
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    x = np.clip(encoded, 0.0, 1.0) * top
    return np.rint(x, out=x).astype(dtype)


def encode_image(encoded: np.ndarray, fmt: str, *, bit_depth: int | None = None,
                 quality: int = 95, settings: dict[str, Any] | None = None,
                 exif: dict[str, Any] | None = None) -> bytes:
    """Encode an H×W×3 float image in [0, 1] to file bytes, with ``settings`` embedded.
    ``bit_depth`` 32 (TIFF): ``encoded`` is written as it is, float32 (linear light, any
    range: :meth:`lexp.image.Image.encode`). ``exif``: make, model, lens, software,
    exposure_s, written as EXIF where the format carries it (JPEG, 8-bit PNG, TIFF)."""
    depth = resolve_bit_depth(fmt, bit_depth)
    pixels = np.ascontiguousarray(encoded, np.float32) if depth == 32 else \
        quantise(encoded, depth)
    text = json.dumps(settings or {}, sort_keys=True, separators=(",", ":"))
    if fmt == "tiff":
        import tifffile

        buf = io.BytesIO()
        tifffile.imwrite(buf, pixels, photometric="rgb", compression="zlib",
                         description=f"{METADATA_KEY}:{text}", metadata=None,
                         extratags=_tiff_tags(exif or {}))
        return buf.getvalue()
    if fmt == "png" and depth == 16:
        return _png16_with_itxt(pixels, text)
    if fmt not in ("jpeg", "png"):
        raise UsageError(f"unknown image format {fmt!r}", hint="choose jpeg, png or tiff")
    from PIL import Image, PngImagePlugin

    buf = io.BytesIO()
    if fmt == "jpeg":
        comment = f"{METADATA_KEY}:{text}".encode()
        # Light trails are thin and saturated: 4:2:0 chroma would halve their colour
        # resolution. Keep full chroma (subsampling 0) at high quality, as photo editors do.
        Image.fromarray(pixels).save(buf, "JPEG", quality=quality,
                                     subsampling=0 if quality >= 90 else 2,
                                     comment=comment[:65533],  # a COM length is 16 bits
                                     exif=_pillow_exif(exif or {}))
    else:
        info = PngImagePlugin.PngInfo()
        info.add_itxt(METADATA_KEY, text)
        Image.fromarray(pixels).save(buf, "PNG", pnginfo=info, compress_level=6,
                                     exif=_pillow_exif(exif or {}))
    return buf.getvalue()


_EXIF_IFD0 = {"make": 271, "model": 272, "software": 305}
_EXIF_LENS, _EXIF_EXPOSURE_TIME = 42036, 33434


def _exposure_fraction(seconds: float) -> tuple[int, int]:
    """An exposure time as photographers write it: 1/250 below a second, 4/1 above."""
    if seconds >= 1:
        return round(seconds * 10), 10
    return 1, max(1, round(1 / seconds))


def _pillow_exif(tags: dict[str, Any]):
    from PIL import Image, TiffImagePlugin

    exif = Image.Exif()
    for key, tag in _EXIF_IFD0.items():
        if tags.get(key):
            exif[tag] = str(tags[key])
    sub = exif.get_ifd(0x8769)
    if tags.get("lens"):
        sub[_EXIF_LENS] = str(tags["lens"])
    if tags.get("exposure_s"):
        sub[_EXIF_EXPOSURE_TIME] = TiffImagePlugin.IFDRational(
            *_exposure_fraction(tags["exposure_s"]))
    return exif


def _tiff_tags(tags: dict[str, Any]) -> list:
    """tifffile's extratags: the camera and software in IFD0 (tifffile writes no EXIF
    sub-IFD), the exposure time there too, where EXIF readers find it."""
    out = [(tag, "s", 0, str(tags[key]), True) for key, tag in _EXIF_IFD0.items()
           if tags.get(key) and key != "software"]
    if tags.get("exposure_s"):
        out.append((_EXIF_EXPOSURE_TIME, "2I", 1, _exposure_fraction(tags["exposure_s"]),
                    True))
    return out


def _png16_with_itxt(pixels: np.ndarray, text: str) -> bytes:
    """A 16-bit RGB PNG (OpenCV encodes it: Pillow writes no 16-bit RGB) with the
    settings in an iTXt chunk before the image data, where Pillow's header read finds
    it. iTXt: keyword, NUL, compression flag, method, language tag NUL, translated
    keyword NUL, UTF-8 text (ISO 15948 §11.3.4.5)."""
    import cv2

    ok, data = cv2.imencode(".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        return b""
    png = data.tobytes()
    body = METADATA_KEY.encode("latin-1") + b"\x00\x00\x00\x00\x00" + text.encode("utf-8")
    chunk = struct.pack(">I", len(body)) + b"iTXt" + body + \
        struct.pack(">I", zlib.crc32(b"iTXt" + body))
    idat = png.find(b"IDAT") - 4
    return png[:idat] + chunk + png[idat:]


def is_lexp_output(path: str | Path) -> bool:
    """True when the image carries the settings lexp embeds in what it writes. Cheap: it
    reads the header (where lexp puts them), not the pixels, so a folder of frames can
    be screened before it is read."""
    try:
        return _embedded_text(path, header_only=True) is not None
    except Exception:  # noqa: BLE001 - unreadable or damaged: not ours; reading says why
        return False


def read_settings(path: str | Path) -> dict[str, Any] | None:
    """The settings lexp embedded in an image it wrote, or None if there are none."""
    text = _embedded_text(path, header_only=False)
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _embedded_text(path: str | Path, header_only: bool) -> str | None:
    """The settings' JSON text in a lexp image: a JPEG comment or PNG iTXt (Pillow reads
    the header; ``header_only=False`` also reads text chunks after the pixels, where
    earlier versions of lexp put them), or the TIFF ImageDescription (tifffile)."""
    prefix = f"{METADATA_KEY}:"
    with open(path, "rb") as fh:
        magic = fh.read(4)
        fh.seek(0)
        if magic in (b"II*\x00", b"MM\x00*"):
            import tifffile

            with tifffile.TiffFile(fh) as tif:
                text = tif.pages[0].description or ""
            return text[len(prefix):] if text.startswith(prefix) else None
        from PIL import Image

        with Image.open(fh) as image:
            if image.format == "JPEG":
                comment = image.info.get("comment", b"")
                comment = comment.decode("utf-8", "replace") if isinstance(comment, bytes) \
                    else str(comment)
                return comment[len(prefix):] if comment.startswith(prefix) else None
            if image.format == "PNG":
                text = image.info.get(METADATA_KEY)
                if text is None and not header_only:
                    text = image.text.get(METADATA_KEY)  # reads to the end of the file
                return None if text is None else str(text)
    return None
