"""The ``lexp`` command line: parses options, builds a config, calls one library function.

Nothing heavy is imported at module level (no numpy, cv2 or torch), so ``lexp --help``
stays fast. Errors from the library arrive as :class:`lexp.errors.LexpError` and leave
as one line on stderr and an exit code (see ``lexp.errors``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from enum import Enum
from functools import partial
from pathlib import Path

import typer

from lexp import __version__, stdout
from lexp.config import STILL_BELOW_PX
from lexp.errors import EXIT_ERROR, EXIT_SOME_FAILED, Interrupted, LexpError, UsageError

EXIT_CODES_HELP = (
    "Exit codes: 0 success · 1 error · 2 usage error · 3 some inputs of a batch failed · "
    "130 interrupted."
)

app = typer.Typer(
    name="lexp",
    help="Turn short clips into long-exposure photographs.\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class _State:
    debug = False
    quiet = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lexp {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", envvar="LEXP_QUIET",
                               help="No progress or messages on stderr (errors and "
                                    "warnings still show)."),
    debug: bool = typer.Option(False, "--debug",
                               help="Show tracebacks for errors (also LEXP_DEBUG=1)."),
) -> None:
    """Turn short clips into long-exposure photographs."""
    _State.debug = debug or os.environ.get("LEXP_DEBUG", "") not in ("", "0")
    _State.quiet = quiet


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


RENDER_EPILOG = """\
Examples:

  lexp render clip.mp4 -o out.jpg                      # auto: flow or mean, it says which

  lexp render clip.mp4 -o out.jpg -m mean              # mean of every frame, in linear light

  lexp render clip.mp4 -o trails.jpg -m flow --stride 8   # continuous trails from 1 in 8 frames

  lexp render clip.mp4 -o long.jpg -m flow --end 5f --exposure 64f   # 5 frames, 64 exposed

  lexp render clip.mp4 -o out.jpg -m flow --flow raft-large --device cuda

  lexp render clip.mp4 -o long.jpg -m learned --end 5f --exposure 64f   # the trained generator

  lexp render clip.mp4 -o seed.jpg -m learned --checkpoint seed --end 5f --exposure 64f

  lexp render clip.mp4 -o trails.png -m max            # lighten: light trails, star trails

  lexp render clip.mp4 -o out.tif --start 2 --end 6s   # 16-bit TIFF of seconds 2 to 6

  lexp render frames/ -o out.jpg --fps 24 --end 3      # a folder of frames (natural order)

  lexp render clip.mp4 -o out.png --ev 1 --tone soft --bit-depth 16   # brighter, soft highlights

  lexp render clip.mp4 -o out.jpg --stride 2 --max-frames 100 --quality 90 --overwrite

  lexp render clip.mp4 -o clean.jpg -m median --median-memory 1024 --transfer rec709

  lexp render clips/ -o renders/ --json                # every video in clips/, one JSON line each

  lexp render clips/ -o 'out/{parent}/{stem}.png' -j 2  # a name template; two clips at a time

  lexp render clips/ -o renders/ --shard 3/8           # the 3rd of 8 parts, for a job array

  cat clip.mp4 | lexp render - -o - > out.jpg          # stdin to stdout

  lexp render shaky.mp4 -o steady.jpg --align          # handheld: register frames first

  lexp render falls.mp4 -o falls.jpg --align --keep-sharp first   # silky water, sharp rocks

  lexp render runner.mp4 -o flash.jpg -m flow --rear-curtain      # blur + a final flash

  lexp render stars/ -o trails.jpg -m max --video trails.mp4 --comet 2s   # trail video

  lexp render timelapse/ -o day.jpg --deflicker        # flicker removed; EXIF times weigh frames

  lexp render falls.mp4 -o long.jpg --end 5f --exposure 64f --motion-guide 270   # fall down

  lexp render phone_hdr.mov -o out.jpg --tone reinhard   # HLG/PQ found by auto, written as sRGB

  ffmpeg -i in.mov -f image2pipe -c:v png - | lexp render - --fps 30 -o out.png  # image stream

