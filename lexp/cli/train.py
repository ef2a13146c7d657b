"""``lexp train``: train the generator, and how its data building is shown."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Annotated

import typer

from lexp import stdout
from lexp.cli.app import EXIT_CODES_HELP, RunState, app
from lexp.cli.options import Arch, JsonSummary
from lexp.errors import Interrupted

TRAIN_EPILOG = """\
Examples:

  lexp train --data synthetic:24 --steps 300 --run-dir runs/try   # no footage needed

  lexp train --data clips/ --data synthetic:12 --run-dir runs/g1  # clips, recursively

  lexp train --data sky_timelapse/sky_train --run-dir runs/sky    # Sky Timelapse layout

  lexp train --data sky_timelapse/sky_train -j 16 --run-dir runs/sky   # 16 sample builders

  lexp train --data clips/ --run-dir runs/g1 --resume             # continue where it stopped

  lexp train --data clips/ --minutes 30 --run-dir runs/cpu        # a wall-clock budget

  lexp train --data corpus/ --windows-per-clip 8 --run-dir runs/c  # many clips, 16 samples each

  lexp train --data clips/ --init lexp --loss psnr --harm-weight 1 --lr 5e-4   # fine-tune, in dB

  lexp train --data clips/ --arch seed --run-dir runs/seed        # the original, to compare

  lexp train --data clips/ --dry-run                               # print the resolved plan

  torchrun --nproc_per_node 4 -m lexp train --data clips/ --run-dir runs/ddp   # 4 GPUs

  lexp render clip.mp4 -m learned --checkpoint runs/g1/model.pt -o out.jpg

