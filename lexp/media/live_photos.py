"""Live Photos: an iPhone's still (HEIC, or JPEG when exported so) and the ~3 s video shot
around it, two files that Apple ties together by a *content identifier*, a UUID written
in both: in the still's Apple MakerNote (tag 0x0011) and in the video's QuickTime
metadata (``com.apple.quicktime.content.identifier``). Exports and phones name the pair
alike (IMG_1234.HEIC, IMG_1234.MOV), but renamed copies and folders merged from two
phones do not keep that, so the identifier decides wherever both files carry one, and
the name where either does not.

Only the files' metadata is read here (a few KB each): no decoder is involved.
"""

from __future__ import annotations

import struct
from pathlib import Path

LIVE_PHOTO_STILLS = (".heic", ".heif", ".jpg", ".jpeg")
LIVE_PHOTO_VIDEOS = (".mov", ".mp4")
CONTENT_IDENTIFIER_KEY = b"com.apple.quicktime.content.identifier"
_APPLE_NOTE = b"Apple iOS\x00"
_CONTENT_IDENTIFIER_TAG = 0x0011  # in Apple's MakerNote (exiftool: ContentIdentifier)


def live_photo_video(still: Path) -> Path | None:
    """The video of the Live Photo whose still is ``still``, among the videos beside it:
    the one carrying the still's content identifier, else the one of its name (in any
    case) unless that one carries another identifier; None when there is none."""
    if still.suffix.lower() not in LIVE_PHOTO_STILLS or not still.parent.is_dir():
        return None
    videos = [p for p in still.parent.iterdir()
              if p.suffix.lower() in LIVE_PHOTO_VIDEOS and p.is_file()]
    return pair_stills_with_videos([still], videos).get(still)


def pair_stills_with_videos(stills: list[Path], videos: list[Path]) -> dict[Path, Path]:
    """Live Photos among some stills and videos, as {still: video}: pairs sharing a
    content identifier, then, of the files left, a still and a video of the same name
    when at most one of the two carries an identifier (two different identifiers say
    they are not one Live Photo, whatever their names)."""
    stills = [p for p in stills if p.suffix.lower() in LIVE_PHOTO_STILLS]
    videos = [p for p in videos if p.suffix.lower() in LIVE_PHOTO_VIDEOS]
    if not stills or not videos:
        return {}
    still_ids = {p: still_content_identifier(p) for p in stills}
    # The videos' identifiers matter only where a still has one.
    video_ids = {p: video_content_identifier(p) for p in videos} \
        if any(still_ids.values()) else {}
    video_by_id = {i: p for p, i in video_ids.items() if i}
    pairs = {still: video_by_id[i] for still, i in still_ids.items() if i in video_by_id}
    taken = set(pairs.values())
    for still in stills:
        if still in pairs:
            continue
        for video in videos:
            ids = {still_ids[still], video_ids.get(video)} - {None}
            if video.stem == still.stem and video not in taken and len(ids) < 2:
                pairs[still] = video
                taken.add(video)
                break
    return pairs


def still_content_identifier(path: Path) -> str | None:
    """The Live Photo content identifier of a still (HEIC or JPEG), from Apple's MakerNote
    in its EXIF, or None (no EXIF, another maker, not a Live Photo, unreadable)."""
    from lexp.media.camera_files import pillow_exif

    exif = pillow_exif(path)
    note = exif.get_ifd(0x8769).get(0x927C) if exif is not None else None
    if not isinstance(note, bytes):
        return None
    value = _apple_note_tag(note, _CONTENT_IDENTIFIER_TAG)
    return _identifier(value)


def _apple_note_tag(note: bytes, wanted: int) -> bytes | None:
    """One tag's value in Apple's MakerNote: 'Apple iOS\\0', a 2-byte version, the byte
    order ('MM' or 'II'), then a TIFF IFD at offset 14 whose value offsets count from the
    note's start (as exiftool reads it)."""
    if not note.startswith(_APPLE_NOTE) or len(note) < 16:
        return None
    order = {b"MM": ">", b"II": "<"}.get(note[12:14])
    if order is None:
        return None
    (count,) = struct.unpack_from(order + "H", note, 14)
    sizes = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1, 8: 2, 9: 4, 10: 8}
    for index in range(count):
        at = 16 + 12 * index
        if at + 12 > len(note):
            return None
        tag, kind, n = struct.unpack_from(order + "HHI", note, at)
        if tag != wanted:
            continue
        size = sizes.get(kind, 1) * n
        start = at + 8 if size <= 4 else struct.unpack_from(order + "I", note, at + 8)[0]
        return note[start:start + size] if start + size <= len(note) else None
    return None


