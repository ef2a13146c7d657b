"""Writing the result image, with the settings that made it embedded, and reading them back.

Input: float32 H×W×3 RGB *encoded* values in [0, 1] (already tone-mapped and passed
through the transfer function, see ``colour``). Quantised with rounding to 8 or 16 bits.

Formats and where the settings (a JSON object) live:

- JPEG (8-bit): a COM segment right after SOI, ``lexp:`` + JSON (exiftool shows it as
  Comment). OpenCV (libjpeg-turbo) encodes, with 4:4:4 chroma at quality 90 and up.
- PNG (8 or 16-bit): an iTXt chunk with keyword ``lexp`` before IEND. OpenCV encodes.
- TIFF (16-bit by default, or 8): the ImageDescription tag, via tifffile (deflate).

The chunk surgery below follows the file format specs (JPEG ITU T.81 B.2.4.5; PNG
ISO 15948 §11.3.4.5) and is a few lines, so we need no metadata library for it.
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
    return bit_depth


def quantise(encoded: np.ndarray, bit_depth: int) -> np.ndarray:
    """float [0, 1] -> uint8 or uint16 with rounding (values outside are clipped)."""
    top = 255 if bit_depth == 8 else 65535
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    x = np.clip(encoded, 0.0, 1.0) * top
    return np.rint(x, out=x).astype(dtype)


def encode_image(encoded: np.ndarray, fmt: str, *, bit_depth: int | None = None,
                 quality: int = 95, settings: dict[str, Any] | None = None) -> bytes:
    """Encode an H×W×3 float image in [0, 1] to file bytes, with ``settings`` embedded."""
    import cv2

    depth = resolve_bit_depth(fmt, bit_depth)
    pixels = quantise(encoded, depth)
    text = json.dumps(settings or {}, sort_keys=True, separators=(",", ":"))
    if fmt == "tiff":
        import tifffile

        buf = io.BytesIO()
        tifffile.imwrite(buf, pixels, photometric="rgb", compression="zlib",
                         description=f"{METADATA_KEY}:{text}", metadata=None)
        return buf.getvalue()
    bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    if fmt == "jpeg":
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
        # Light trails are thin and saturated: 4:2:0 chroma would halve their colour
        # resolution. Keep full chroma at high quality, as photo editors do.
        if quality >= 90 and hasattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR"):
            params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
        ok, data = cv2.imencode(".jpg", bgr, params)
        return _jpeg_with_comment(data.tobytes(), f"{METADATA_KEY}:{text}") if ok else b""
    if fmt == "png":
        ok, data = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 6])
        return _png_with_itxt(data.tobytes(), METADATA_KEY, text) if ok else b""
    raise UsageError(f"unknown image format {fmt!r}", hint="choose jpeg, png or tiff")


def _jpeg_with_comment(jpeg: bytes, comment: str) -> bytes:
    payload = comment.encode("utf-8")
    if len(payload) > 65533:
        payload = payload[:65533]  # a COM segment's length field is 16 bits
    segment = b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]  # right after SOI (FF D8)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_with_itxt(png: bytes, keyword: str, text: str) -> bytes:
    # iTXt: keyword, NUL, compression flag, method, language tag NUL, translated kw NUL, text
    data = keyword.encode("latin-1") + b"\x00\x00\x00\x00\x00" + text.encode("utf-8")
    iend = png.rfind(b"IEND") - 4
    return png[:iend] + _png_chunk(b"iTXt", data) + png[iend:]


def is_lexp_output(path: str | Path) -> bool:
    """True when the image carries the settings lexp embeds in what it writes. Cheap: it
    reads where lexp puts them (a JPEG's first segment, a PNG's last 64 KiB, a TIFF's
    first page's description), not the whole file, so a folder of frames can be
    screened before it is read."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
            if head[:4] == b"\xff\xd8\xff\xfe":
                return head[6:6 + len(METADATA_KEY) + 1] == f"{METADATA_KEY}:".encode()
            if head[:8] == b"\x89PNG\r\n\x1a\n":
                fh.seek(0, 2)
                fh.seek(max(0, fh.tell() - (64 << 10)))
                return b"iTXt" + METADATA_KEY.encode() + b"\x00" in fh.read()
            if head[:4] in (b"II*\x00", b"MM\x00*"):
                import tifffile

                fh.seek(0)
                with tifffile.TiffFile(fh) as tif:
                    text = tif.pages[0].description or ""
                return text.startswith(f"{METADATA_KEY}:")
    except Exception:  # noqa: BLE001 - unreadable or damaged: not ours; reading says why
        return False
    return False


def read_settings(path: str | Path) -> dict[str, Any] | None:
    """The settings lexp embedded in an image it wrote, or None if there are none."""
    data = Path(path).read_bytes()
    text = None
    if data[:2] == b"\xff\xd8":
        text = _jpeg_comment(data)
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        text = _png_itxt(data, METADATA_KEY)
        text = None if text is None else f"{METADATA_KEY}:{text}"
    elif data[:4] in (b"II*\x00", b"MM\x00*"):
        import tifffile

        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            text = tif.pages[0].description
    prefix = f"{METADATA_KEY}:"
    if not text or not text.startswith(prefix):
        return None
    try:
        return json.loads(text[len(prefix):])
    except json.JSONDecodeError:
        return None


def _jpeg_comment(data: bytes) -> str | None:
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: no more header segments
            return None
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if marker == 0xFE:
            body = data[pos + 4:pos + 2 + length].decode("utf-8", "replace")
            if body.startswith(f"{METADATA_KEY}:"):
                return body
        pos += 2 + length
    return None


def _png_itxt(data: bytes, keyword: str) -> str | None:
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"iTXt" and body.startswith(keyword.encode("latin-1") + b"\x00"):
            rest = body[len(keyword) + 1:]
            compressed = rest[0] == 1
            rest = rest[2:]
            rest = rest[rest.index(b"\x00") + 1:]  # language tag
            rest = rest[rest.index(b"\x00") + 1:]  # translated keyword
            return (zlib.decompress(rest) if compressed else rest).decode("utf-8")
        if kind == b"IEND":
            break
        pos += 12 + length
    return None
