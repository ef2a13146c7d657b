"""The generator's checkpoints, written and read here only.

A checkpoint is a dictionary of tensors and plain values, saved with ``torch.save`` and
loaded with ``torch.load(weights_only=True)`` (data, never code): ``format`` =
``lexp-generator``, ``version``, ``model`` (the :class:`~lexp.model.GeneratorConfig`),
``state`` (the weights), ``train`` (the TrainConfig it was trained with) and ``scores``;
a training run's ``last.pt`` adds what resuming needs (:data:`RESUME_FIELDS`). Two are
shipped in ``lexp/checkpoints/`` (:data:`SHIPPED`), so ``-m learned`` works offline.

``scores["validation"]``, when present, is what ``scripts/measure_checkpoint.py``
measured on clips the checkpoint never trained on, per protocol: the PSNR of the flow
render and of the generator on each clip, and the median and worst gain (dB). Renders
read it (:func:`measured`): ``-m learned`` keeps the flow render where the
generator measured below it, and ``auto`` picks the generator only where it earned it
(:meth:`Measured.earned`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lexp.config import TrainConfig
from lexp.errors import InputError, LexpError

FORMAT = "lexp-generator"
VERSION = 1
SHIPPED = {"lexp": "lexp-generator.pt", "seed": "seed-generator.pt"}  # in lexp/checkpoints/
DEFAULT = "lexp"


# --------------------------------------------------------------------------- reading

def shipped_dir() -> Path:
    return Path(__file__).resolve().parent / "checkpoints"


def resolve(spec: str | None) -> Path:
    """A checkpoint name (``lexp``, ``seed``: shipped with the package) or a file path."""
    spec = spec or DEFAULT
    if spec in SHIPPED:
        path = shipped_dir() / SHIPPED[spec]
        if not path.is_file():
            raise InputError(f"the shipped checkpoint {spec!r} is missing from {path.parent}",
                             hint="reinstall lexp, or give a file with --checkpoint")
        return path
    path = Path(spec).expanduser()
    if not path.is_file():
        raise InputError(f"{spec} is a folder, not a checkpoint" if path.is_dir() else
                         f"no such checkpoint: {spec}",
                         hint="give a .pt file made by `lexp train`, or one of: "
                              + ", ".join(SHIPPED))
    return path


def read(path: str | Path) -> dict:
    """A checkpoint's dictionary, checked: a damaged or foreign file is a LexpError."""
    import torch

    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # any failure to decode the file means it is damaged: the
        # weights-only unpickler raises KeyError, UnpicklingError, RuntimeError, ...
        raise InputError(f"{path.name} is not a readable lexp checkpoint",
                         hint="the file is damaged or is not a checkpoint; train or "
                              "download it again") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{path.name} is not a lexp generator checkpoint",
                         hint="give a .pt file written by `lexp train`")
    if data.get("version") != VERSION:
        raise InputError(f"{path.name} is checkpoint version {data.get('version')}; this "
                         f"lexp reads version {VERSION}",
                         hint="retrain it with this lexp, or use a matching lexp")
    _check_finite(data.get("state"), path)
    return data


def _check_finite(state, path: Path) -> None:
    """An InputError if any floating-point weight is NaN or infinite: such a generator
    renders black (or garbage) and would pass every other check."""
    import torch

    if not isinstance(state, dict):
        return  # load_network says what is wrong with it
    for name, tensor in state.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and \
                not bool(torch.isfinite(tensor).all()):
            raise InputError(f"{path.name} has weights that are not numbers (NaN or "
                             f"infinite), in {name}",
                             hint="the training diverged or the file was damaged; use an "
                                  "earlier checkpoint or train again")


