"""Flow for people and other tools: Middlebury .flo files, colour-coded PNGs (hue =
direction, strength = speed) and a colour video, written whole or not at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def flo_bytes(flow: np.ndarray) -> bytes:
    """Middlebury .flo: 'PIEH', width, height (int32), then u, v interleaved (float32).

    Bytes, not ``cv2.writeOpticalFlow``: exports are staged and renamed in whole, and
    OpenCV's writer takes a path, which crashes the process (SIGSEGV, measured with
    OpenCV 4.x) when the name is not valid UTF-8. ``cv2.readOpticalFlow`` reads these
    files back exactly (tests/test_flow.py)."""
    h, w = flow.shape[1:]
    header = np.array([202021.25], "<f4").tobytes() + np.array([w, h], "<i4").tobytes()
    return header + np.ascontiguousarray(flow.transpose(1, 2, 0), "<f4").tobytes()


def _colour_wheel() -> np.ndarray:
    """The Middlebury colour wheel (Baker et al. 2011): 55 hues, uint8 RGB."""
    segments = [(15, (255, 0, 0), (255, 255, 0)), (6, (255, 255, 0), (0, 255, 0)),
                (4, (0, 255, 0), (0, 255, 255)), (11, (0, 255, 255), (0, 0, 255)),
                (13, (0, 0, 255), (255, 0, 255)), (6, (255, 0, 255), (255, 0, 0))]
    rows = []
    for n, start, stop in segments:
        t = np.arange(n)[:, None] / n
        rows.append(np.asarray(start) * (1 - t) + np.asarray(stop) * t)
    return np.concatenate(rows)


_WHEEL = None


def flow_to_rgb(flow: np.ndarray, max_motion: float | None = None) -> np.ndarray:
    """Colour-code a (2, H, W) flow: hue = direction, saturation = speed (uint8 H×W×3).

    Magnitudes are divided by ``max_motion`` (default: this flow's largest, as in the
    Middlebury benchmark's images, but at least 1 px, so that a nearly static frame
    stays white instead of showing its noise at full colour).

    The colours are ``torchvision.utils.flow_to_image``'s (the same wheel; tested to
    agree within a code value), but not its call: it always stretches the largest
    motion to full colour (no 1-px floor), and it would import torch (about a second)
    into ``lexp flow --export-images`` with DIS, which needs none.
    """
    global _WHEEL
    if _WHEEL is None:
        _WHEEL = _colour_wheel()
    u, v = flow[0].astype(np.float64), flow[1].astype(np.float64)
    radius = np.sqrt(u * u + v * v)
    scale = max_motion or max(float(radius.max()), 1.0)
    u, v, radius = u / scale, v / scale, radius / scale
    angle = np.arctan2(-v, -u) / np.pi  # -1..1
    position = (angle + 1) / 2 * (len(_WHEEL) - 1)
    k0 = np.floor(position).astype(int)
    k1 = (k0 + 1) % len(_WHEEL)
    f = (position - k0)[..., None]
    colour = ((1 - f) * _WHEEL[k0] + f * _WHEEL[k1]) / 255.0
    r = np.minimum(radius, 1.0)[..., None]
    colour = 1 - r * (1 - colour)  # white at rest, full colour at max_motion
    return np.rint(colour * 255).astype(np.uint8)


class FlowExporter:
    """Writes flows as they come: .flo files, colour PNGs, and/or a colour mp4.

    Exports appear whole or not at all. Files are written into a hidden staging folder
    inside each export folder and moved into place by :meth:`close` (renames within one
    folder, with Ctrl-C, SIGTERM and SIGHUP held off until the last one); the video is committed
    there too. ``close(commit=False)`` removes everything this run wrote.
    """

    def __init__(self, flo_dir=None, image_dir=None, video=None, fps: float = 10.0) -> None:
        from lexp.media import VideoWriter

        self.flo_dir = Path(flo_dir) if flo_dir else None
        self.image_dir = Path(image_dir) if image_dir else None
        self.video = VideoWriter(video, fps) if video else None
        self._staging: dict = {}  # export folder -> its staging folder
        self._made: list = []  # export folders this run created (removed again on abort)
        for folder in (self.flo_dir, self.image_dir):
            if folder is not None and folder not in self._staging:
                if not folder.exists():
                    self._made.append(folder)
                self._staging[folder] = self._make_staging(folder)

    @property
    def wanted(self) -> bool:
        """Whether anything is exported (else the flows themselves are not needed)."""
        return bool(self.flo_dir or self.image_dir or self.video)

    @staticmethod
    def _make_staging(folder):
        import tempfile

        from lexp.paths import describe_os_error, scratch_name, sweep_leftovers

        try:
            folder.mkdir(parents=True, exist_ok=True)
            sweep_leftovers(folder)  # staging folders of runs that were killed
            return Path(tempfile.mkdtemp(prefix=scratch_name("partial", hidden=True),
                                         dir=folder))
        except OSError as err:
            raise describe_os_error(err, folder) from err

    def __call__(self, i: int, j: int, flow: np.ndarray) -> None:
        import cv2

        from lexp.paths import write_bytes_atomic

        name = f"flow_{i:05d}_{j:05d}"
        if self.flo_dir is not None:
            write_bytes_atomic(self._staging[self.flo_dir] / f"{name}.flo", flo_bytes(flow))
        rgb = None
        if self.image_dir is not None:
            rgb = flow_to_rgb(flow)
            ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            write_bytes_atomic(self._staging[self.image_dir] / f"{name}.png", png.tobytes())
        if self.video is not None and i < j:  # forward flows only: one frame per step
            self.video.add(rgb if rgb is not None else flow_to_rgb(flow))

    def close(self, commit: bool = True) -> None:
        """Move everything into place (``commit``), or remove all of it."""
        import contextlib
        import shutil

        try:
            if self.video is not None:
                self.video.commit() if commit else self.video.abort()
            if commit:
                self._place()
        except BaseException:
            if self.video is not None and commit:
                self.video.path.unlink(missing_ok=True)
            raise
        finally:
            for staging in self._staging.values():
                shutil.rmtree(staging, ignore_errors=True)
            self._staging = {}
        if not commit:
            for folder in self._made:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only if empty: never what someone else put there

    def _place(self) -> None:
        """Rename the staged files into their folders, signals held off meanwhile."""
        import signal

        from lexp.paths import describe_os_error, replace_into
        from lexp.signals import STOP_SIGNALS

        held = set(STOP_SIGNALS)
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            for folder, staging in self._staging.items():
                for item in sorted(staging.iterdir()):
                    try:
                        replace_into(item, folder / item.name)
                    except OSError as err:
                        raise describe_os_error(err, folder / item.name) from err
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