Times are seconds (2.5 or 2.5s) or frame numbers (48f); the window is [start, end).
""" + EXIT_CODES_HELP


@app.command(epilog=RENDER_EPILOG)
def render(
    inputs: list[Path] = typer.Argument(
        ..., metavar="INPUT...",
        help="Video files, folders (of videos, or of image frames), image files, quoted "
             "globs, or - for a video on stdin."),
    output: str | None = typer.Option(
        None, "--output", "-o",
        help="Output image (.jpg/.png/.tif); a folder (several inputs; created if it ends "
             "in /); a name template with {stem} {name} {parent} {method}; or - for stdout. "
             "Default: {stem}_{method}.jpg in the current folder.",
        rich_help_panel="Output"),
    method: Method = typer.Option(
        Method.auto, "--method", "-m",
        help="flow: integrate along the optical flow (continuous trails from few frames; "
             "extrapolates past the clip's end); learned: the flow render refined by the "
             "trained generator (see --checkpoint), best past the clip's end; mean: a long "
             "exposure by stacking; "
             "max/lighten: light trails; min/darken: remove bright movers; median: remove "
             "transient objects (memory-bounded: see --median-memory). auto: flow when the "
             "exposure outlasts the clip, frames are strided, or the first two frames move "
             "more than 1 px, else mean; it says which and why."),
    exposure: str | None = typer.Option(
        None, metavar="TIME",
        help="Exposure length: 2s, 1.5 or 48f. Shorter than the clip: the first TIME of the "
             "window. Longer (flow): the motion is extrapolated past the last frame, "
             "assuming what moved steadily in the last 5 frames keeps its speed and "
             "direction, a steady change of light keeps its pace, a shaking camera keeps "
             "wandering (--align: it holds still), and everything else keeps its average "
             "look.",
        rich_help_panel="Frames"),
    flow_method: FlowMethod = typer.Option(
        FlowMethod.auto, "--flow", metavar="ESTIMATOR",
        help="Flow estimator for --method flow: auto (RAFT on a GPU when its weights are "
             "cached, else DIS medium), dis, dis-fast, dis-ultrafast, farneback, "
             "raft-small, raft-large. Flows are cached (see lexp flow).",
        rich_help_panel="Flow"),
    device: str = typer.Option("auto", metavar="DEVICE",
                               help="For RAFT and the generator: auto, cpu, cuda, cuda:N or "
                                    "mps.",
                               rich_help_panel="Flow"),
    checkpoint: str | None = typer.Option(
        None, metavar="NAME|FILE",
        help="For -m learned: the generator, a shipped name (lexp: the default; seed: the "
             "original system, for comparison) or a .pt file from `lexp train`.",
        rich_help_panel="Flow"),
    start: str | None = typer.Option(None, help="Start of the window: 2.5 (s) or 48f.",
                                 rich_help_panel="Frames"),
    end: str | None = typer.Option(None, help="End of the window (exclusive): 6 or 180f.",
                               rich_help_panel="Frames"),
    stride: int = typer.Option(1, min=1, help="Use every N-th frame of the window.",
                              rich_help_panel="Frames"),
    max_frames: int | None = typer.Option(None, min=1, help="Use at most N frames.",
                                               rich_help_panel="Frames"),
    fps: float | None = typer.Option(
        None, help="Frame rate for clips without one (image folders); overrides the "
                   "video's rate for --start/--end in seconds.", rich_help_panel="Frames"),
    transfer: Transfer = typer.Option(
        Transfer.auto, help="Transfer curve of the clip, undone before blending. auto: the "
                            "video's own HDR curve (hlg, pq: phones' HDR, HDR10) when it is "
                            "tagged so, else srgb. An HDR clip is blended in scene light, "
                            "highlights and all, and written as an sRGB picture. 'none' "
                            "blends code values (the naive 8-bit mean).",
        rich_help_panel="Light"),
    ev: float = typer.Option(0.0, help="Exposure compensation in stops (+1 = twice the light).",
                            rich_help_panel="Light"),
    tone: Tone = typer.Option(
        Tone.auto, help="Tone curve for highlights above white (after --ev): clip, soft "
                        "shoulder, or reinhard. auto: soft for HDR clips, clip otherwise.",
        rich_help_panel="Light"),
    image_format: ImageFormat | None = typer.Option(
        None, "--format", help="Image format; default from the -o extension (jpeg for -o -).",
        rich_help_panel="Output"),
    bit_depth: int | None = typer.Option(
        None, help="8 or 16 (PNG, TIFF). Default: 16 for TIFF, 8 otherwise.",
        rich_help_panel="Output"),
    quality: int = typer.Option(95, min=1, max=100, help="JPEG quality.",
                              rich_help_panel="Output"),
    median_memory: int = typer.Option(
        512, min=16, metavar="MB",
        help="Median keeps at most this many MB of frames; longer windows are sampled evenly.",
        rich_help_panel="Light"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace outputs that already exist "
                                                "(default: skip them).", rich_help_panel="Output"),
    workers: int = typer.Option(
        1, "--jobs", "-j", min=1, envvar="LEXP_JOBS", metavar="N",
        help="Render N clips at once, in N processes.", rich_help_panel="Batch"),
    shard: str | None = typer.Option(
        None, metavar="I/N", rich_help_panel="Batch",
        help="Render only the I-th of N disjoint parts of the inputs (1-based), for job "
             "arrays: every machine runs the same command with its own I."),
    json_lines: bool = typer.Option(False, "--json",
                                    help="Print one JSON line per input on stdout.",
                                    rich_help_panel="Output"),
    cache: Path | None = typer.Option(
        None, "--cache-dir", envvar="LEXP_CACHE_DIR", metavar="DIR",
        help="The lexp cache: flows, weights (default: the user cache folder).",
        rich_help_panel="Flow"),
    align: bool = typer.Option(
        False, "--align",
        help="Steady a handheld clip: register every frame to the first (ORB features + "
             "RANSAC, which ignores moving things) before blending; frames that cannot be "
             "registered are skipped and reported. e.g. --align --align-model homography",
        rich_help_panel=CONTROLS),
    align_model: AlignModel = typer.Option(
        AlignModel.similarity, help="similarity: shift, rotation, zoom (hand shake); "
                                    "homography: also tilt (wide lenses, close scenes).",
        rich_help_panel=CONTROLS),
    align_border: AlignBorder = typer.Option(
        AlignBorder.crop, help="crop: cut to the area every frame covers; fill: keep the "
                               "full frame, borders filled from the first frame.",
        rich_help_panel=CONTROLS),
    keep_sharp: str | None = typer.Option(
        None, metavar="FRAME",
        help="Blend one sharp frame (first, last, or a time: 2s, 48f) in where the scene "
             "barely moves, so rocks stay crisp and water goes silky. "
             "e.g. --keep-sharp first --still-below 1",
        rich_help_panel=CONTROLS),
    still_below: float = typer.Option(
        STILL_BELOW_PX, metavar="PX", min=0.0,
        help="With --keep-sharp: still means moving less than PX pixels per frame "
             "(measured by optical flow; the mask is feathered). 0: use --sharp-mask only.",
        rich_help_panel=CONTROLS),
    sharp_mask: Path | None = typer.Option(
        None, metavar="IMAGE",
        help="With --keep-sharp: an image, white where the sharp frame shows (added to "
             "the still areas). e.g. --keep-sharp last --sharp-mask subject.png",
        rich_help_panel=CONTROLS),
    rear_curtain: bool = typer.Option(
        False, "--rear-curtain",
        help="The rear-curtain flash look: the blur plus the last frame at half strength "
             "(a sharp subject at the head of its trail). e.g. -m flow --rear-curtain",
        rich_help_panel=CONTROLS),
    video: str | None = typer.Option(
        None, metavar="VIDEO",
        help="Also write the exposure building up, one video frame per input frame "
             "(star-trail video; .mp4). Takes the -o template fields. "
             "e.g. -m max --video trails.mp4",
        rich_help_panel=CONTROLS),
    comet: str | None = typer.Option(
        None, metavar="TIME",
        help="With --video: comet mode, old light fades with this half-life (1s, 30f). "
             "e.g. -m max --video comets.mp4 --comet 15f",
        rich_help_panel=CONTROLS),
    timestamps: bool = typer.Option(
        True, "--timestamps/--no-timestamps",
        help="Weigh each frame by the time it covers (video presentation times; EXIF "
             "capture times in image folders), so skipped or unevenly spaced frames do "
             "not bias the result. Used by mean and flow.",
        rich_help_panel=CONTROLS),
    deflicker: bool = typer.Option(
        False, "--deflicker",
        help="Match every frame's exposure (one gain per frame, in linear light) before "
             "blending: for flickering time-lapses. e.g. --deflicker -m mean",
        rich_help_panel=CONTROLS),
    motion_guide: str = typer.Option(
        "flow", metavar="GUIDE",
        help="Direction of extrapolated motion (--exposure longer than the clip): flow "
             "(as measured), 4way or 8way (snapped to 4 or 8 directions), or an angle in "
             "degrees (0 right, 90 up, 270 down) for all motion. e.g. --motion-guide 270",
        rich_help_panel=CONTROLS),
) -> None:
    """Render a long exposure from a clip, in linear light: stacked, or integrated along
    the optical flow."""
    if json_lines and output == "-":
        raise UsageError("--json and -o - both want stdout", hint="write the image to a file")
    if json_lines:
        stdout.check_open("the --json lines")
    try:
        if cache is not None:  # every cache user (and each -j worker) reads it from here
            os.environ["LEXP_CACHE_DIR"] = str(cache)
        from lexp.config import OutputConfig, RenderConfig, TimeSpec, Window

        window = Window.from_options(start, end, stride, max_frames)
        config = RenderConfig(method=method.value, window=window, fps=fps,
                              transfer=transfer.value, ev=ev, tone=tone.value,
                              median_memory_mb=median_memory,
                              exposure=TimeSpec.parse(exposure, "--exposure") if exposure
                              else None,
                              flow=flow_method.value, device=device,
                              align=align_model.value if align else None,
                              align_border=align_border.value, deflicker=deflicker,
                              timestamps=timestamps, keep_sharp=keep_sharp,
                              still_below=still_below,
                              sharp_mask=str(sharp_mask) if sharp_mask else None,
                              rear_curtain=rear_curtain, motion_guide=motion_guide,
                              checkpoint=checkpoint)
        if config.method == "learned":
            from lexp import learned

            # Fail before any work.
            learned.load_network(learned.resolve_checkpoint(checkpoint))
        if comet is not None and video is None:
            raise UsageError("--comet shapes the trail video", hint="add --video trails.mp4")
        out = OutputConfig(format=image_format.value if image_format else None,
                           bit_depth=bit_depth, quality=quality,
                           comet=TimeSpec.parse(comet, "--comet") if comet else None)
        _render_batch(inputs, output, config, out, video=video, shard=shard, workers=workers,
                      overwrite=overwrite, json_lines=json_lines)
    except LexpError as err:
        # A script reading the lines learns why there are none. (Not for an interrupted
        # batch: its lines are the clips that finished, and the exit code says the rest.)
        if json_lines and not isinstance(err, Interrupted):
            with contextlib.suppress(LexpError):
                stdout.write_text(json.dumps({"input": None, "output": output,
                                              "status": "failed", "error": err.message,
                                              "hint": err.hint,
                                              "exit_code": err.exit_code}) + "\n")
        raise


def _render_batch(inputs, output, config, out, *, video, shard, workers, overwrite,
                  json_lines) -> None:
    """Resolve the inputs, plan the outputs and render them, reporting each result."""
    from lexp import jobs
    from lexp.console import Reporter

    reporter = Reporter(quiet=_State.quiet)
    # With several inputs, one that is missing (or a folder of junk) is one failed input,
    # reported with the rest; a single input that cannot be found is the run's error.
    unresolved: list = []
    names = [str(p) for p in inputs]
    sources = jobs.resolve_inputs(names, problems=unresolved if len(names) > 1 else None)
    plan = jobs.plan_jobs(sources, output, config, out,
                          shard=jobs.parse_shard(shard) if shard else None,
                          video=video) if sources else []

    def progress_for(job):
        return reporter.progress(job.source.name)

    parallel = workers > 1 and len(plan) > 1
    batch_bar = reporter.batch_progress(len(plan)) if parallel else contextlib.nullcontext()

    def on_result(result):
        if advance is not None:
            advance()
        if json_lines:
            stdout.write_text(json.dumps(result.to_json()) + "\n", "a --json line")
        for warning in result.warnings:
            reporter.warn(warning)
        if result.status == "ok":
            where = "stdout" if result.output == "-" else result.output
            frames = "1 frame" if result.frames == 1 else f"{result.frames} frames"
            reporter.info(f"{result.input} → {where}: {describe_method(result)} of "
                          f"{frames} in {result.seconds:.2f} s")
        elif result.status == "skipped":
            hint = f" ({result.hint})" if result.hint else ""
            reporter.info(f"skipped {result.input}: {result.error}{hint}")
        else:
            reporter.error(f"{result.input}: {result.error}", result.hint)

    advance = None
    results = []
    for name, error in unresolved:
        results.append(jobs.JobResult(name, "", "failed", method=config.method,
                                      error=error.message, hint=error.hint,
                                      exit_code=error.exit_code))
        on_result(results[-1])
    try:
        with batch_bar as advance:
            results += jobs.render_jobs(plan, config, out, overwrite=overwrite,
                                        workers=workers, progress_for=progress_for,
                                        on_result=on_result, debug=_State.debug)
    except KeyboardInterrupt:
        # Typer would turn this into a silent exit 130; say what happened instead.
        raise Interrupted("interrupted; no partial output was left") from None
    failed = [r for r in results if r.status == "failed"]
    if len(results) > 1:
        counts = {s: sum(r.status == s for r in results) for s in ("ok", "skipped", "failed")}
        reporter.info(f"done: {counts['ok']} rendered, {counts['skipped']} skipped, "
                      f"{counts['failed']} failed")
    if failed:
        code = failed[0].exit_code if len(results) == 1 else (
            EXIT_ERROR if len(failed) == len(results) else EXIT_SOME_FAILED)
        raise typer.Exit(code)


def describe_method(result) -> str:
    """'flow (dis-medium, chosen by auto: ...)' for messages."""
    details = []
    one_frame = result.about.get("pairs") == 0  # no flow was estimated: nothing moves
    if result.about.get("flow") and not one_frame:
        details.append(result.about["flow"])
    if result.about.get("extrapolated_frames"):
        count = result.about["extrapolated_frames"]
        frames = f"{count:g} frame{'' if count == 1 else 's'}"
        details.append(f"held still for {frames} more" if one_frame else f"{frames} extrapolated")
    align = result.about.get("align")
    if align:
        details.append(f"aligned {align['aligned']} frames"
                       + (f", cropped to {align['crop'][2]}×{align['crop'][3]}"
                          if align.get("crop") else ""))
    if result.about.get("deflicker"):
        details.append(f"deflickered {result.about['deflicker']['corrected_frames']} frames")
    if result.about.get("keep_sharp"):
        details.append(f"frame {result.about['keep_sharp']['frame']} kept sharp")
    hdr = result.about.get("hdr")
    if hdr:
        details.append(f"{hdr['transfer'].upper()} HDR to sRGB, tone {hdr['tone']}")
    if result.about.get("auto"):
        details.append(f"chosen by auto: {result.about['auto']}")
    return result.method + (f" ({'; '.join(details)})" if details else "")


FLOW_EPILOG = """\
Examples:

  lexp flow clip.mp4                                   # fill the cache, print a summary

  lexp flow clip.mp4 --export-video flow.mp4           # colour-coded flow as a video

  lexp flow clip.mp4 --export-flo flo/ --backward      # Middlebury .flo, both directions

  lexp flow clip.mp4 --method farneback --scale 0.5 --json

  lexp flow clip.mp4 --method raft-large --device cuda  # after: lexp download raft-large

  lexp flow clip.mp4 --export-images pngs/ --no-cache    # colour PNGs, cache untouched

  lexp flow clip.mp4 --cache-dir /scratch/lexp-cache --start 2 --end 6