def load_network(path: str | Path, device: str = "cpu"):
    """(network in eval mode, GeneratorConfig) from a checkpoint file."""
    from lexp.model import GeneratorConfig, build

    data = read(path)
    try:
        config = GeneratorConfig.from_dict(data["model"])
        network = build(config)
        network.load_state_dict(data["state"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise InputError(f"{Path(path).name} does not fit the generator: "
                         f"{str(exc).splitlines()[0][:120]}",
                         hint="the checkpoint is damaged or from another lexp") from None
    return network.to(device).eval(), config


# --------------------------------------------------------------------------- measured

@dataclass(frozen=True)
class Measured:
    """The generator against the flow render on validation clips, one protocol (dB)."""

    median_db: float  # median over the clips of (generator − flow) PSNR
    worst_db: float  # the lowest clip's

    def earned(self) -> bool:
        """Whether ``auto`` may choose the generator: better at the median, and no clip
        more than ``WORST_LOSS_DB`` below the flow render."""
        return self.median_db > 0 and self.worst_db >= -WORST_LOSS_DB


WORST_LOSS_DB = 0.3  # (issue 27's bar for a shipped checkpoint)


def measured(path: str | Path, protocol: str = "extrapolate") -> Measured | None:
    """What was measured for the checkpoint on validation clips under ``protocol`` (see
    the module docstring); None when it never was (a training run's own weights) or the
    record is not numbers."""
    scores, values = read(path).get("scores"), []
    for name in ("gain_median_db", "gain_worst_db"):
        entry = scores
        for key in ("validation", protocol, name):  # any shape, from any file
            entry = entry.get(key) if isinstance(entry, dict) else None
        if isinstance(entry, bool) or not isinstance(entry, (int, float)) or entry != entry:
            return None
        values.append(float(entry))
    return Measured(*values)


def record_measurement(path: str | Path, validation: dict) -> None:
    """Write ``validation`` (protocol -> its record) into the checkpoint's scores,
    keeping everything else; atomically, so a render reading it never sees half. Values
    become plain JSON types (a numpy number would make the file unreadable to
    ``torch.load(weights_only=True)``)."""
    import json

    data = read(path)
    scores = data.get("scores") if isinstance(data.get("scores"), dict) else {}
    plain = json.loads(json.dumps(validation, default=float))
    data["scores"] = {**scores, "validation": plain}
    save(Path(path), data)


# --------------------------------------------------------------------------- writing

def save(path: Path, payload: dict) -> None:
    """torch.save through a temp file and os.replace: never a half-written checkpoint."""
    import io

    import torch

    from lexp.paths import write_bytes_atomic

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def export_payload(model_config, state: dict, *, train: dict | None = None,
                   scores: dict | None = None) -> dict:
    """The minimal checkpoint: config and weights (what ships, and what renders read)."""
    return {"format": FORMAT, "version": VERSION,
            "model": model_config.to_dict(), "train": train or {},
            "scores": scores or {},
            "state": {k: v.detach().cpu().clone() for k, v in state.items()}}


def training_record(config: TrainConfig) -> dict:
    """What a checkpoint says about how it was trained: the run's settings, and for a
    fine-tuned one (``--init``) the record of the weights it started from (``init_train``),
    so that every clip behind the weights stays named (:func:`trained_on_data`)."""
    record = config.to_dict()
    if config.init is not None:
        record["init_train"] = read(resolve(config.init)).get("train", {})
    return record


def trained_on_data(data: dict) -> list[str]:
    """Every ``--data`` spec behind a checkpoint's weights (a checkpoint's dictionary),
    through the chain of runs it was fine-tuned from."""
    specs, train = [], data.get("train")
    while isinstance(train, dict):
        specs += [s for s in train.get("data", []) if isinstance(s, str)]
        train = train.get("init_train")
    return specs


# --------------------------------------------------------------------------- resuming

# What a last.pt must hold to be resumed, and the type of each (a model.pt or best.pt
# holds weights only).
RESUME_FIELDS = {"train": dict, "state": dict, "optimizer": dict, "scheduler": dict,
                 "step": int, "epoch": int, "batch_in_epoch": int, "best": (int, float),
                 "best_step": int, "bad_evals": int}


def resumable(state: dict, path: Path) -> TrainConfig:
    """The run's saved TrainConfig, once ``state`` (a checkpoint's dictionary) is known to
    hold what resuming needs; an InputError naming what is missing otherwise."""
    for name, kind in RESUME_FIELDS.items():
        value = state.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise InputError(f"{path} cannot be resumed: its {name!r} is "
                             f"{'missing' if value is None else type(value).__name__}",
                             hint="resume from the last.pt a run wrote, or start a new run")
    import torch

    if not isinstance(state.get("torch_rng"), torch.Tensor):
        raise InputError(f"{path} cannot be resumed: its 'torch_rng' is not a tensor",
                         hint="resume from the last.pt a run wrote, or start a new run")
    try:
        return TrainConfig.from_dict(state["train"])
    except (TypeError, ValueError, LexpError) as exc:
        raise InputError(f"{path} cannot be resumed: its training settings are damaged "
                         f"({exc})", hint="start a new run (another --run-dir)") from None
