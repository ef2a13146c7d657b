"""A training run's set-up, before the first step: the device and preset
(:func:`plan`, which ``lexp train --dry-run`` prints), the run directory
(:func:`open_run_dir`) and the samples, split by whole clips (:func:`load_samples`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from lexp import checkpoint
from lexp.config import TRAIN_PRESETS, TrainConfig
from lexp.errors import InputError, OutputError, UsageError

EventCallback = Callable[..., None]


@dataclasses.dataclass
class Plan:
    """What a run will do, resolved (``lexp train --dry-run`` prints it)."""

    config: TrainConfig
    model: dict
    device: str
    world_size: int
    preset: str
    batch: int
    crop: int
    training_clips: list[str]
    validation_clips: list[str]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["config"] = self.config.to_dict()
        return d


def choose_preset(device) -> str:
    """A preset from the device's memory: the batch that fits, not a guess."""
    if device.type != "cuda":
        return "cpu"
    import torch

    gib = torch.cuda.get_device_properties(device).total_memory / 2 ** 30
    return "gpu-small" if gib < 16 else "gpu-medium" if gib < 40 else "gpu-large"


def plan(config: TrainConfig) -> Plan:
    """Resolve the device, preset and the clip split, without building anything (the run
    itself splits among the clips that give samples: one that cannot be read moves the
    split)."""
    from lexp.model import GeneratorConfig
    from lexp.torch_env import resolve_device
    from lexp.training import samples as data

    device = _process_device(resolve_device(config.device))
    preset = config.preset if config.preset != "auto" else choose_preset(device)
    batch, crop = TRAIN_PRESETS[preset]
    sources = data.find_sources(list(config.data))
    training, validation = data.split_by_clip(sources, config.val_fraction)
    model = GeneratorConfig(arch=config.arch, work_size=config.work_size) \
        if config.init is None else initial_weights(config)[0]
    return Plan(config, model.to_dict(), str(device), int(os.environ.get("WORLD_SIZE", 1)),
                preset, config.batch or batch, config.crop or crop,
                [s.name for s in training], [s.name for s in validation])


def initial_weights(config: TrainConfig) -> tuple:
    """(GeneratorConfig, weights) of ``config.init``, the checkpoint a fine-tuning run
    starts from; its architecture and work size must be the run's."""
    path = checkpoint.resolve(config.init)
    network, model = checkpoint.load_network(path)
    if model.arch != config.arch or model.work_size != config.work_size:
        raise UsageError(f"--init {config.init} is a {model.arch} generator at "
                         f"{model.work_size} px",
                         hint=f"add --arch {model.arch} --work-size {model.work_size}")
    return model, network.state_dict()


def _process_device(device):
    """Under torchrun each process takes the GPU of its local rank."""
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        import torch

        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def open_run_dir(run_dir: Path, config: TrainConfig, resume: bool, main: bool) -> dict | None:
    """Check the run directory before any work: the state to resume (``resume``), or a
    fresh folder; refuses to start a new run over an old one."""
    last_path = run_dir / "last.pt"
    state = None
    if resume:
        if not last_path.is_file():
            raise InputError(f"nothing to resume in {run_dir}",
                             hint="start the run without --resume first")
        state = checkpoint.read(last_path)
        saved = checkpoint.resumable(state, last_path)
        if saved.arch != config.arch or saved.work_size != config.work_size:
            raise UsageError(f"{last_path} is a {saved.arch} run at {saved.work_size} px",
                             hint="resume with the same --arch and --work-size")
        if tuple(saved.data) != tuple(config.data):
            # Its validation clips come from its data: another --data would compare the
            # best loss so far with losses on other clips.
            raise UsageError(f"{last_path} was trained on --data {' '.join(saved.data)}, not "
                             f"{' '.join(config.data)}",
                             hint="resume with the same --data, or start a new run that "
                                  "fine-tunes it: --init " + str(last_path))
    elif last_path.exists() and main:
        raise UsageError(f"{run_dir} already holds a run",
                         hint="add --resume to continue it, or choose another --run-dir")
    if main:  # now, not after an hour of building samples
        if run_dir.exists() and not run_dir.is_dir():
            raise UsageError(f"--run-dir {run_dir} is a file", hint="give a folder")
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(f"cannot use --run-dir {run_dir}: {err.strerror or err}",
                              hint="choose a folder you can write to") from None
    return state


def load_samples(config: TrainConfig, model_config, the_plan: Plan, *, main: bool,
                 world_size: int, jobs: int, emit: EventCallback) -> tuple[list, list]:
    """(training samples, validation samples): rank 0 builds what the cache lacks, the
    others then read it. Whole clips are held out, chosen among those that gave samples
    (an unreadable or too short clip must not leave the validation set empty);
    ``the_plan``'s clip lists are updated to the split made."""
    from lexp.paths import cache_dir
    from lexp.training import sample_cache
    from lexp.training import samples as data

    if world_size > 1:
        import torch.distributed as dist
    sources = data.find_sources(list(config.data))
    if world_size > 1 and not main:
        dist.barrier()
    ready = 0

    def built(source, count) -> None:
        nonlocal ready
        ready += 1
        if main:
            emit("data", clip=source.name, samples=count, done=ready, total=len(sources))

    def skipped(source, error) -> None:
        if main:
            emit("skip", clip=source.name, why=error.message)

    cache_root = cache_dir() / "train-data"
    everything = sample_cache.build_samples(sources, model_config, cache_root,
                                            jobs=jobs if main else 1, on_source=built,
                                            on_skip=skipped,
                                            per_case=config.windows_per_clip)
    if main:
        ours = sample_cache.entries_of([s for samples in everything for s in samples])
        limit = sample_cache.MAX_CACHE_BYTES
        entries, freed = sample_cache.prune_least_recent(cache_root, ours, limit)
        if entries:
            emit("cache-pruned", entries=entries, bytes=freed, limit=limit)
    # The cache holds every case of a clip; the run trains on config.cases.
    everything = [[s for s in samples if s["case"] in config.cases] for samples in everything]
    usable = [source for source, samples in zip(sources, everything, strict=True) if samples]
    training_sources, validation_sources = data.split_by_clip(usable, config.val_fraction)
    held_out = set(validation_sources)
    the_plan.training_clips = [source.name for source in training_sources]  # config.json
    the_plan.validation_clips = [source.name for source in validation_sources]
    train_samples, val_samples = [], []
    for source, samples in zip(sources, everything, strict=True):
        (val_samples if source in held_out else train_samples).extend(samples)
    if main:
        emit("data-done", training_clips=len(training_sources),
             training_samples=len(train_samples),
             validation_clips=the_plan.validation_clips,
             validation_samples=len(val_samples), skipped=len(sources) - ready)
    if world_size > 1 and main:
        dist.barrier()
    if not train_samples:
        raise InputError("the training clips gave no samples",
                         hint=f"clips need at least {data.MIN_FRAMES} frames")
    return train_samples, val_samples