def video_content_identifier(path: Path) -> str | None:
    """The Live Photo content identifier in a QuickTime/MP4 file's metadata (its
    ``keys``/``ilst`` atoms, in ``moov/meta`` as iPhones write it or ``moov/udta/meta``
    as ffmpeg does), or None. Reads the ``moov`` atom only, wherever it lies in the file."""
    try:
        with open(path, "rb") as file:
            moov = _moov(file)
    except OSError:
        return None
    if moov is None:
        return None
    for meta in _metas(moov):
        value = _metadata_value(meta, CONTENT_IDENTIFIER_KEY)
        if value is not None:
            return _identifier(value)
    return None


_MOOV_LIMIT = 64 << 20  # a moov atom larger than this is not a Live Photo's


def _moov(file) -> bytes | None:
    """The payload of a file's top-level ``moov`` atom, found by skipping the others."""
    file.seek(0, 2)
    end = file.tell()
    at = 0
    while at + 8 <= end:
        file.seek(at)
        size, kind = struct.unpack(">I4s", file.read(8))
        header = 8
        if size == 1:  # a 64-bit size follows
            (size,) = struct.unpack(">Q", file.read(8))
            header = 16
        elif size == 0:  # to the end of the file
            size = end - at
        if size < header:
            return None
        if kind == b"moov":
            if size > _MOOV_LIMIT:
                return None
            return file.read(size - header)
        at += size
    return None


def _atoms(data: bytes):
    """(type, payload) of each atom in ``data``, in order; stops at a malformed one."""
    at = 0
    while at + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, at)
        if size < 8 or at + size > len(data):
            return
        yield kind, data[at + 8:at + size]
        at += size


def _metas(moov: bytes):
    """The ``meta`` atoms' children (as bytes) in ``moov`` and in ``moov/udta``. A meta
    atom is a plain atom in QuickTime and a full atom (4 bytes of version and flags
    first) in ISO files; its ``hdlr`` child says which."""
    for kind, payload in _atoms(moov):
        if kind == b"udta":
            yield from (_meta_children(p) for k, p in _atoms(payload) if k == b"meta")
        elif kind == b"meta":
            yield _meta_children(payload)


def _meta_children(payload: bytes) -> bytes:
    return payload[4:] if payload[8:12] == b"hdlr" and payload[4:8] != b"hdlr" else payload


def _metadata_value(meta: bytes, wanted: bytes) -> bytes | None:
    """The value of the metadata item whose key is ``wanted``: ``keys`` lists the names
    (1-based), ``ilst`` holds one atom per item, typed by its key's index, holding a
    ``data`` atom (4 bytes of type, 4 of locale, the value)."""
    children = dict(_atoms(meta))
    keys, items = children.get(b"keys"), children.get(b"ilst")
    if keys is None or items is None or len(keys) < 8:
        return None
    (count,) = struct.unpack_from(">I", keys, 4)
    index, at = None, 8
    for number in range(1, count + 1):
        if at + 8 > len(keys):
            return None
        (size,) = struct.unpack_from(">I", keys, at)
        if size < 8:
            return None
        if keys[at + 8:at + size] == wanted:
            index = number
            break
        at += size
    if index is None:
        return None
    for kind, payload in _atoms(items):
        if struct.unpack(">I", kind)[0] == index:
            for data_kind, data in _atoms(payload):
                if data_kind == b"data" and len(data) >= 8:
                    return data[8:]
    return None


def _identifier(value: bytes | None) -> str | None:
    """A content identifier as text (upper case, no padding), or None for none."""
    if not value:
        return None
    text = value.split(b"\x00", 1)[0].decode("ascii", "replace").strip().upper()
    return text or None
