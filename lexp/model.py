"""The generator networks (nn.Module only): the seed system's ConvLSTM, and lexp's own.

Both read one batch of evidence (see :class:`Evidence`), made by ``lexp.renderers.learned`` from the
input frames at the *work size* (long side ``GeneratorConfig.work_size``), and both return
the long exposure at the work size, sRGB-encoded in [0, 1] (the space the scores and the
loss are measured in).

``seed`` — a faithful reproduction of "Computational Long Exposure Images from Optical
Flow" (AndrewZL/LongExposureGeneration), for comparison: the flow of frames 0→1, resized to
128×128, goes through a strided-conv motion encoder to an 8-number global code, broadcast
over the image and concatenated to every input frame (sRGB); a two-layer ConvLSTM encoder
reads the frames, a two-layer ConvLSTM decoder (22 features) is rolled out over
``seed_steps`` future steps from the encoder's last state, a 3-D convolution and a sigmoid
make each step an image, and their average is the exposure. It predicts every pixel from
scratch, and one global code cannot say which part of the image moves where — the seed's
known weakness (fast motion comes out as small non-directional blur).

``lexp`` — designed to beat it by starting from the physics. It never paints pixels: it
predicts, per pixel, a softmax blend of K candidate exposures that ``lexp.renderers.learned`` builds
in linear light at full resolution: the flow-guided render (``lexp.renderers.flow``), the
plain linear mean of the inputs, and the flow render blurred at three scales (random
motion — water, leaves, a shaking hand — averages over 64 frames into a blur whose size
the frames hint at but the flow cannot follow). Inputs are linear light (log-encoded),
per-pixel flow features (not one global code) and the candidates themselves:

    per frame t: [log frame (3), flow into t / 4 (2), log(1 + |flow|) (1), context (2)]
      → conv 3×3 stride 2 → conv 3×3 → ConvLSTM → ConvLSTM        (half resolution)
    last hidden state, upsampled, + log candidates (3K)
      → conv 3×3 → conv 3×3 → conv 1×1 → K logits → softmax over candidates

The context is log(exposure / covered time) and log(time between inputs). The logits are
a fixed prior on the flow render plus a learned part that starts at zero and is bounded
(tanh, ±4): an untrained model is the flow render at weight 0.93, training moves away from
it only where that pays, and the softmax cannot saturate into a dead end (an unbounded
first version did, within 100 steps: weights of 1e-12, no gradient). The
weights are smooth, so they are computed at the work size and upsampled to blend
full-resolution candidates: a 720p render costs the flow render plus a few tens of ms.

Tensors: float32 N×C×H×W; frame sequences N×T×C×H×W; linear light in [0, ∞).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

ARCHITECTURES = ("lexp", "seed")
LOG_FLOOR = 1.0 / 256  # log(x + floor): linear light's dark end without -inf
LOGIT_RANGE = 4.0  # lexp: the learned part of each blend logit stays within ±this


@dataclass(frozen=True)
class GeneratorConfig:
    """The architecture; saved in every checkpoint."""

    arch: str = "lexp"  # lexp (blend over physics candidates) | seed (the original)
    work_size: int = 320  # the network's long side in pixels (inputs are resized to it)
    max_frames: int = 8  # at most this many input frames reach the ConvLSTM (evenly chosen)
    hidden: int = 24  # lexp: ConvLSTM features
    candidates: int = 5  # lexp: flow render, linear mean, flow render blurred ×3
    blur_sigmas: tuple[float, ...] = (1.5, 4.0, 10.0)  # lexp: candidate blurs, work-size px
    seed_features: int = 22  # seed: ConvLSTM features
    seed_code: int = 8  # seed: the global motion code's length
    seed_steps: int = 10  # seed: future steps rolled out by the decoder
    seed_flow_size: int = 128  # seed: the flow is resized to this square

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}")
        # A checkpoint is data from anywhere: every field is checked here, so a wrong
        # type or an impossible size is one clear error on loading, not a crash mid-render.
        for name, least in self._SMALLEST.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} is {value!r}; it must be a whole number ≥ {least}")
        if isinstance(self.blur_sigmas, (str, bytes)) or not all(
                isinstance(s, (int, float)) and not isinstance(s, bool) and 0 < s < 1e4
                for s in self.blur_sigmas):
            raise ValueError(f"blur_sigmas is {self.blur_sigmas!r}; it must be a list of "
                             "positive numbers")
        object.__setattr__(self, "blur_sigmas", tuple(float(s) for s in self.blur_sigmas))
        if self.arch == "lexp" and self.candidates != 2 + len(self.blur_sigmas):
            raise ValueError("lexp: candidates must be 2 + the number of blur sigmas")

    # The least value of each whole-number field (max_frames: _spread needs two ends).
    _SMALLEST = {"work_size": 16, "max_frames": 2, "hidden": 1, "candidates": 1,
                 "seed_features": 1, "seed_code": 1, "seed_steps": 1, "seed_flow_size": 8}

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["blur_sigmas"] = list(self.blur_sigmas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> GeneratorConfig:
        if not isinstance(d, dict):
            raise TypeError(f"the model description is a {type(d).__name__}, not a mapping")
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if "blur_sigmas" in d:
            d["blur_sigmas"] = tuple(d["blur_sigmas"])
        return cls(**d)


@dataclass
class Evidence:
    """One batch of generator input at the work size (N samples, T frames, K candidates).

    frames:     N×T×3×H×W linear input frames, oldest first
    flows:      N×T×2×H×W flow into frame t from t−1, work-size pixels per frame period
                (zero for t = 0)
    candidates: N×K×3×H×W linear candidate exposures (candidate 0: the flow render)
    context:    N×2  [log(exposure / covered periods), log(periods between inputs)]
    """

    frames: torch.Tensor
    flows: torch.Tensor
    candidates: torch.Tensor
    context: torch.Tensor

    def to(self, device) -> Evidence:
        return Evidence(*(t.to(device) for t in dataclasses.astuple(self)))


def encode_srgb(linear: torch.Tensor) -> torch.Tensor:
    """The sRGB transfer function (as ``lexp.colour.encode(x, "srgb")``), clipped to [0, 1]."""
    x = linear.clamp(0.0, 1.0)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp_min(1e-8) ** (1 / 2.4) - 0.055)


class ConvLSTMCell(nn.Module):
    """A convolutional LSTM cell (Shi et al., NeurIPS 2015): the four gates from one 3×3
    convolution over [input, hidden]. State: (h, c), each N×hidden×H×W."""

    def __init__(self, inputs: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(inputs + hidden, 4 * hidden, 3, padding=1)

    def initial(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = x.shape
        zero = x.new_zeros(n, self.hidden, h, w)
        return zero, zero

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        i, f, o, g = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


def read_sequence(first: ConvLSTMCell, second: ConvLSTMCell, inputs
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run two stacked ConvLSTM cells over a sequence of N×C×H×W inputs, from zero
    states; the second cell's last (h, c)."""
    s1 = s2 = None
    for x in inputs:
        if s1 is None:
            s1, s2 = first.initial(x), second.initial(x)
        s1 = first(x, s1)
        s2 = second(s1[0], s2)
    return s2


