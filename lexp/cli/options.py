"""The choices that command-line options take, shared by the commands."""

from __future__ import annotations

from enum import Enum


class Method(str, Enum):
    auto = "auto"
    flow = "flow"
    learned = "learned"
    mean = "mean"
    max = "max"
    min = "min"
    median = "median"
    lighten = "lighten"
    darken = "darken"


class FlowMethod(str, Enum):
    auto = "auto"
    dis = "dis"
    dis_fast = "dis-fast"
    dis_ultrafast = "dis-ultrafast"
    farneback = "farneback"
    raft_small = "raft-small"
    raft_large = "raft-large"


class Transfer(str, Enum):
    auto = "auto"
    srgb = "srgb"
    rec709 = "rec709"
    hlg = "hlg"
    pq = "pq"
    none = "none"


class Tone(str, Enum):
    auto = "auto"
    clip = "clip"
    soft = "soft"
    reinhard = "reinhard"


CONTROLS = "Photographer's controls"  # the --help panel of align, keep-sharp, video, ...


class Arch(str, Enum):
    lexp = "lexp"
    seed = "seed"


class AlignModel(str, Enum):
    similarity = "similarity"
    homography = "homography"


class AlignBorder(str, Enum):
    crop = "crop"
    fill = "fill"


class ImageFormat(str, Enum):
    jpeg = "jpeg"
    png = "png"
    tiff = "tiff"