Every clip is training data: a few of its frames in, the linear mean of the dense frames out
(extrapolate: 5 frames -> 64, the default --case; gap-fill: every 8th of 57, built and
cached too, trained on with --case gap-fill). Whole clips are held out for
validation. Samples are cached (LEXP_CACHE_DIR/train-data; past 20 GiB, the ones of other
data used the longest ago are deleted). The run directory gets last.pt (resume), best.pt,
model.pt (the weights to render with), metrics.jsonl and config.json.
""" + EXIT_CODES_HELP


OPTIMISATION, LOSSES, VALIDATION = "Optimisation", "Losses", "Validation"  # --help panels
Data = Annotated[list[str], typer.Option(
    "--data", metavar="CLIPS",
    help="Videos, folders of videos or frame folders (searched recursively; Sky Timelapse's "
         "sky_train/ works as is), or synthetic:N generated scenes. Repeatable.")]
RunDir = Annotated[Path, typer.Option("--run-dir", metavar="DIR",
                                      help="Where checkpoints and metrics go.")]
ArchOption = Annotated[Arch, typer.Option(
    "--arch", help="lexp: blends over the flow render (the default); seed: the original "
                   "ConvLSTM with a global flow code.")]
Steps = Annotated[int, typer.Option(min=1, help="Optimiser steps (the budget).")]
Minutes = Annotated[float | None, typer.Option(
    help="A wall-clock budget: stop after a validation pass once it is spent.")]
Preset = Annotated[str, typer.Option(
    metavar="PRESET", rich_help_panel=OPTIMISATION,
    help="Batch and crop: auto (from the GPU's memory), cpu, gpu-small, gpu-medium, "
         "gpu-large.")]
Batch = Annotated[int | None, typer.Option(min=1, help="Samples per step per process.",
                                           rich_help_panel=OPTIMISATION)]
Crop = Annotated[int | None, typer.Option(min=16, help="Training crop (work-size pixels).",
                                          rich_help_panel=OPTIMISATION)]
Lr = Annotated[float, typer.Option(help="AdamW learning rate (cosine decay).",
                                   rich_help_panel=OPTIMISATION)]
WeightDecay = Annotated[float, typer.Option(help="AdamW weight decay.",
                                            rich_help_panel=OPTIMISATION)]
SsimWeight = Annotated[float, typer.Option(
    help="Weight of the structural term (1 - SSIM) of --loss charbonnier.",
    rich_help_panel=LOSSES)]
PerceptualWeight = Annotated[float, typer.Option(
    help="VGG-16 perceptual term (needs `lexp download vgg16`).", rich_help_panel=LOSSES)]
AdversarialWeight = Annotated[float, typer.Option(help="PatchGAN adversarial term.",
                                                  rich_help_panel=LOSSES)]
HarmWeight = Annotated[float, typer.Option(
    help="Extra weight on what each sample loses against the flow render: the generator "
         "learns to keep it unless it does better.", rich_help_panel=LOSSES)]
Loss = Annotated[str, typer.Option(
    metavar="LOSS", rich_help_panel=LOSSES,
    help="charbonnier: a smooth L1 plus --ssim-weight × (1 - SSIM), the default; psnr: the "
         "dB each sample loses against the flow render, as the protocols score it (every "
         "clip weighs the same, whatever its error).")]
ClipGrad = Annotated[float, typer.Option(help="Gradient norm clipping.",
                                         rich_help_panel=OPTIMISATION)]
ValFraction = Annotated[float, typer.Option(help="Share of clips held out for validation.",
                                            rich_help_panel=VALIDATION)]
WindowsPerClip = Annotated[int | None, typer.Option(
    min=1, metavar="N",
    help="At most N samples of each case (extrapolate, gap-fill) from each clip, spread over "
         "it: many clips on a small machine. Default: all (up to 32 each).")]
Case = Annotated[list[str] | None, typer.Option(
    "--case", metavar="CASE",
    help="The samples to train on: extrapolate (5 frames in, a 64-frame exposure out: the "
         "only case -m learned acts on; the default) or gap-fill. Repeatable.")]
Init = Annotated[str | None, typer.Option(
    "--init", metavar="CKPT",
    help="Start from this checkpoint's weights (a .pt file, or lexp / seed: the shipped "
         "ones) and fine-tune them on --data.")]
EvalEvery = Annotated[int, typer.Option(min=1, help="Steps between validation passes.",
                                        rich_help_panel=VALIDATION)]
Patience = Annotated[int, typer.Option(
    min=1, help="Stop after this many passes without improvement.",
    rich_help_panel=VALIDATION)]
Seed = Annotated[int, typer.Option(help="Random seed.")]
TrainDevice = Annotated[str, typer.Option(metavar="DEVICE",
                                          help="auto, cpu, cuda, cuda:N or mps.")]
Amp = Annotated[bool, typer.Option("--amp/--no-amp", help="bfloat16 autocast on CUDA.")]
WorkSize = Annotated[int, typer.Option(min=32, help="The generator's long side in pixels.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue the run in --run-dir.")]
Jobs = Annotated[int | None, typer.Option(
    "--jobs", "-j", min=1, envvar="LEXP_JOBS", metavar="N",
    help="Processes that build the training samples not in the cache yet (each sample is "
         "a flow render). Default: one per CPU core.")]
DryRun = Annotated[bool, typer.Option("--dry-run",
                                      help="Print the resolved configuration and exit.")]


@app.command(epilog=TRAIN_EPILOG)
def train(
    data: Data, run_dir: RunDir = Path("runs/generator"), arch: ArchOption = Arch.lexp,
    steps: Steps = 2000, minutes: Minutes = None, preset: Preset = "auto",
    batch: Batch = None, crop: Crop = None, lr: Lr = 2e-3, weight_decay: WeightDecay = 1e-4,
    ssim_weight: SsimWeight = 0.2, perceptual_weight: PerceptualWeight = 0.0,
    adversarial_weight: AdversarialWeight = 0.0, harm_weight: HarmWeight = 0.0,
    loss: Loss = "charbonnier", clip_grad: ClipGrad = 1.0,
    val_fraction: ValFraction = 0.2, windows_per_clip: WindowsPerClip = None,
    case: Case = None, init: Init = None, eval_every: EvalEvery = 100, patience: Patience = 5,
    seed: Seed = 0, device: TrainDevice = "auto", amp: Amp = True, work_size: WorkSize = 320,
    resume: Resume = False, jobs: Jobs = None, dry_run: DryRun = False,
    json_out: JsonSummary = False,
) -> None:
    """Train the long-exposure generator (flow encoder + ConvLSTM) from any clips."""
    from lexp.cli.show import Reporter
    from lexp.config import TrainConfig
    from lexp.training import setup
    from lexp.training import train as training

    config = TrainConfig(data=tuple(data), run_dir=str(run_dir), arch=arch.value, steps=steps,
                         minutes=minutes,
                         preset=preset, batch=batch, crop=crop, lr=lr,
                         weight_decay=weight_decay, ssim_weight=ssim_weight,
                         perceptual_weight=perceptual_weight,
                         adversarial_weight=adversarial_weight, harm_weight=harm_weight,
                         loss=loss, clip_grad=clip_grad,
                         val_fraction=val_fraction, windows_per_clip=windows_per_clip,
                         cases=tuple(case or TrainConfig.cases), init=init,
                         eval_every=eval_every, patience=patience,
                         seed=seed, device=device, amp=amp, work_size=work_size)
    if json_out or dry_run:
        stdout.check_open("the plan" if dry_run else "the --json summary")
    if dry_run:
        stdout.write_text(json.dumps(setup.plan(config).to_dict(), indent=2) + "\n",
                          "the plan")
        return
    # Under torchrun only rank 0 speaks.
    reporter = Reporter(quiet=RunState.quiet or os.environ.get("RANK", "0") != "0")

    data_report = _TrainingDataReport(reporter)
    try:
        summary = training.train(config, resume=resume, on_event=data_report.event,
                                 jobs=jobs or os.cpu_count() or 1)
    except KeyboardInterrupt:
        if (run_dir / "last.pt").is_file():
            raise Interrupted(f"interrupted; resume with --resume --run-dir {run_dir}") \
                from None
        raise Interrupted("interrupted before the first checkpoint (last.pt), so there is "
                          "nothing to resume", hint="run the same command again") from None
    finally:
        data_report.close()
    if json_out:
        stdout.write_text(json.dumps(summary) + "\n", "the --json summary")
    reporter.info(f"{summary['steps']} steps in {summary['seconds']:.0f} s "
                  f"({summary['stopped']}); best validation loss "
                  f"{summary['best_val_loss']:.4f} at step {summary['best_step']}; "
                  f"weights: {summary['model']}")


class _TrainingDataReport:
    """How ``lexp train`` shows its samples being built. A few clips: a line each. Many
    (a dataset such as Sky Timelapse, tens of thousands): a bar on a terminal, else a
    line every tenth of the way, so a log stays readable. Then one line of totals,
    naming the validation clips when they are few."""

    LINE_PER_CLIP = 50  # at most this many clips get a line each

    def __init__(self, reporter) -> None:
        self.reporter = reporter
        self.bar: contextlib.ExitStack | None = None
        self.advance = None

    def event(self, kind: str, **f) -> None:
        """``train``'s ``on_event``: every event of a run, shown (training's own lines
        too: they follow the data's)."""
        from lexp.training.train import LOG_EVERY

        if kind == "data":
            self.clip(**f)
        elif kind == "data-done":
            self.finish(**f)
        elif kind == "skip":
            self.reporter.warn(f"skipped {f['clip']}: {f['why']}")
        elif kind == "cache-pruned":
            self.reporter.info(f"training data: deleted the cached samples of {f['entries']} "
                               f"clip{'s' * (f['entries'] != 1)} unused the longest "
                               f"({f['bytes'] / 2**30:.1f} GiB) to keep the cache within "
                               f"{f['limit'] / 2**30:.0f} GiB")
        elif kind == "step" and (f["step"] % (10 * LOG_EVERY) == 0 or f["step"] == f["total"]):
            self.reporter.info(f"step {f['step']}/{f['total']}: loss {f['loss']:.4f}, "
                               f"{f['samples_per_s']:.1f} samples/s")
        elif kind == "eval":
            self.reporter.info(f"step {f['step']}: validation loss {f['val_loss']:.4f} "
                               f"(best {f['best']:.4f} at step {f['best_step']})")

    def clip(self, clip: str, samples: int, done: int, total: int) -> None:
        if total <= self.LINE_PER_CLIP:
            self.reporter.info(f"{clip}: {samples} samples")
            return
        if self.bar is None:
            self.bar = contextlib.ExitStack()
            self.advance = self.bar.enter_context(
                self.reporter.progress_or_lines("training data", "clips"))
        if self.advance is None:  # --quiet
            return
        if self.reporter.interactive or done % max(1, total // 10) == 0 or done == total:
            self.advance(done, total)

    def finish(self, training_clips: int, training_samples: int, validation_clips: list[str],
               validation_samples: int, skipped: int) -> None:
        self.close()

        def clips(n: int) -> str:
            return f"{n} clip" + "s" * (n != 1)

        held_out = f" ({', '.join(validation_clips)})" if 0 < len(validation_clips) <= 8 else ""
        skipped_note = f"; {clips(skipped)} skipped" if skipped else ""
        self.reporter.info(f"training data: {training_samples} samples from "
                           f"{clips(training_clips)}, validation: {validation_samples} from "
                           f"{clips(len(validation_clips))}{held_out}{skipped_note}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
