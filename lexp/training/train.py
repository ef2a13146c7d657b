"""Training the generator, shaped like torchvision's reference scripts: :func:`train`
sets up (:mod:`lexp.training.setup`), then runs :func:`train_one_epoch` over
``torch.utils.data`` batches (:mod:`lexp.training.dataset`) until ``config.steps``, with
:func:`evaluate` every ``eval_every`` steps and a :class:`CheckpointSaver` keeping the
checkpoints (:mod:`lexp.checkpoint` writes them).

Each step: AdamW on Charbonnier (a smooth L1) + ``ssim_weight``·(1 − SSIM), or with
``loss="psnr"`` on the PSNR each sample loses against the flow render, both on
sRGB-encoded images (the space the protocols score), gradient-norm clipping, a cosine
learning-rate decay to 5 % (``CosineAnnealingLR``), bfloat16 autocast on CUDA, and
optional VGG-16 perceptual and PatchGAN adversarial terms (:mod:`lexp.training.losses`).
Validation scores the held-out clips (whole frames, not crops); the best score is kept,
and the run stops early after ``patience`` passes without improvement.

The run directory holds:
- ``last.pt`` (everything needed to resume: weights, optimiser and scheduler, step, epoch
  and batch within it, the torch RNG, the early-stopping state), ``best.pt`` (the best
  validation weights), ``model.pt`` (the best weights alone: the file to render with or
  ship), each written atomically;
- ``metrics.jsonl``: one JSON line per logged step and per validation pass;
- ``config.json``: the resolved TrainConfig and GeneratorConfig.

Multi-GPU (or multi-process CPU) runs go through ``torchrun``: a ``DistributedSampler``
gives every process its shard of each epoch, DDP averages the gradients, every process
scores the same validation set (so all agree when to stop without talking), and only
rank 0 writes.
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

from lexp import checkpoint
from lexp.config import TrainConfig
from lexp.errors import InputError, LexpError, UsageError
from lexp.training import setup
from lexp.training.losses import Perceptual, patch_discriminator, reconstruction_loss

EventCallback = Callable[..., None]
LOG_EVERY = 10  # steps between training-loss lines in metrics.jsonl


# --------------------------------------------------------------------------- the run

@dataclasses.dataclass
class Progress:
    """Where a run stands; saved in last.pt, so a resumed run goes on from here."""

    step: int = 0  # optimiser steps done
    epoch: int = 0  # the epoch under way (its order and crops derive from it)
    batch_in_epoch: int = 0  # its batches done
    seen: int = 0  # samples trained on in this process (not saved)
    last_loss: float = math.nan  # the latest batch's (the score when nothing is held out)

    def resume_fields(self) -> dict:
        return {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch}


@dataclasses.dataclass
class Parts:
    """The network and what trains it."""

    network: object  # the generator (nn.Module)
    model: object  # the network, or its DistributedDataParallel wrapper
    optimiser: object
    scheduler: object  # cosine decay to 5 % of the rate over config.steps
    discriminator: object = None  # PatchGAN, with --adversarial-weight
    d_optimiser: object = None
    perceptual: object = None  # VGG-16 features, with --perceptual-weight

    def state(self) -> dict:
        out = {"optimizer": self.optimiser.state_dict(),
               "scheduler": self.scheduler.state_dict()}
        if self.discriminator is not None:
            out["discriminator"] = self.discriminator.state_dict()
            out["d_optimizer"] = self.d_optimiser.state_dict()
        return out

    def load(self, state: dict) -> None:
        self.network.load_state_dict(state["state"])
        self.optimiser.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.discriminator is not None and "discriminator" in state:
            self.discriminator.load_state_dict(state["discriminator"])
            self.d_optimiser.load_state_dict(state["d_optimizer"])


def build_parts(config: TrainConfig, model_config, device, distributed: bool) -> Parts:
    import torch

    from lexp.model import build

    torch.manual_seed(config.seed)  # the same initial weights in every process
    network = build(model_config)
    if config.init is not None:  # fine-tuning: start from a checkpoint's weights
        network.load_state_dict(setup.initial_weights(config)[1])
    network = network.to(device)
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.steps,
                                                           eta_min=0.05 * config.lr)
    parts = Parts(network, network, optimiser, scheduler)
    if config.adversarial_weight > 0:
        parts.discriminator = patch_discriminator().to(device)
        parts.d_optimiser = torch.optim.AdamW(parts.discriminator.parameters(),
                                              lr=config.lr / 2, betas=(0.5, 0.999))
    if config.perceptual_weight > 0:
        try:
            parts.perceptual = Perceptual(device)
        except LexpError as exc:
            raise UsageError("--perceptual-weight needs the VGG-16 weights: " + exc.message,
                             hint="run `lexp download vgg16` (or --from a file)") from None
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        parts.model = DistributedDataParallel(network, device_ids=[device.index]
                                              if device.type == "cuda" else None)
    return parts


def autocast(config: TrainConfig, device):
    """bfloat16 autocast on CUDA with ``config.amp``; a no-op elsewhere."""
    import torch

    return torch.autocast("cuda", dtype=torch.bfloat16,
                          enabled=config.amp and device.type == "cuda")


def train_step(parts: Parts, evidence, truth, config: TrainConfig, device
               ) -> tuple[float, float]:
    """One optimiser step on a batch; returns its loss and the learning rate it used."""
    import torch

    from lexp.model import encode_srgb

    target = encode_srgb(truth)
    with autocast(config, device):
        out = parts.model(evidence).float()
        loss = objective(out, target, evidence, config)
        if parts.perceptual is not None:
            loss = loss + config.perceptual_weight * parts.perceptual(out, target)
        if parts.discriminator is not None:
            loss = loss + config.adversarial_weight * ((parts.discriminator(out) - 1) ** 2).mean()
    parts.optimiser.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(parts.network.parameters(), config.clip_grad)
    rate = parts.optimiser.param_groups[0]["lr"]
    parts.optimiser.step()
    parts.scheduler.step()
    if parts.discriminator is not None:
        with autocast(config, device):
            d_loss = ((parts.discriminator(target) - 1) ** 2).mean() + \
                (parts.discriminator(out.detach()) ** 2).mean()
        parts.d_optimiser.zero_grad(set_to_none=True)
        d_loss.backward()
        parts.d_optimiser.step()
    return loss.item(), rate


def objective(out, target, evidence, config: TrainConfig):
    """The reconstruction loss (``config.loss``) of sRGB ``out`` against ``target``
    (N×3×H×W), with ``config.harm_weight`` on what it loses against the flow render
    (candidate 0)."""
    from lexp.model import encode_srgb

    baseline = encode_srgb(evidence.candidates[:, 0])  # used by psnr, and by the charge
    return reconstruction_loss(out, target, config.ssim_weight, baseline, config.harm_weight,
                               config.loss)


def evaluate(network, loader, config: TrainConfig, device) -> float:
    """The mean :func:`objective` over the validation samples (whole frames)."""
    import torch

    from lexp.model import encode_srgb

    network.eval()
    total, count = 0.0, 0
    with torch.no_grad(), autocast(config, device):
        for evidence, truth in loader:
            evidence, truth = evidence.to(device), truth.to(device)
            loss = objective(network(evidence).float(), encode_srgb(truth), evidence, config)
            total += float(loss) * truth.shape[0]
            count += truth.shape[0]
    network.train()
    return total / max(1, count)


class CheckpointSaver:
    """Keeps the run's checkpoints (timm's saver, cut to what a run needs): ``last.pt``
    after every validation pass, ``best.pt`` and ``model.pt`` (weights alone, what ships)
    when the score improved; and the early-stopping count. Only rank 0 writes."""

    def __init__(self, run_dir: Path, model_config, config: TrainConfig, write: bool) -> None:
        self.run_dir, self.model_config, self.config, self.write = (
            run_dir, model_config, config, write)
        self.train_record = checkpoint.training_record(config)
        self.best, self.best_step, self.bad_evals = math.inf, 0, 0

    def resume_fields(self) -> dict:
        return {"best": self.best, "best_step": self.best_step, "bad_evals": self.bad_evals}

    def restore(self, state: dict) -> None:
        self.best, self.best_step, self.bad_evals = (state["best"], state["best_step"],
                                                     state["bad_evals"])

    def update(self, value: float, progress: Progress, parts: Parts) -> bool:
        """Record a validation score at ``progress.step``; True when it is the best yet."""
        import torch

        improved = value < self.best
        if improved:
            self.best, self.best_step, self.bad_evals = value, progress.step, 0
        else:
            self.bad_evals += 1
        if not self.write:
            return improved
        weights = parts.network.state_dict()
        payload = checkpoint.export_payload(self.model_config, weights,
                                            train=self.train_record)
        payload.update({**parts.state(), **progress.resume_fields(), **self.resume_fields(),
                        "torch_rng": torch.get_rng_state()})
        if improved:
            checkpoint.save(self.run_dir / "best.pt", payload)
            checkpoint.save(self.run_dir / "model.pt", checkpoint.export_payload(
                self.model_config, weights, train=self.train_record,
                scores={"val_loss": value, "step": progress.step}))
        checkpoint.save(self.run_dir / "last.pt", payload)
        return improved


class MetricsLog:
    """metrics.jsonl (rank 0 only): one JSON line per ``LOG_EVERY`` steps (the mean loss
    and the speed since the last line) and per validation pass."""

    def __init__(self, path: Path, write: bool, emit: EventCallback) -> None:
        self.file = path.open("a") if write else None
        self.emit = emit
        self.losses: list[float] = []
        self.samples, self.since = 0, time.perf_counter()

    def step(self, step: int, total: int, loss: float, rate: float, samples: int) -> None:
        self.losses.append(loss)
        self.samples += samples
        if step % LOG_EVERY == 0 or step == total:
            now = time.perf_counter()
            self.record("step", {"step": step, "loss": float(np.mean(self.losses)), "lr": rate,
                                 "samples_per_s": self.samples / max(now - self.since, 1e-9)},
                        total=total)
            self.losses, self.samples, self.since = [], 0, now

    def record(self, kind: str, record: dict, **extra) -> None:
        if self.file is not None:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
            self.emit(kind, **extra, **record)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def train_one_epoch(parts: Parts, loader, progress: Progress, config: TrainConfig, device,
                    log: MetricsLog, validate: Callable[[], bool], deadline: float | None
                    ) -> str | None:
    """Train on this epoch's batches (those not done yet). ``validate()`` runs every
    ``eval_every`` steps and says whether to stop early; ``deadline``: the perf_counter
    time of ``--minutes``. Returns why the run stops ("steps", "early", "time"), or None
    when the epoch ended first."""
    for evidence, truth in loader:
        loss, rate = train_step(parts, evidence.to(device), truth.to(device), config, device)
        progress.step += 1
        progress.batch_in_epoch += 1
        progress.seen += truth.shape[0]
        progress.last_loss = loss
        log.step(progress.step, config.steps, loss, rate, truth.shape[0])
        last = progress.step == config.steps
        out_of_time = _agreed(deadline is not None and time.perf_counter() > deadline, device)
        if progress.step % config.eval_every == 0 or last or out_of_time:
            if validate():
                return "early"
        if out_of_time:
            return "time"
        if last:
            return "steps"
    return None


def _agreed(flag: bool, device) -> bool:
    """Under DDP every process must agree (or the collectives hang): any one's True."""
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        return flag
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([float(flag)], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


# --------------------------------------------------------------------------- train

def restore(state: dict, parts: Parts, saver: CheckpointSaver, run_dir: Path) -> Progress:
    """Load a last.pt's ``state`` into the run: weights, optimisers, schedule, the
    early-stopping count and the torch RNG; returns where the run stood."""
    import torch

    try:
        parts.load(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise InputError(f"{run_dir / 'last.pt'} does not fit this run: "
                         f"{str(exc).splitlines()[0][:120]}",
                         hint="start a new run (another --run-dir)") from None
    saver.restore(state)
    torch.set_rng_state(state["torch_rng"])
    return Progress(state["step"], state["epoch"], state["batch_in_epoch"])


def train(config: TrainConfig, *, resume: bool = False, on_event: EventCallback | None = None,
          jobs: int = 1) -> dict:
    """Run (or resume) a training run; returns a summary (steps, best validation loss and
    step, seconds, paths). ``on_event(kind, **fields)`` hears ``data`` (``done`` of ``total``
    clips ready), ``skip`` (unreadable clip), ``cache-pruned`` (``entries`` and ``bytes`` of
    other data deleted to keep the sample cache within ``limit``), ``data-done`` (the split),
    ``step`` and ``eval``. ``jobs``: processes building the samples not in the cache yet."""
    import torch

    from lexp.model import GeneratorConfig
    from lexp.training import dataset, sample_cache

    emit = on_event or (lambda kind, **fields: None)
    # Adam's second moments of tiny gradients fall into float32 denormals, which x86 CPUs
    # process ~100x slower; flushing them to zero changes nothing that matters.
    torch.set_flush_denormal(True)
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    the_plan = setup.plan(config)
    device = torch.device(the_plan.device)
    rank = 0
    if world_size > 1:
        import torch.distributed as dist

        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        rank = dist.get_rank()
    main = rank == 0
    run_dir = Path(config.run_dir)
    state = setup.open_run_dir(run_dir, config, resume, main)
    model_config = GeneratorConfig.from_dict(the_plan.model)
    train_samples, val_samples = setup.load_samples(config, model_config, the_plan, main=main,
                                                    world_size=world_size, jobs=jobs,
                                                    emit=emit)
    parts = build_parts(config, model_config, device, world_size > 1)
    saver = CheckpointSaver(run_dir, model_config, config, write=main)
    progress = Progress() if state is None else restore(state, parts, saver, run_dir)
    loader = dataset.training_loader(train_samples, the_plan.batch, the_plan.crop,
                                     config.seed, rank=rank, world_size=world_size)
    validation = dataset.validation_loader(val_samples)

    def validate() -> bool:
        """Score, keep the checkpoints, and say whether to stop early."""
        if main:  # their cache entries are in use: not for another run to prune
            sample_cache.mark_in_use(train_samples + val_samples)
        value = evaluate(parts.network, validation, config, device) if val_samples else \
            progress.last_loss
        saver.update(value, progress, parts)
        log.record("eval", {"step": progress.step, "val_loss": value, "best": saver.best,
                            "best_step": saver.best_step})
        return saver.bad_evals >= config.patience

    if main:
        (run_dir / "config.json").write_text(json.dumps(the_plan.to_dict(), indent=2) + "\n")
    log = MetricsLog(run_dir / "metrics.jsonl", main, emit)
    started = time.perf_counter()
    deadline = None if config.minutes is None else started + 60 * config.minutes
    stopped = "steps"
    parts.network.train()
    try:
        while progress.step < config.steps:
            dataset.set_epoch(loader, progress.epoch, progress.batch_in_epoch)
            stopped = train_one_epoch(parts, loader, progress, config, device, log, validate,
                                      deadline)
            if stopped is not None:
                break
            progress.epoch, progress.batch_in_epoch = progress.epoch + 1, 0
        if world_size > 1:
            # Rank 0 may still be writing checkpoints: a rank that tore down its process
            # group meanwhile could abort in gloo's threads ("terminate called without an
            # active exception", seen under load). Leave together.
            dist.barrier()
    finally:
        log.close()
        if world_size > 1:
            parts.model = None  # DDP holds the process group; let it go before destroying it
            dist.destroy_process_group()
    return {"steps": progress.step, "stopped": stopped or "steps",
            "best_val_loss": saver.best, "best_step": saver.best_step,
            "seconds": time.perf_counter() - started, "samples_seen": progress.seen,
            "run_dir": str(run_dir), "model": str(run_dir / "model.pt"),
            "training_samples": len(train_samples), "validation_samples": len(val_samples)}
