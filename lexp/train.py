"""Training the generator: the loop, its losses, checkpoints, resume, and DDP.

``train(config)`` builds (or reads from the cache) the samples of every clip in
``config.data`` (``lexp.data``), holds out whole clips for validation, and runs AdamW on
Charbonnier (a smooth L1) + ``ssim_weight``·(1 − SSIM), both on sRGB-encoded images (the
space the protocols score), with a cosine learning-rate decay, gradient-norm clipping,
bfloat16 autocast on CUDA, and optional VGG-16 perceptual and PatchGAN adversarial terms. Every
``eval_every`` steps it scores the validation clips (whole frames, not crops); the best
score is kept, and the run stops early after ``patience`` passes without improvement.

The run directory holds:
- ``last.pt`` (everything needed to resume: weights, optimiser, step, RNG states, the
  early-stopping state), ``best.pt`` (the best validation weights), ``model.pt`` (the
  best weights alone: the file to render with or ship), each written atomically;
- ``metrics.jsonl``: one JSON line per logged step and per validation pass;
- ``config.json``: the resolved TrainConfig and GeneratorConfig.

Multi-GPU (or multi-process CPU) runs go through ``torchrun``: every process trains on its
own random batches (seed + rank), DDP averages the gradients, every process scores the
same validation set (so all agree when to stop without talking), and only rank 0 writes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lexp.config import TRAIN_PRESETS, TrainConfig
from lexp.errors import InputError, LexpError, OutputError, UsageError
from lexp.losses import Perceptual, patch_discriminator, reconstruction_loss

EventCallback = Callable[..., None]
LOG_EVERY = 10  # steps between training-loss lines in metrics.jsonl


# --------------------------------------------------------------------------- set-up

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
    from lexp import data
    from lexp.model import GeneratorConfig
    from lexp.torch_env import resolve_device

    device = _process_device(resolve_device(config.device))
    preset = config.preset if config.preset != "auto" else choose_preset(device)
    batch, crop = TRAIN_PRESETS[preset]
    sources = data.find_sources(list(config.data))
    training, validation = data.split_by_clip(sources, config.val_fraction)
    model = GeneratorConfig(arch=config.arch, work_size=config.work_size)
    return Plan(config, model.to_dict(), str(device), int(os.environ.get("WORLD_SIZE", 1)),
                preset, config.batch or batch, config.crop or crop,
                [s.name for s in training], [s.name for s in validation])


# What a last.pt must hold to be resumed, and the type of each (a model.pt or best.pt
# holds weights only).
RESUME_FIELDS = {"train": dict, "state": dict, "optimizer": dict, "step": int,
                 "best": (int, float), "best_step": int, "bad_evals": int, "rng": list}


def _resumable(state: dict, path: Path) -> TrainConfig:
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


def _process_device(device):
    """Under torchrun each process takes the GPU of its local rank."""
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        import torch

        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


# --------------------------------------------------------------------------- checkpoints

def save_checkpoint(path: Path, payload: dict) -> None:
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
    from lexp.learned import CHECKPOINT_FORMAT, CHECKPOINT_VERSION

    return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "model": model_config.to_dict(), "train": train or {},
            "scores": scores or {},
            "state": {k: v.detach().cpu().clone() for k, v in state.items()}}


# --------------------------------------------------------------------------- the loop

def train(config: TrainConfig, *, resume: bool = False, on_event: EventCallback | None = None,
          jobs: int = 1) -> dict:
    """Run (or resume) a training run. ``on_event(kind, **fields)`` hears about
    ``data`` (a clip's samples are ready: ``done`` of ``total`` clips), ``skip`` (a clip
    that cannot be read), ``data-done`` (the split, and its samples counted), ``step``
    (every LOG_EVERY steps) and ``eval`` events. ``jobs``: processes that build the
    samples not in the cache yet.
    Returns a summary: steps run, best validation loss and step, seconds, paths."""
    import torch

    from lexp import data, sample_cache
    from lexp.learned import read_checkpoint
    from lexp.model import GeneratorConfig, build, encode_srgb

    emit = on_event or (lambda kind, **fields: None)
    # Adam's second moments of tiny gradients fall into float32 denormals, which x86 CPUs
    # process ~100x slower; flushing them to zero changes nothing that matters.
    torch.set_flush_denormal(True)
    distributed = int(os.environ.get("WORLD_SIZE", 1)) > 1
    the_plan = plan(config)
    device = torch.device(the_plan.device)
    rank = 0
    if distributed:
        import torch.distributed as dist

        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        rank = dist.get_rank()
    main = rank == 0
    run_dir = Path(config.run_dir)
    last_path = run_dir / "last.pt"
    state = None
    if resume:
        if not last_path.is_file():
            raise InputError(f"nothing to resume in {run_dir}",
                             hint="start the run without --resume first")
        state = read_checkpoint(last_path)
        saved = _resumable(state, last_path)
        if saved.arch != config.arch or saved.work_size != config.work_size:
            raise UsageError(f"{last_path} is a {saved.arch} run at {saved.work_size} px",
                             hint="resume with the same --arch and --work-size")
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
    model_config = GeneratorConfig.from_dict(the_plan.model)

    # Samples: rank 0 builds the cache, the others then read it.
    from lexp.paths import cache_dir

    cache_root = cache_dir() / "train-data"
    sources = data.find_sources(list(config.data))
    if distributed and not main:
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

    everything = sample_cache.build_samples(sources, model_config, cache_root,
                                    jobs=jobs if main else 1, on_source=built,
                                    on_skip=skipped)
    # Whole clips are held out, chosen among those that gave samples: an unreadable or
    # too short clip must not leave the validation set empty.
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
    if distributed and main:
        dist.barrier()
    if not train_samples:
        raise InputError("the training clips gave no samples",
                         hint=f"clips need at least {data.MIN_FRAMES} frames")
    training_set, validation_set = data.SampleSet(train_samples), data.SampleSet(val_samples)

    torch.manual_seed(config.seed)  # the same initial weights in every process
    network = build(model_config).to(device)
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    discriminator = d_optimiser = perceptual = None
    if config.adversarial_weight > 0:
        discriminator = patch_discriminator().to(device)
        d_optimiser = torch.optim.AdamW(discriminator.parameters(), lr=config.lr / 2,
                                        betas=(0.5, 0.999))
    if config.perceptual_weight > 0:
        try:
            perceptual = Perceptual(device)
        except LexpError as exc:
            raise UsageError("--perceptual-weight needs the VGG-16 weights: " + exc.message,
                             hint="run `lexp download vgg16` (or --from a file)") from None
    rng = np.random.default_rng(config.seed + rank)
    step, best, best_step, bad = 0, math.inf, 0, 0
    if state is not None:
        try:
            network.load_state_dict(state["state"])
            optimiser.load_state_dict(state["optimizer"])
            if discriminator is not None and "discriminator" in state:
                discriminator.load_state_dict(state["discriminator"])
                d_optimiser.load_state_dict(state["d_optimizer"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise InputError(f"{last_path} does not fit this run: "
                             f"{str(exc).splitlines()[0][:120]}",
                             hint="start a new run (another --run-dir)") from None
        step, best, best_step, bad = (state["step"], state["best"], state["best_step"],
                                      state["bad_evals"])
        rng.bit_generator.state = state["rng"][rank] if rank < len(state["rng"]) else \
            rng.bit_generator.state
        torch.set_rng_state(state["torch_rng"])
    model = network
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(network, device_ids=[device.index]
                                        if device.type == "cuda" else None)
    use_amp = config.amp and device.type == "cuda"

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp)

    def rate(at: int) -> float:  # cosine decay to 5 %
        return config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(at, config.steps)
                                                              / config.steps)))

    def evaluate() -> float:
        network.eval()
        total, count = 0.0, 0
        with torch.no_grad(), autocast():
            for evidence, truth in validation_set.batches(4):
                evidence, truth = evidence.to(device), truth.to(device)
                out = network(evidence).float()
                target = encode_srgb(truth)
                loss = reconstruction_loss(out, target, config.ssim_weight)
                total += float(loss) * truth.shape[0]
                count += truth.shape[0]
        network.train()
        return total / max(1, count)

    def checkpoint(rng_states: list) -> dict:
        payload = export_payload(model_config, network.state_dict(), train=config.to_dict())
        payload.update({"optimizer": optimiser.state_dict(), "step": step, "best": best,
                        "best_step": best_step, "bad_evals": bad,
                        "rng": rng_states,
                        "torch_rng": torch.get_rng_state()})
        if discriminator is not None:
            payload["discriminator"] = discriminator.state_dict()
            payload["d_optimizer"] = d_optimiser.state_dict()
        return payload

    if main:
        (run_dir / "config.json").write_text(json.dumps(the_plan.to_dict(), indent=2) + "\n")
    log = (run_dir / "metrics.jsonl").open("a") if main else None
    started, seen, window_loss, window_start = time.perf_counter(), 0, [], time.perf_counter()
    stopped = "steps"
    network.train()
    try:
        while step < config.steps:
            for group in optimiser.param_groups:
                group["lr"] = rate(step)
            evidence, truth = training_set.batch(rng, the_plan.batch, the_plan.crop)
            evidence, truth = evidence.to(device), truth.to(device)
            target = encode_srgb(truth)
            with autocast():
                out = model(evidence).float()
                loss = reconstruction_loss(out, target, config.ssim_weight)
                if perceptual is not None:
                    loss = loss + config.perceptual_weight * perceptual(out, target)
                if discriminator is not None:
                    fake = discriminator(out)
                    loss = loss + config.adversarial_weight * ((fake - 1) ** 2).mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), config.clip_grad)
            optimiser.step()
            if discriminator is not None:
                with autocast():
                    d_loss = ((discriminator(target) - 1) ** 2).mean() + \
                        (discriminator(out.detach()) ** 2).mean()
                d_optimiser.zero_grad(set_to_none=True)
                d_loss.backward()
                d_optimiser.step()
            step += 1
            seen += truth.shape[0]
            window_loss.append(loss.item())
            if step % LOG_EVERY == 0 or step == config.steps:
                now = time.perf_counter()
                record = {"step": step, "loss": float(np.mean(window_loss)),
                          "lr": rate(step - 1),
                          "samples_per_s": len(window_loss) * truth.shape[0] /
                          max(now - window_start, 1e-9)}
                window_loss, window_start = [], now
                if main:
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    emit("step", total=config.steps, **record)
            out_of_time = config.minutes is not None and \
                time.perf_counter() - started > 60 * config.minutes
            if distributed:  # every process must agree, or the collectives hang
                flag = torch.tensor([float(out_of_time)], device=device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                out_of_time = bool(flag.item())
            if step % config.eval_every == 0 or step == config.steps or out_of_time:
                value = evaluate() if len(validation_set) else float(loss.detach())
                improved = value < best
                if improved:
                    best, best_step, bad = value, step, 0
                else:
                    bad += 1
                rng_states = _gather_rng(rng, distributed)  # a collective: every rank
                if main:
                    record = {"step": step, "val_loss": value, "best": best,
                              "best_step": best_step}
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    payload = checkpoint(rng_states)
                    if improved:
                        save_checkpoint(run_dir / "best.pt", payload)
                        save_checkpoint(run_dir / "model.pt", export_payload(
                            model_config, network.state_dict(), train=config.to_dict(),
                            scores={"val_loss": value, "step": step}))
                    save_checkpoint(last_path, payload)
                    emit("eval", **record)
                if bad >= config.patience:
                    stopped = "early"
                    break
                if out_of_time:
                    stopped = "time"
                    break
        if distributed:
            # Rank 0 may still be writing checkpoints: a rank that tore down its process
            # group meanwhile could abort in gloo's threads ("terminate called without an
            # active exception", seen under load). Leave together.
            dist.barrier()
    finally:
        if log is not None:
            log.close()
        if distributed:
            model = None  # DDP holds the process group; let it go before destroying it
            dist.destroy_process_group()
    return {"steps": step, "stopped": stopped, "best_val_loss": best, "best_step": best_step,
            "seconds": time.perf_counter() - started, "samples_seen": seen,
            "run_dir": str(run_dir), "model": str(run_dir / "model.pt"),
            "training_samples": len(training_set), "validation_samples": len(validation_set)}


def _gather_rng(rng: np.random.Generator, distributed: bool) -> list:
    """Every process's numpy RNG state (rank order), so a resumed run draws on."""
    state = rng.bit_generator.state
    if not distributed:
        return [state]
    import torch.distributed as dist

    states: list = [None] * dist.get_world_size()
    dist.all_gather_object(states, state)
    return states
