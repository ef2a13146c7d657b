"""Watching a folder that frames are written into (an intervalometer's camera tethered
by ``gphoto2 --capture-tethered``, a script copying from a card, a webcam saving stills).

Polling, not a file-watching library (watchdog): frames arrive every few seconds at
most, so a look at the folder each second costs nothing; and what matters is not that a
file appeared but that its writer has *finished* with it, which no watcher reports
portably (inotify's close-after-write has no equivalent in macOS's FSEvents or on
network shares and SD cards, where watchdog itself falls back to polling). A file is
taken once it is non-empty, its size and modification time are the same at two looks a
poll apart, and, for JPEG and PNG, its last bytes are the format's end marker (a copy
that stalls for a moment mid-file is not taken half-written). Hidden files and the
temporary names of copies in progress (``.part``, ``.tmp``, ``.crdownload``, ``~``) wait
for their rename.
"""

from __future__ import annotations

import os
from pathlib import Path

from lexp.errors import InputError
from lexp.media.clip import is_image, natural_key

TEMPORARY_SUFFIXES = (".part", ".tmp", ".crdownload", ".download", "~")


class FolderGone(InputError):
    """The watched folder disappeared (deleted, unmounted): nothing more can arrive."""


class FolderWatch:
    """The image files that appear in ``folder``, each handed out once, when ready.

    ``taken``: names already handed out (a resumed run's); ``exclude``: files never to
    take (the output being written there)."""

    def __init__(self, folder: Path, taken: set[str] | None = None,
                 exclude: set[Path] | None = None) -> None:
        self.folder = folder
        self.taken: set[str] = set(taken or ())
        self._exclude = {p.name for p in exclude or () if p.parent.resolve() == folder.resolve()}
        self._last_look: dict[str, tuple[int, int]] = {}  # name: (size, mtime ns)

    def poll(self) -> list[Path]:
        """The files that became ready since the last poll, in natural order (the module
        docstring says when a file is ready). Raises FolderGone when the folder is gone."""
        try:
            entries = list(os.scandir(self.folder))
        except (FileNotFoundError, NotADirectoryError):
            raise FolderGone(f"the folder {self.folder} is gone",
                             hint="was it deleted or unmounted? the frames seen so far are "
                                  "kept") from None
        look: dict[str, tuple[int, int]] = {}
        ready = []
        for entry in entries:
            name = entry.name
            if name in self.taken or name in self._exclude or name.startswith(".") or \
                    name.endswith(TEMPORARY_SUFFIXES) or not is_image(Path(name)):
                continue
            try:
                if not entry.is_file():
                    continue
                stat = entry.stat()
            except OSError:  # gone between the listing and the look
                continue
            look[name] = (stat.st_size, stat.st_mtime_ns)
            if stat.st_size and self._last_look.get(name) == look[name] and \
                    looks_complete(Path(entry.path)):
                ready.append(Path(entry.path))
        self._last_look = look
        self.taken.update(p.name for p in ready)
        return sorted(ready, key=natural_key)

    def again(self, path: Path) -> None:
        """Hand ``path`` out again once it is ready anew (it changed while it was read)."""
        self.taken.discard(path.name)
        self._last_look.pop(path.name, None)


def looks_complete(path: Path) -> bool:
    """Whether a JPEG ends with its end-of-image marker (within its last 4 KB: some
    cameras pad after it) and a PNG with its IEND chunk; other formats: True (their
    decoders refuse a cut-short file)."""
    suffix = path.suffix.lower()
    if suffix not in (".jpg", ".jpeg", ".png"):
        return True
    try:
        with open(path, "rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - 4096))
            tail = file.read()
    except OSError:
        return False
    return b"IEND" in tail[-12:] if suffix == ".png" else b"\xff\xd9" in tail
