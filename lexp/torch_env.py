"""PyTorch plumbing shared by RAFT flow and the learned generator.

Imported only by the code that needs torch, so stacking never pays torch's start-up
(about a second).

- :func:`torchvision` imports torchvision, tolerating a build whose compiled operators do
  not match the installed torch (see below).
- :func:`resolve_device` turns ``--device auto|cpu|cuda[:n]|mps`` into a checked
  ``torch.device``.
- :func:`gpu_possible` says, without importing torch, whether a GPU could be there.
- :func:`autocast` is mixed precision where it pays (CUDA), and nothing elsewhere.
"""

from __future__ import annotations

import contextlib
import sys

from lexp.errors import LexpError, UsageError


def torchvision():
    """The torchvision module, for its pure-PyTorch models (RAFT, VGG).

    torchvision's compiled extension (detection operators such as ``nms``) is built for
    one exact torch. When it does not load (a CPU torch beside a CUDA torchvision wheel,
    or torch upgraded alone), torchvision still imports its Python models, except that
    ``torchvision._meta_registrations`` registers fake kernels for ``torchvision::nms`` and
    ``qnms`` unconditionally and fails with "operator torchvision::nms does not exist".
    lexp uses none of those operators, so it declares their schemas (no kernels) and
    imports again; calling them would still fail, loudly.
    """
    try:
        import torchvision as tv
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise _unusable(err) from None
        import torch

        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        global _SCHEMAS
        _SCHEMAS = torch.library.Library("torchvision", "FRAGMENT")
        for op in ("nms", "qnms"):
            with contextlib.suppress(RuntimeError):  # already declared
                _SCHEMAS.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        try:
            import torchvision as tv
        except (RuntimeError, ImportError) as again:
            raise _unusable(again) from None
    except ImportError as err:
        raise _unusable(err) from None
    return tv


_SCHEMAS = None  # keeps the declared schemas alive (a Library deregisters when collected)


def _unusable(err: BaseException) -> LexpError:
    import torch

    return LexpError(f"torchvision cannot be imported: {err}",
                     hint=f"install the torchvision release built for torch {torch.__version__}")


def resolve_device(spec: str = "auto"):
    """``auto`` (CUDA, else Apple's MPS, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    import torch

    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UsageError(f"unknown device {spec!r}",
                         hint="auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("CUDA is not available on this machine",
                             hint="use --device cpu (or auto)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise UsageError(f"no GPU {device.index}: this machine has {count}",
                             hint=f"use cuda:0 … cuda:{count - 1}")
    elif device.type == "mps" and not _mps_available():
        raise UsageError("Apple's MPS is not available on this machine",
                         hint="use --device cpu (or auto)")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"unsupported device {spec!r}", hint="auto, cpu, cuda, cuda:N or mps")
    return device


def gpu_possible() -> bool:
    """Whether this machine could have a GPU torch can use, judged without importing
    torch (a second's start-up that a DIS render on a laptop should not pay just to
    learn there is none): an NVIDIA or AMD (ROCm) driver's device node on Linux, Apple
    silicon on macOS; elsewhere (Windows) only torch can tell, so True."""
    import os
    import platform

    system = platform.system()
    if system == "Linux":
        return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0",
                                                "/proc/driver/nvidia/version", "/dev/kfd"))
    if system == "Darwin":
        return platform.machine() == "arm64"
    return True


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def autocast(device):
    """float16 autocast on CUDA (tensor cores, half the memory); a no-op elsewhere, where
    CPU float16 is slower than float32 and MPS autocast is incomplete."""
    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def free_memory(device) -> int | None:
    """Bytes free on a CUDA device (None elsewhere: the OS pages, so there is no budget)."""
    import torch

    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)