def _pad_even(x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = h % 2, w % 2
    if ph or pw:
        shape = x.shape
        x = F.pad(x.reshape(-1, *shape[-3:]), (0, pw, 0, ph), mode="replicate")
        x = x.reshape(*shape[:-2], h + ph, w + pw)
    return x, h, w


def conv_relu(inputs: int, outputs: int, stride: int = 1) -> tuple[nn.Module, nn.Module]:
    """A 3×3 convolution (padded: stride 1 keeps the size, 2 halves it) and a ReLU, as two
    Sequential entries (so checkpoints keep their keys: ``encode.0``, ``encode.2``)."""
    return nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1), nn.ReLU(inplace=True)


class LexpGenerator(nn.Module):
    """Per-pixel blend weights over physics candidates (see the module docstring)."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        hidden, k = config.hidden, config.candidates
        self.encode = nn.Sequential(*conv_relu(8, 16, stride=2), *conv_relu(16, hidden))
        self.lstm1 = ConvLSTMCell(hidden, hidden)
        self.lstm2 = ConvLSTMCell(hidden, hidden)
        self.decode = nn.Sequential(*conv_relu(hidden + 3 * k, 32), *conv_relu(32, 32))
        self.logits = nn.Conv2d(32, k, 1)
        # Start as the flow render: the prior puts the weight on candidate 0, the learned
        # part starts at zero and is bounded (±LOGIT_RANGE), so the softmax can never
        # saturate into a state with no gradient.
        nn.init.zeros_(self.logits.weight)
        nn.init.zeros_(self.logits.bias)
        prior = torch.zeros(k)
        prior[0] = 4.0
        self.register_buffer("prior", prior[None, :, None, None], persistent=False)

    def weights(self, ev: Evidence) -> torch.Tensor:
        """Blend weights N×K×H×W (softmax over K) at the evidence's size."""
        frames, h, w = _pad_even(ev.frames)
        flows, _, _ = _pad_even(ev.flows)
        cands, _, _ = _pad_even(ev.candidates)
        n, t, _, hp, wp = frames.shape
        context = ev.context[:, :, None, None].expand(n, 2, hp, wp)

        def per_frame():
            for step in range(t):
                flow = flows[:, step]
                speed = torch.log1p(torch.sqrt((flow ** 2).sum(1, keepdim=True) + 1e-12))
                yield self.encode(torch.cat([torch.log(frames[:, step] + LOG_FLOOR) / 4,
                                             flow / 4, speed, context], 1))

        state2 = read_sequence(self.lstm1, self.lstm2, per_frame())
        memory = F.interpolate(state2[0], size=(hp, wp), mode="bilinear", align_corners=False)
        # The candidates as the flow render (log, scaled) and how each other one differs
        # from it (log ratios, bounded): features of order 1 whatever the brightness.
        logs = torch.log(cands + LOG_FLOOR)
        looks = torch.cat([logs[:, :1] / 4, (logs[:, 1:] - logs[:, :1]).clamp(-4, 4)], 1)
        learned = self.logits(self.decode(torch.cat([memory, looks.flatten(1, 2)], 1)))
        logits = self.prior + LOGIT_RANGE * torch.tanh(learned / LOGIT_RANGE)
        return torch.softmax(logits, dim=1)[..., :h, :w]

    def forward(self, ev: Evidence) -> torch.Tensor:
        """The exposure N×3×H×W, sRGB-encoded in [0, 1]."""
        weights = self.weights(ev)
        return encode_srgb((weights[:, :, None] * ev.candidates).sum(1))


