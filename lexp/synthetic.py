"""Synthetic clips with known motion: the demo scene, and test patterns.

Every generator is deterministic (seeded) and yields ``uint8`` H×W×3 RGB frames, like a
decoded clip. Scenes are composed in linear light and encoded with the sRGB curve, so
their long exposure is well defined.

- :func:`night_street`: the README demo: a dusk street under drifting clouds, with cars
  whose head- and tail-lights draw trails, and a few stars.
- :func:`moving_square`: a textured square moving at a constant velocity (pixels/frame).
- :func:`write_dng`: a RAW frame (DNG) whose developed light is known.
- :class:`NightSky`: a star-trail night with darks, flats, hot pixels, a plane and a
  cloud, and its clean truth (calibration's tests).

``python -m lexp.synthetic OUT.mp4 [--frames N --size WxH --fps F]`` writes the night
street as an H.264 video (atomically).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lexp import colour


def _smooth_noise(rng: np.random.Generator, height: int, width: int, scale: float) -> np.ndarray:
    """Soft noise in [0, 1], float32 H×W, with features about ``scale`` pixels wide."""
    import cv2

    small = rng.random((max(2, int(height / scale)) + 2, max(2, int(width / scale)) + 2))
    big = cv2.resize(small.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    big -= big.min()
    return big / max(float(big.max()), 1e-6)


def _glow(radius: float, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """A Gaussian light sprite, float32 (2r+1)×(2r+1), peak 1 at (dx, dy) px from its
    centre pixel (a fraction of a pixel: lights move smoothly, not in whole-pixel steps,
    which would make a trail's brightness ripple)."""
    r = int(np.ceil(radius * 3)) + 1
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return np.exp(-((x - dx) ** 2 + (y - dy) ** 2) / (2 * radius * radius)).astype(np.float32)


def _add_light(img: np.ndarray, radius: float, cx: float, cy: float, rgb) -> None:
    """Add a glow of ``radius`` × ``rgb`` (linear) centred at (cx, cy), clipped to the
    image."""
    h, w = img.shape[:2]
    ix, iy = int(np.floor(cx)), int(np.floor(cy))
    sprite = _glow(radius, cx - ix, cy - iy)
    r = sprite.shape[0] // 2
    x0, y0 = ix - r, iy - r
    xa, ya = max(x0, 0), max(y0, 0)
    xb, yb = min(x0 + sprite.shape[1], w), min(y0 + sprite.shape[0], h)
    if xa >= xb or ya >= yb:
        return
    patch = sprite[ya - y0:yb - y0, xa - x0:xb - x0, None] * np.asarray(rgb, np.float32)
    img[ya:yb, xa:xb] += patch


TRAFFIC_FRAMES = 120  # the demo's length: its lanes' trails are even over this many frames


def night_street(width: int = 640, height: int = 360, frames: int = 120,
                 seed: int = 0) -> Iterator[np.ndarray]:
    """A dusk street scene: cars in two lanes (4.75 and 3.2 px/frame), clouds drifting
    0.6 px/frame."""
    rng = np.random.default_rng(seed)
    horizon = int(height * 0.55)
    road_top, road_bottom = int(height * 0.72), int(height * 0.95)
    yy = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    sky = (np.float32([0.010, 0.018, 0.060]) * (1 - yy) + np.float32([0.060, 0.040, 0.050]) * yy)
    base = np.broadcast_to(sky, (height, width, 3)).copy()
    # Stars: fixed points in the upper sky.
    for _ in range(max(10, width * height // 4000)):
        x, y = rng.integers(0, width), rng.integers(0, horizon // 1.2)
        base[y, x] += rng.uniform(0.1, 0.5)
    # Building silhouettes with a few lit windows; the clouds pass behind them.
    sky_mask = np.ones((horizon, width, 1), np.float32)
    x = 0
    while x < width:
        bw = int(rng.integers(width // 16, width // 6))
        bh = int(rng.integers(height // 8, height // 3))
        base[horizon - bh:road_top, x:x + bw] = (0.006, 0.006, 0.008)
        sky_mask[horizon - bh:, x:x + bw] = 0
        for _ in range(int(rng.integers(2, 8))):
            wx, wy = x + int(rng.integers(2, max(3, bw - 6))), horizon - int(rng.integers(4, bh))
            base[wy:wy + 4, wx:wx + 3] = (0.35, 0.25, 0.10)
        x += bw + int(rng.integers(0, width // 20))
    base[road_top:road_bottom] = (0.012, 0.012, 0.014)
    # Clouds: soft noise twice as wide as the frame, drifting to the right.
    clouds = _smooth_noise(rng, horizon, width * 2, scale=max(8.0, width / 10))
    clouds = np.clip((clouds - 0.45) * 2.2, 0, 1) * 0.06
    # Traffic in two lanes, each at one speed, its cars evenly spaced round a loop a little
    # wider than the frame (they leave past one edge and come back before the other). The
    # loop's length is chosen so that in the demo's 120 frames every point of a lane is
    # passed a whole number of times (cars × speed × 120 frames ÷ loop): the lanes' light
    # trails come out even, as steady traffic draws them, at any frame size.
    cars = []
    for lane, direction, count, speed in ((0.78, 1, 5, 4.75), (0.88, -1, 5, 3.2)):
        travel = count * speed * TRAFFIC_FRAMES  # px: all the lane's cars together
        loop = travel / max(1, int(travel // (width + 120)))
        phase = rng.uniform(0, loop)
        cars += [(lane * height, direction, speed, phase + k * loop / count, loop)
                 for k in range(count)]
    head, tail = max(1.5, height / 180), max(1.2, height / 240)  # glow radii, px
    for t in range(frames):
        img = base.copy()
        shift = int(t * 0.6) % width
        img[:horizon] += clouds[:, width - shift:2 * width - shift, None] * sky_mask * \
            np.float32([0.9, 0.85, 1.0])
        for y, direction, speed, x0, loop in cars:
            cx = (x0 + direction * speed * t) % loop - 60
            front = 10 * direction
            _add_light(img, head, cx + front, y, (4.0, 3.6, 2.8))
            _add_light(img, head, cx + front, y + 4, (4.0, 3.6, 2.8))
            _add_light(img, tail, cx - front, y, (2.5, 0.1, 0.05))
            _add_light(img, tail, cx - front, y + 4, (2.5, 0.1, 0.05))
        yield np.rint(colour.encode(img, "srgb") * 255).astype(np.uint8)


def moving_square(width: int = 96, height: int = 64, frames: int = 10, size: int = 16,
                  velocity: tuple[float, float] = (3.0, 1.0), seed: int = 0
                  ) -> Iterator[np.ndarray]:
    """A textured square on a textured background, moving ``velocity`` px/frame.

    The textures are 4×4-pixel cells, so they survive 4:2:0 chroma subsampling when
    encoded as video, and give optical flow something to lock on to.
    """
    rng = np.random.default_rng(seed)

    def cells(h: int, w: int, low: int, high: int) -> np.ndarray:
        small = rng.integers(low, high, (-(-h // 4), -(-w // 4), 3), dtype=np.uint8)
        return np.repeat(np.repeat(small, 4, axis=0), 4, axis=1)[:h, :w]

    background = cells(height, width, 20, 120)
    square = cells(size, size, 120, 255)
    for t in range(frames):
        img = background.copy()
        x = int(round(4 + velocity[0] * t)) % max(1, width - size)
        y = int(round(4 + velocity[1] * t)) % max(1, height - size)
        img[y:y + size, x:x + size] = square
        yield img


# write_dng's sensor: 12 bits, its black and white levels.
DNG_BLACK, DNG_WHITE = 256, 4095
class NightSky:
    """A night on a tripod, in linear light, with everything calibration is for (issue
    43): stars on a sky rotating about a pole above the frame, a fixed dark horizon, and
    what the camera adds — a dark signal with three hot pixels, vignetting, noise — plus a
    plane's streak in one frame and two frames washed out by a lit cloud.

    ``truth(k)``: frame k as a perfect camera would record it (no dark, vignetting, noise,
    plane or cloud); ``light(k)``: as this camera does; ``dark_frame(n)``,
    ``flat_frame(n)``: its darks and flats. All float32 H×W×3 in [0, 1]."""

    HOT = ((20, 30), (61, 101), (95, 140))  # (y, x): pixels 0.6 of white brighter in darks
    PLANE_FRAME = 7
    CLOUDY_FRAMES = (12, 13)
    NOISE = 0.002

    def __init__(self, width: int = 160, height: int = 120, frames: int = 24,
                 degrees_per_frame: float = 0.3, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.width, self.height, self.frames = width, height, frames
        self.pole = (width * 0.35, -height * 0.6)
        self.step = np.radians(degrees_per_frame)
        count = width * height // 60
        # stars anywhere the rotation brings into the frame: polar about the pole
        far = np.hypot(max(self.pole[0], width - self.pole[0]), height - self.pole[1])
        self.radius = np.sqrt(rng.uniform((-self.pole[1]) ** 2, far ** 2, count))
        self.angle = rng.uniform(0, 2 * np.pi, count)
        self.brightness = rng.uniform(0.15, 0.9, count) ** 2
        yy, xx = np.mgrid[:height, :width].astype(np.float32)
        ridge = height * (0.78 + 0.06 * np.sin(xx[0] / width * 7) + 0.03 * np.sin(xx[0] / 9))
        self.ground = yy >= ridge[None, :]
        self.sky = (0.004 + 0.006 * (1 - yy / height))[..., None] * \
            np.array([0.6, 0.8, 1.0], np.float32)
        self.ground_light = 0.012 * (0.5 + _smooth_noise(rng, height, width, 6))[..., None]
        r2 = ((xx - width / 2) ** 2 + (yy - height / 2) ** 2) / ((width / 2) ** 2 +
                                                                 (height / 2) ** 2)
        self.vignetting = (1 - 0.45 * r2)[..., None].astype(np.float32)
        self.dark = (0.008 + 0.004 * rng.random((height, width, 1))).astype(np.float32) * \
            np.ones(3, np.float32)
        for y, x in self.HOT:
            self.dark[y, x] += 0.6
        self._rng = np.random.default_rng(seed + 1)

    def truth(self, k: int) -> np.ndarray:
        img = np.where(self.ground[..., None], self.ground_light, self.sky).astype(np.float32)
        angle = self.angle + self.step * k
        xs = self.pole[0] + self.radius * np.cos(angle)
        ys = self.pole[1] + self.radius * np.sin(angle)
        for x, y, b in zip(xs, ys, self.brightness, strict=True):
            if -3 <= x < self.width + 3 and -3 <= y < self.height + 3 and \
                    not self.ground[min(max(int(y), 0), self.height - 1),
                                    min(max(int(x), 0), self.width - 1)]:
                _add_light(img, 0.8, x, y, (b, b, b))
        img[self.ground] = self.ground_light[self.ground]  # stars set behind the ridge
        return np.clip(img, 0, 1)

    def light(self, k: int) -> np.ndarray:
        scene = self.truth(k)
        if k == self.PLANE_FRAME:  # a plane crosses: a bright line, in this frame only
            import cv2

            line = np.zeros((self.height, self.width), np.float32)
            cv2.line(line, (0, int(self.height * 0.15)), (self.width - 1, int(self.height *
                                                                              0.55)), 0.8, 1)
            scene = np.maximum(scene, line[..., None] * ~self.ground[..., None])
        if k in self.CLOUDY_FRAMES:  # a lit cloud washes the frame out
            scene = scene + 0.08
        return self._camera(scene * self.vignetting + self.dark)

    def dark_frame(self, n: int) -> np.ndarray:
        return self._camera(self.dark.copy())

    def flat_frame(self, n: int) -> np.ndarray:
        return self._camera(0.5 * self.vignetting * np.ones(3, np.float32))

    def write(self, root: str | Path, darks: int = 6, flats: int = 6) -> Path:
        """The night as a photographer brings it home: ``lights/``, ``darks/`` and
        ``flats/`` of 16-bit sRGB PNGs under ``root``. Returns ``root``."""
        root = Path(root)
        for folder, count, frame in (("lights", self.frames, self.light),
                                     ("darks", darks, self.dark_frame),
                                     ("flats", flats, self.flat_frame)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            for k in range(count):
                write_png16(root / folder / f"{folder}_{k:03d}.png", frame(k))
        return root

    def _camera(self, signal: np.ndarray) -> np.ndarray:
        noisy = signal + self._rng.normal(0, self.NOISE, signal.shape).astype(np.float32)
        return np.clip(noisy, 0, 1).astype(np.float32)


def write_png16(path: str | Path, linear: np.ndarray) -> Path:
    """Linear light (H×W×3 in [0, 1]) as a 16-bit sRGB PNG, as a camera's TIFF/PNG export."""
    import cv2

    codes = np.rint(colour.encode(np.clip(linear, 0, 1), "srgb") * 65535).astype(np.uint16)
    if not cv2.imwrite(str(path), codes[..., ::-1]):
        raise OSError(f"could not write {path}")
    return Path(path)


# XYZ (D65) to linear sRGB: as a DNG's ColorMatrix1, it makes the camera's space sRGB's.
_XYZ_TO_SRGB = np.array([[3.2404542, -1.5371385, -0.4985314],
                         [-0.9692660, 1.8760108, 0.0415560],
                         [0.0556434, -0.2040259, 1.0572252]])


def write_dng(path: str | Path, linear: np.ndarray, neutral=(1.0, 1.0, 1.0),
              shot: str | None = None) -> Path:
    """A RAW frame with known content: a DNG whose RGGB mosaic samples ``linear`` (H×W×3
    in [0, 1] of the sensor's range, even H and W), developed by libraw to exactly those
    linear values (its colour matrix makes the camera's space sRGB's). ``neutral``: its
    as-shot white (AsShotNeutral: the camera's response to white; libraw's multipliers
    are its inverse); ``shot``: its capture time ('YYYY:MM:DD HH:MM:SS', IFD0 DateTime).
    Written with tifffile and the DNG tags."""
    import tifffile

    sensor = np.rint(DNG_BLACK + np.clip(linear, 0, 1) * (DNG_WHITE - DNG_BLACK)
                     ).astype(np.uint16)
    mosaic = np.empty(sensor.shape[:2], np.uint16)
    mosaic[0::2, 0::2] = sensor[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = sensor[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = sensor[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = sensor[1::2, 1::2, 2]

    def rationals(values):
        return [x for v in values for x in (int(round(v * 10000)), 10000)]

    tags = [(33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
            (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern: RGGB
            (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
            (50707, "B", 4, (1, 2, 0, 0), True),  # DNGBackwardVersion
            (50708, "s", 0, "lexp Synthetic", True),  # UniqueCameraModel
            (50714, "H", 1, DNG_BLACK, True), (50717, "H", 1, DNG_WHITE, True),
            (50721, "2i", 9, rationals(_XYZ_TO_SRGB.ravel()), True),  # ColorMatrix1
            (50728, "2I", 3, rationals(neutral), True),  # AsShotNeutral
            (50778, "H", 1, 21, True),  # CalibrationIlluminant1: D65
            (271, "s", 0, "lexp", True), (272, "s", 0, "Synthetic", True)]
    if shot is not None:
        tags.append((306, "s", 0, shot, True))
    tifffile.imwrite(path, mosaic, photometric=32803, extratags=tags, subfiletype=0)
    return Path(path)


def write_video(path: str | Path, frames: Iterator[np.ndarray], fps: float = 30.0,
                crf: int = 18) -> Path:
    """Encode RGB frames as H.264 (yuv420p) to ``path``, atomically. Returns the path."""
    from lexp.media import VideoWriter

    with VideoWriter(path, fps, crf) as writer:
        for frame in frames:
            writer.add(frame)
    return Path(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lexp.synthetic",
                                     description="Write the synthetic night-street clip.")
    parser.add_argument("output", help="video file to write, e.g. night_street.mp4")
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--size", default="640x360", help="WIDTHxHEIGHT (even numbers)")
    parser.add_argument("--fps", type=float, default=30.0)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    path = write_video(args.output, night_street(width, height, args.frames), args.fps)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