Flow is in pixels, from each frame to the next. Colours: hue = direction, strength = speed.
Flows are cached (LEXP_CACHE_DIR/flow) by the clip's content, so a second run is fast.
"""


@app.command(epilog=FLOW_EPILOG)
def flow(
    clip: Path = typer.Argument(..., metavar="CLIP", help="A video, a folder of frames, or -."),
    method: FlowMethod = typer.Option(
        FlowMethod.auto, "--method", "-m",
        help="Estimator: RAFT small/large (torchvision; weights from lexp download), "
             "DIS (OpenCV; presets medium, fast, ultrafast) or Farneback. auto: RAFT when "
             "its weights are in the cache, else DIS medium; it says which."),
    scale: float = typer.Option(1.0, min=0.05, max=1.0,
                                help="Estimate on frames resized by this factor (faster); "
                                     "flow is returned in full-frame pixels."),
    backward: bool = typer.Option(False, "--backward",
                                  help="Also compute the flow from each frame to the one before."),
    device: str = typer.Option("auto", metavar="DEVICE",
                               help="For RAFT: auto (CUDA, else MPS, else CPU), cpu, cuda, "
                                    "cuda:N or mps."),
    start: str | None = typer.Option(None, help="Start of the window: 2.5 (s) or 48f."),
    end: str | None = typer.Option(None, help="End of the window (exclusive)."),
    stride: int = typer.Option(1, min=1, help="Flow between every N-th frame."),
    max_frames: int | None = typer.Option(None, min=2, help="Use at most N frames."),
    fps: float | None = typer.Option(None, help="Frame rate for clips without one."),
    export_flo: Path | None = typer.Option(None, metavar="DIR",
                                           help="Write Middlebury .flo files into DIR."),
    export_images: Path | None = typer.Option(None, metavar="DIR",
                                              help="Write colour-coded PNGs into DIR."),
    export_video: Path | None = typer.Option(
        None, metavar="MP4", help="Write the colour-coded forward flow as a video."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor fill the cache."),
    cache: Path | None = typer.Option(None, "--cache-dir", envvar="LEXP_CACHE_DIR", metavar="DIR",
                                      help="The lexp cache (default: the user cache folder)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Estimate optical flow between consecutive frames, cached on disk and exportable."""
    from lexp import flow as flows
    from lexp import jobs
    from lexp.config import RenderConfig, Window
    from lexp.console import Reporter
    from lexp.flow_cache import FlowCache

    if json_out:
        stdout.check_open("the --json summary")
    reporter = Reporter(quiet=_State.quiet)
    config = RenderConfig(fps=fps, window=Window.from_options(start, end, stride, max_frames))
    if method == FlowMethod.auto:
        estimator = flows.auto_estimator(scale=scale, device=device, cache=cache)
    else:
        estimator = flows.make_estimator(method.value, scale=scale, device=device, cache=cache)
    sources = jobs.resolve_inputs([str(clip)])
    if len(sources) != 1:
        raise UsageError(f"{clip} holds {len(sources)} clips; lexp flow takes one",
                         hint="name one video (or one folder of frames)")
    if export_video is not None:
        from lexp.paths import check_writable_dir

        if export_video.suffix.lower() not in jobs.VIDEO_SUFFIXES:
            raise UsageError(f"--export-video {export_video} is not a video file name",
                             hint="end it in .mp4 (or .mov, .m4v, .mkv)")
        check_writable_dir(export_video.parent, export_video)
    exporter = flows.FlowExporter(export_flo, export_images, export_video)
    flow_cache = None if no_cache else FlowCache(cache)
    try:
        with reporter.progress(f"flow {clip}") as on_progress:
            run = flows.clip_flows(sources[0], estimator, config, cache=flow_cache,
                                   backward=backward, on_flow=exporter, on_progress=on_progress)
    except KeyboardInterrupt:
        exporter.close(commit=False)
        raise Interrupted("interrupted; no partial export was left") from None
    except BaseException:
        exporter.close(commit=False)
        raise
    exporter.close()
    if flow_cache is not None:
        flow_cache.prune()
    if run.cache_damaged:
        reporter.warn(f"{run.cache_damaged} damaged flow cache entries were found, "
                      "deleted and recomputed")
    if flow_cache is not None and flow_cache.write_problem is not None:
        reporter.warn(flow_cache.write_problem)
    if json_out:
        stdout.write_text(json.dumps(run.to_json()) + "\n", "the --json summary")
    chosen = ", chosen by auto" if method == FlowMethod.auto else ""
    if run.device:
        chosen = f" on {run.device}{chosen}"
    reporter.info(f"{run.clip}: {run.pairs} flows ({run.method}{chosen}) in {run.seconds:.2f} s; "
                  f"motion mean {run.mean_motion:.2f} px, max {run.max_motion:.2f} px; "
                  f"cache {run.cache_hits} hits, {run.cache_misses} misses")