class SeedGenerator(nn.Module):
    """The seed system's CAE-ConvLSTM with its global flow code (see the module docstring)."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        nf, code = config.seed_features, config.seed_code
        self.motion = nn.Sequential(
            *conv_relu(2, 16, stride=2), *conv_relu(16, 32, stride=2),
            *conv_relu(32, 32, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(32, code))
        self.e1 = ConvLSTMCell(3 + code, nf)
        self.e2 = ConvLSTMCell(nf, nf)
        self.d1 = ConvLSTMCell(nf, nf)
        self.d2 = ConvLSTMCell(nf, nf)
        self.out = nn.Conv3d(nf, 3, 3, padding=1)

    def forward(self, ev: Evidence) -> torch.Tensor:
        """The exposure N×3×H×W, sRGB-encoded in [0, 1]."""
        frames = encode_srgb(ev.frames)  # the seed works on 8-bit-style sRGB images
        n, t, _, h, w = frames.shape
        size = self.config.seed_flow_size
        # Flow 0→1 is the flow into frame 1; the seed normalises it by the image size.
        flow = ev.flows[:, 1] if t > 1 else ev.flows[:, 0]
        flow = F.interpolate(flow / max(h, w), size=(size, size), mode="bilinear",
                             align_corners=False)
        code = self.motion(flow)[:, :, None, None].expand(n, -1, h, w)
        s2 = read_sequence(self.e1, self.e2,
                           (torch.cat([frames[:, step], code], 1) for step in range(t)))
        s3, s4 = self.d1.initial(s2[0]), self.d2.initial(s2[0])
        outputs = []
        for _ in range(self.config.seed_steps):
            s3 = self.d1(s2[0], s3)
            s4 = self.d2(s3[0], s4)
            outputs.append(s4[0])
        steps = torch.stack(outputs, 2)  # N×nf×S×H×W
        return torch.sigmoid(self.out(steps)).mean(2)


def build(config: GeneratorConfig) -> nn.Module:
    """The network for ``config.arch``."""
    return LexpGenerator(config) if config.arch == "lexp" else SeedGenerator(config)
