"""What every renderer returns: a long exposure in linear light, before encoding, and how
it was made. Its own module so that the renderers (stacking in ``lexp.renderers``, flow
in ``lexp.flow_render``, the generator in ``lexp.learned``) and the dispatcher over them
import it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lexp.media import ClipInfo


@dataclass
class StackResult:
    """A rendered long exposure, before encoding."""

    linear: np.ndarray  # float32 H×W×3 linear light
    clip: ClipInfo  # the clip it came from
    frames_used: int  # frames that went into the result
    first_frame: int  # index of the first frame used
    last_frame: int  # index of the last frame used
    seconds: float  # wall time of decoding + stacking
    warnings: list[str] = field(default_factory=list)  # non-fatal problems noticed
    method: str = ""  # the method that ran (auto resolved), e.g. "flow"
    about: dict = field(default_factory=dict)  # method details for messages and metadata