TRAIN_EPILOG = """\
Examples:

  lexp train --data synthetic:24 --steps 300 --run-dir runs/try   # no footage needed

  lexp train --data clips/ --data synthetic:12 --run-dir runs/g1  # clips, recursively

  lexp train --data sky_timelapse/sky_train --run-dir runs/sky    # Sky Timelapse layout

  lexp train --data sky_timelapse/sky_train -j 16 --run-dir runs/sky   # 16 sample builders

  lexp train --data clips/ --run-dir runs/g1 --resume             # continue where it stopped

  lexp train --data clips/ --minutes 30 --run-dir runs/cpu        # a wall-clock budget

  lexp train --data clips/ --arch seed --run-dir runs/seed        # the original, to compare

  lexp train --data clips/ --dry-run                               # print the resolved plan

  torchrun --nproc_per_node 4 -m lexp train --data clips/ --run-dir runs/ddp   # 4 GPUs

  lexp render clip.mp4 -m learned --checkpoint runs/g1/model.pt -o out.jpg

Every clip is training data: a few of its frames in, the linear mean of the dense frames out
(extrapolate: 5 frames -> 64; gap-fill: every 8th of 57). Whole clips are held out for
validation. The run directory gets last.pt (resume), best.pt, model.pt (the weights to
render with), metrics.jsonl and config.json.
""" + EXIT_CODES_HELP


@app.command(epilog=TRAIN_EPILOG)
def train(
    data: list[str] = typer.Option(
        ..., "--data", metavar="CLIPS",
        help="Videos, folders of videos or frame folders (searched recursively; Sky "
             "Timelapse's sky_train/ works as is), or synthetic:N generated scenes. "
             "Repeatable."),
    run_dir: Path = typer.Option(Path("runs/generator"), "--run-dir", metavar="DIR",
                                 help="Where checkpoints and metrics go."),
    arch: Arch = typer.Option(Arch.lexp, "--arch",
                              help="lexp: blends over the flow render (the default); seed: "
                                   "the original ConvLSTM with a global flow code."),
    steps: int = typer.Option(2000, min=1, help="Optimiser steps (the budget)."),
    minutes: float | None = typer.Option(None, help="A wall-clock budget: stop after a "
                                                    "validation pass once it is spent."),
    preset: str = typer.Option("auto", metavar="PRESET",
                               help="Batch and crop: auto (from the GPU's memory), cpu, "
                                    "gpu-small, gpu-medium, gpu-large.",
                               rich_help_panel="Optimisation"),
    batch: int | None = typer.Option(None, min=1, help="Samples per step per process.",
                                     rich_help_panel="Optimisation"),
    crop: int | None = typer.Option(None, min=16, help="Training crop (work-size pixels).",
                                    rich_help_panel="Optimisation"),
    lr: float = typer.Option(2e-3, help="AdamW learning rate (cosine decay).",
                             rich_help_panel="Optimisation"),
    weight_decay: float = typer.Option(1e-4, help="AdamW weight decay.",
                                       rich_help_panel="Optimisation"),
    ssim_weight: float = typer.Option(0.2, help="Weight of the structural term (1 - SSIM).",
                                      rich_help_panel="Losses"),
    perceptual_weight: float = typer.Option(
        0.0, help="VGG-16 perceptual term (needs `lexp download vgg16`).",
        rich_help_panel="Losses"),
    adversarial_weight: float = typer.Option(0.0, help="PatchGAN adversarial term.",
                                             rich_help_panel="Losses"),
    clip_grad: float = typer.Option(1.0, help="Gradient norm clipping.",
                                    rich_help_panel="Optimisation"),
    val_fraction: float = typer.Option(0.2, help="Share of clips held out for validation.",
                                       rich_help_panel="Validation"),
    eval_every: int = typer.Option(100, min=1, help="Steps between validation passes.",
                                   rich_help_panel="Validation"),
    patience: int = typer.Option(5, min=1, help="Stop after this many passes without "
                                               "improvement.", rich_help_panel="Validation"),
    seed: int = typer.Option(0, help="Random seed."),
    device: str = typer.Option("auto", metavar="DEVICE", help="auto, cpu, cuda, cuda:N or mps."),
    amp: bool = typer.Option(True, "--amp/--no-amp", help="bfloat16 autocast on CUDA."),
    work_size: int = typer.Option(320, min=32, help="The generator's long side in pixels."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --run-dir."),
    jobs: int | None = typer.Option(
        None, "--jobs", "-j", min=1, envvar="LEXP_JOBS", metavar="N",
        help="Processes that build the training samples not in the cache yet (each "
             "sample is a flow render). Default: one per CPU core."),
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="Print the resolved configuration and exit."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Train the long-exposure generator (flow encoder + ConvLSTM) from any clips."""
    from lexp import train as training
    from lexp.config import TrainConfig
    from lexp.console import Reporter

    config = TrainConfig(data=tuple(data), run_dir=str(run_dir), arch=arch.value, steps=steps,
                         minutes=minutes,
                         preset=preset, batch=batch, crop=crop, lr=lr,
                         weight_decay=weight_decay, ssim_weight=ssim_weight,
                         perceptual_weight=perceptual_weight,
                         adversarial_weight=adversarial_weight, clip_grad=clip_grad,
                         val_fraction=val_fraction, eval_every=eval_every, patience=patience,
                         seed=seed, device=device, amp=amp, work_size=work_size)
    if json_out or dry_run:
        stdout.check_open("the plan" if dry_run else "the --json summary")
    if dry_run:
        stdout.write_text(json.dumps(training.plan(config).to_dict(), indent=2) + "\n",
                          "the plan")
        return
    # Under torchrun only rank 0 speaks.
    reporter = Reporter(quiet=_State.quiet or os.environ.get("RANK", "0") != "0")

    data_report = _TrainingDataReport(reporter)

    def on_event(kind: str, **f) -> None:
        if kind == "data":
            data_report.clip(**f)
        elif kind == "data-done":
            data_report.finish(**f)
        elif kind == "skip":
            reporter.warn(f"skipped {f['clip']}: {f['why']}")
        elif kind == "step" and (f["step"] % (10 * training.LOG_EVERY) == 0
                                 or f["step"] == f["total"]):
            reporter.info(f"step {f['step']}/{f['total']}: loss {f['loss']:.4f}, "
                          f"{f['samples_per_s']:.1f} samples/s")
        elif kind == "eval":
            reporter.info(f"step {f['step']}: validation loss {f['val_loss']:.4f} "
                          f"(best {f['best']:.4f} at step {f['best_step']})")

    try:
        summary = training.train(config, resume=resume, on_event=on_event,
                                 jobs=jobs or os.cpu_count() or 1)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; resume with --resume --run-dir {run_dir}") from None
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


DOWNLOAD_EPILOG = """\
Examples:

  lexp download --list                              # what exists, what is in the cache

  lexp download raft-small raft-large               # fetch, verify, keep in the cache

  lexp download raft-small --from ~/raft_small_C_T_V2-01064c6d.pth   # no network here

  lexp download vgg16 --mirror https://files.example.org/lexp        # your own server

  lexp download raft-large --force --cache-dir /shared/lexp-cache    # fetch again, elsewhere

Downloads resume after an interruption, and are verified (sha256) before they land.
LEXP_OFFLINE=1 never touches the network; LEXP_MIRROR and LEXP_CACHE_DIR set the defaults.
"""


@app.command(epilog=DOWNLOAD_EPILOG)
def download(
    names: list[str] = typer.Argument(None, metavar="NAME...", help="Assets to fetch."),
    list_assets: bool = typer.Option(False, "--list", help="List the assets and exit."),
    force: bool = typer.Option(False, "--force", help="Fetch again even if cached."),
    from_file: Path | None = typer.Option(
        None, "--from", metavar="FILE",
        help="Import a copy made elsewhere (verified first) instead of downloading."),
    cache: Path | None = typer.Option(
        None, "--cache-dir", envvar="LEXP_CACHE_DIR", metavar="DIR",
        help="The lexp cache (default: the user cache folder)."),
    mirror: str | None = typer.Option(
        None, "--mirror", envvar="LEXP_MIRROR", metavar="URL",
        help="Fetch MIRROR/FILENAME instead of the published URL; checksums still come "
             "from lexp's registry."),
) -> None:
    """Fetch model weights and datasets into the lexp cache, verified and resumable."""
    from lexp import weights
    from lexp.console import Reporter

    reporter = Reporter(quiet=_State.quiet)
    if list_assets:
        _print_assets(reporter, cache)
        return
    if not names:
        raise UsageError("name an asset to download", hint="lexp download --list shows them")
    if from_file is not None:
        if len(names) != 1:
            raise UsageError("--from imports one asset", hint="lexp download NAME --from FILE")
        where = weights.import_file(names[0], from_file, cache=cache, force=force)
        reporter.info(f"{names[0]}: imported {from_file} ({weights.check_made(names[0])}) "
                      f"→ {where}")
        return
    assets = [weights.get(n) for n in names]  # all names checked before any download
    for asset in assets:
        with reporter.progress_bytes(asset.name, asset.size) as on_progress:
            where, fetched = weights.ensure(asset.name, cache=cache, mirror=mirror, force=force,
                                            on_progress=on_progress,
                                            on_retry=partial(_say_retry, reporter, asset.name))
        verb = ("downloaded and verified" if asset.sha256 else
                f"downloaded ({weights.check_made(asset.name)})") if fetched else \
            "already in the cache"
        reporter.info(f"{asset.name}: {verb} → {where}")


def _say_retry(reporter, name: str, why: str) -> None:
    reporter.warn(f"{name}: {why}")


def _print_assets(reporter, cache) -> None:
    from rich.table import Table

    from lexp import weights

    table = Table(box=None, header_style="bold")
    for column in ("name", "size", "cached", "used by", "licence", "source"):
        table.add_column(column)
    for asset in weights.registry().values():
        size = f"{asset.size / 1e6:,.1f} MB" if asset.size else "?"
        table.add_row(asset.name, size, "yes" if weights.is_cached(asset, cache) else "no",
                      asset.used_by, asset.licence, asset.description)
    # The listing is the result the user asked for: it goes to stdout.
    stdout.write_text(stdout.rich_text(lambda console: console.print(table)), "the list")
    reporter.info(f"cache: {weights.location(weights.BUILTIN[0], cache).parent.parent}")


BENCH_EPILOG = """\
Examples:

  lexp bench --quality ../shared/clips                   # both protocols, every clip

  lexp bench --quality clips/ --sheet sheet.png --json   # numbers for scripts, and pictures

  lexp bench --speed clip.mp4                            # per stage, next to the decode floor

  lexp bench --speed synthetic:1280x720x300 --methods mean,max

  lexp bench --quality clips/ --methods flow,learned --checkpoint runs/g1/model.pt

  lexp bench --quality clips/ --protocol extrapolate --csv > scores.csv

  lexp bench --speed clip.mp4 --repeats 7

Quality: gap-fill = 8 frames (every 8th) against the linear mean of frames 0-56;
extrapolate = the first 5 frames against the linear mean of frames 0-63.
PSNR (dB) over the frame and over the moving region, and SSIM.
"""


@app.command(epilog=BENCH_EPILOG)
def bench(
    quality: list[str] = typer.Option(
        None, "--quality", metavar="CLIPS",
        help="Clips or folders of clips to score (repeatable)."),
    speed: str | None = typer.Option(
        None, "--speed", metavar="CLIP",
        help="Time each stage on this clip (or synthetic:WxHxN)."),
    methods: str | None = typer.Option(
        None, "--methods", metavar="A,B",
        help="Methods to compare: first-frame, mean-8bit, mean, median, max, flow, "
             "learned, learned-seed "
             "(default: first-frame,mean-8bit,mean,median,flow)."),
    protocol: str = typer.Option(
        "both", "--protocol", help="gap-fill, extrapolate, or both."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Timed runs per stage (median)."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
    csv_out: bool = typer.Option(False, "--csv", help="Print per-clip scores as CSV on stdout."),
    sheet: Path | None = typer.Option(
        None, "--sheet", metavar="PNG",
        help="Write a contact sheet: a row per clip, a column per method, and the truth."),
    checkpoint: str | None = typer.Option(
        None, metavar="NAME|FILE", help="The generator for the learned method (a .pt file "
                                        "from `lexp train`; default: the shipped one)."),
) -> None:
    """Measure speed and quality, every method side by side with the baselines."""
    from lexp import bench as benchmarks
    from lexp.console import Reporter

    if not quality and not speed:
        raise UsageError("nothing to measure", hint="give --quality CLIPS and/or --speed CLIP")
    if json_out and csv_out:
        raise UsageError("--json and --csv both want stdout", hint="choose one")
    stdout.check_open("the results")
    chosen = benchmarks.resolve_methods(methods, checkpoint)
    if sheet is not None:
        from lexp.paths import check_writable_dir

        benchmarks.sheet_suffix(sheet)  # a name it cannot be written as: before the scoring
        check_writable_dir(sheet.parent, sheet)
    if protocol not in ("both", *benchmarks.PROTOCOLS):
        raise UsageError(f"unknown protocol {protocol!r}",
                         hint="gap-fill, extrapolate or both")
    protocols = list(benchmarks.PROTOCOLS.values()) if protocol == "both" else \
        [benchmarks.PROTOCOLS[protocol]]
    reporter = Reporter(quiet=_State.quiet)
    result: dict = {}
    if quality:
        with reporter.progress_or_lines("clips read") as on_progress:
            report = benchmarks.run_quality(quality, chosen, protocols,
                                            thumb_width=240 if sheet else 0,
                                            on_progress=on_progress)
        for clip, proto, why in report.skipped:
            reporter.info(f"{clip}: skipped for {proto} ({why})")
        scored = len({s.clip for s in report.scores})
        reporter.info(f"clips scored: {scored} of {len(report.clips)}")
        result["quality"] = report.to_json()
        if sheet:
            benchmarks.contact_sheet(report, sheet)
            reporter.info(f"contact sheet → {sheet}")
    if speed:
        with reporter.progress_or_lines("stages timed") as on_progress:
            speed_report = benchmarks.run_speed(speed, chosen, repeats=repeats,
                                                on_progress=on_progress)
        result["speed"] = speed_report.to_json()
    if json_out:
        stdout.write_text(json.dumps(result, indent=2, default=_json_number) + "\n",
                          "the --json results")
    elif csv_out:
        _print_csv(result)
    else:
        _print_bench_tables(result)


def _json_number(value):
    return None if value != value else value  # NaN -> null


def _print_csv(result: dict) -> None:
    import csv
    import io

    text = io.StringIO()
    writer = csv.writer(text)
    if "quality" in result:
        writer.writerow(["protocol", "clip", "method", "psnr", "psnr_moving", "ssim"])
        for s in result["quality"]["scores"]:
            writer.writerow([s["protocol"], s["clip"], s["method"], f"{s['psnr']:.3f}",
                             f"{s['psnr_moving']:.3f}", f"{s['ssim']:.5f}"])
    if "speed" in result:
        writer.writerow(["stage", "seconds", "frames", "fps", "ratio_to_floor"])
        for st in result["speed"]["stages"]:
            ratio = st["ratio_to_floor"]
            writer.writerow([st["stage"], f"{st['seconds']:.4f}", st["frames"],
                             f"{st['fps']:.1f}", "" if ratio is None else f"{ratio:.3f}"])
    stdout.write_text(text.getvalue(), "the CSV")


def _print_bench_tables(result: dict) -> None:
    stdout.write_text(stdout.rich_text(lambda out: _bench_tables(result, out)), "the tables")


def _bench_tables(result: dict, out) -> None:
    from rich.table import Table

    if "quality" in result:
        summary = result["quality"]["summary"]
        for proto in dict.fromkeys(r["protocol"] for r in summary):
            table = Table(title=f"quality: {proto}", box=None, header_style="bold")
            for column in ("method", "PSNR dB", "moving PSNR", "SSIM", "worst clip", "clips"):
                table.add_column(column, justify="left" if column in ("method", "worst clip")
                                 else "right")
            for r in (r for r in summary if r["protocol"] == proto):
                table.add_row(r["method"], f"{r['psnr_median']:.2f}",
                              f"{r['psnr_moving_median']:.2f}", f"{r['ssim_median']:.4f}",
                              f"{r['worst_clip']} ({r['worst_psnr']:.2f})", str(r["clips"]))
            out.print(table)
            scores = [s for s in result["quality"]["scores"] if s["protocol"] == proto]
            names = list(dict.fromkeys(s["method"] for s in scores))
            per_clip = Table(title=f"{proto}: PSNR dB per clip", box=None, header_style="bold")
            per_clip.add_column("clip")
            for name in names:
                per_clip.add_column(name, justify="right")
            for clip in dict.fromkeys(s["clip"] for s in scores):
                row = {s["method"]: s["psnr"] for s in scores if s["clip"] == clip}
                per_clip.add_row(clip, *(f"{row[n]:.2f}" for n in names))
            out.print(per_clip)
    if "speed" in result:
        sp = result["speed"]
        table = Table(title=f"speed: {sp['clip']} ({sp['width']}x{sp['height']}, {sp['frames']} "
                            f"frames; {sp['device']}, {sp['dtype']}; median of {sp['repeats']}; "
                            f"peak RAM {sp['peak_rss_mb']:.0f} MB)", box=None,
                      header_style="bold")
        for column in ("stage", "seconds", "frames/s", "ms/frame", "vs decode floor"):
            table.add_column(column, justify="left" if column == "stage" else "right")
        for st in sp["stages"]:
            ratio = st["ratio_to_floor"]
            table.add_row(st["stage"], f"{st['seconds']:.3f}",
                          f"{st['fps']:.0f}" if st["frames"] else "",
                          f"{st['ms_per_frame']:.2f}" if st["frames"] else "",
                          "" if ratio is None else f"{ratio:.2f}×")
        out.print(table)


def _on_sigterm(signum, frame):
    # cron and job schedulers stop us with SIGTERM: unwind like Ctrl-C so temp files go.
    raise KeyboardInterrupt


def main() -> None:
    """Entry point. Typer handles --help and usage errors (exit 2); library errors
    become one line on stderr and their exit code."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        # Not standalone: Click's usage errors come to us, to leave as one line like ours
        # (Typer draws them as a box of several lines).
        code = app(prog_name="lexp", standalone_mode=False)
    except LexpError as exc:
        sys.exit(_report(exc))
    except KeyboardInterrupt:
        sys.exit(_report(Interrupted("interrupted; no partial output was left")))
    except OSError as exc:  # what the machine refused (a full disk, a cache path that is
        sys.exit(_report(_machine_error(exc)))  # a file, no permission): not a lexp bug
    except Exception as exc:
        if not _is_click_error(exc):
            raise
        sys.exit(_report_click_error(exc))
    sys.exit(code if isinstance(code, int) else 0)


def _is_click_error(exc: Exception) -> bool:
    """A Click exception (Typer vendors Click in some releases, so by its class names)."""
    return any(c.__name__ == "ClickException" for c in type(exc).__mro__)


def _report_click_error(exc) -> int:
    """A usage error from option parsing as one line: ``error: MESSAGE (hint: ...)``. With
    no arguments at all a command shows its help, as Click does."""
    if type(exc).__name__ == "NoArgsIsHelpError":
        exc.show()
        return exc.exit_code
    from lexp.console import Reporter

    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "lexp"
    Reporter().error(exc.format_message().replace("\n", " "), f"{where} --help")
    return exc.exit_code


def _machine_error(exc: OSError) -> LexpError:
    """One line for an OSError no command turned into a LexpError of its own."""
    from lexp.errors import OutputError
    from lexp.paths import describe_os_error

    where = exc.filename or ""
    error = describe_os_error(exc, where) if where else \
        OutputError(str(exc.strerror or exc))
    error.hint = "check that folder's free space and permissions; LEXP_CACHE_DIR (or " \
        "--cache-dir) moves lexp's cache"
    return error


def _report(exc: LexpError) -> int:
    debug = _State.debug or os.environ.get("LEXP_DEBUG", "") not in ("", "0")
    if debug and not isinstance(exc, UsageError):
        import traceback

        traceback.print_exc()
    from lexp.console import Reporter

    Reporter().error(exc.message, exc.hint)
    return exc.exit_code


if __name__ == "__main__":  # pragma: no cover
    main()
