"""``lexp render``: a long exposure from each input."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Annotated

import typer

from lexp import stdout
from lexp.cli.app import EXIT_CODES_HELP, RunState, app
from lexp.cli.brief_help import brief_help_command
from lexp.cli.follow import (
    Follow,
    Idle,
    Poll,
    PreviewEvery,
    UntilOption,
    check_follow_options,
    run_follow,
)
from lexp.cli.options import (
    CONTROLS,
    AlignBorder,
    AlignModel,
    CacheDir,
    Checkpoint,
    Device,
    End,
    FlowMethod,
    Fps,
    ImageFormat,
    Method,
    Start,
    Stride,
    Tone,
    Transfer,
)
from lexp.config import WHITE_BALANCES
from lexp.errors import EXIT_ERROR, EXIT_SOME_FAILED, Interrupted, LexpError, UsageError

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

  lexp render clips/ -o renders/ --cache-dir /scratch/lexp-cache   # flows cached elsewhere

  cat clip.mp4 | lexp render - -o - > out.jpg          # stdin to stdout

  lexp render shaky.mp4 -o steady.jpg --align          # handheld: register frames first

  lexp render falls.mp4 -o falls.jpg --align --keep-sharp first   # silky water, sharp rocks

  lexp render runner.mp4 -o flash.jpg -m flow --rear-curtain      # blur + a final flash
  lexp render cars.mp4 -o reference.jpg -m flow --exact           # the reference render (slow)

  lexp render stars/ -o trails.jpg -m max --video trails.mp4 --comet 2s   # trail video

  lexp render timelapse/ -o day.jpg --deflicker        # flicker removed; EXIF times weigh frames

  lexp render falls.mp4 -o long.jpg --end 5f --exposure 64f --motion-guide 270   # fall down

  lexp render phone_hdr.mov -o out.jpg --tone reinhard   # HLG/PQ found by auto, written as sRGB

  ffmpeg -i in.mov -f image2pipe -c:v png - | lexp render - --fps 30 -o out.png  # image stream

Times are seconds (2.5 or 2.5s) or frame numbers (48f); the window is [start, end).
""" + EXIT_CODES_HELP


# `lexp render --help`: the options a newcomer needs, each in a line (--help-all: every
# option, with its whole help), and a few examples.
RENDER_BRIEF = {
    "inputs": "Videos, folders of frames or videos, images, globs, or - for stdin.",
    "method": "auto (it chooses, and says why), mean, flow, max (light trails), min, "
              "median, learned.",
    "output": "The picture (.jpg .png .tif), a folder, or a name like {stem}_long.jpg.",
    "exposure": "How long the shutter stays open: 2s or 48f (longer than the clip: the "
                "motion goes on).",
    "start": "Where the exposure starts: 2.5 (s) or 48f.",
    "end": "Where it ends: 6 (s) or 180f.",
    "stride": "Use every N-th frame.",
    "align": "Steady a handheld camera (auto: when the picture drifts).",
    "keep_sharp": "Keep one frame (first, last, 2s) sharp where nothing moves.",
    "video": "Also write the exposure building up, as a video.",
    "ev": "Brighter or darker, in stops.",
    "overwrite": "Replace pictures that exist.",
    "json_lines": "One JSON line per input on stdout.",
    "verbose": "Also say how, in an engineer's terms.",
    "workers": "Render N clips at once.",
    "follow": "Build it as frames arrive in a folder or a stream; resumes after a crash.",
}
RENDER_BRIEF_EPILOG = """\
Examples:

  lexp render clip.mp4 -o out.jpg                  # auto chooses, says why

  lexp render clip.mp4 -o trails.jpg -m max        # light or star trails

  lexp render falls.mp4 -o out.jpg --keep-sharp first  # crisp rocks

  lexp render clip.mp4 -o long.jpg --end 5f --exposure 64f  # beyond the end

  lexp render clips/ -o renders/ -j 2              # a folder, 2 at a time

  lexp render shots/ --follow -m max -o trails.jpg # star trails as you shoot

Every option, with details and more examples: lexp render --help-all
""" + EXIT_CODES_HELP


# The options of `lexp render`, declared once here so the command's signature reads as a
# list (the shared ones are in lexp.cli.options).
Inputs = Annotated[list[Path], typer.Argument(
    metavar="INPUT...",
    help="Video files, folders (of videos, or of image frames), image files, quoted globs, "
         "or - for a video on stdin.")]
Output = Annotated[str | None, typer.Option(
    "--output", "-o",
    help="Output image (.jpg/.png/.tif); a folder (several inputs; created if it ends in /); "
         "a name template with {stem} {name} {parent} {method}; or - for stdout. Default: "
         "{stem}_{method}.jpg in the current folder.", rich_help_panel="Output")]
MethodOption = Annotated[Method, typer.Option(
    "--method", "-m",
    help="flow: integrate along the optical flow (continuous trails from few frames; "
         "extrapolates past the clip's end); learned: the flow render refined by the "
         "trained generator (see --checkpoint) past the clip's end, where its checkpoint "
         "measured better than flow (else it keeps the flow render and says so); mean: a "
         "long exposure by stacking; max/lighten: light trails; min/darken: remove bright "
         "movers; median: remove transient objects (memory-bounded: see --median-memory). "
         "auto: flow when the exposure outlasts the clip (learned, where its checkpoint "
         "measured better there) or when the mean would show copies of what moves (both "
         "tried on small copies of the whole window: flow where they would differ by "
         "more than one 8-bit code value), else mean (water, smoke, foliage); a drifting "
         "camera is steadied first; it says which and why.")]
Exposure = Annotated[str | None, typer.Option(
    metavar="TIME",
    help="Exposure length: 2s, 1.5 or 48f. Shorter than the clip: the first TIME of the "
         "window. Longer (flow): the motion is extrapolated past the last frame, assuming "
         "what moved steadily in the last 5 frames keeps its speed and direction, a steady "
         "change of light keeps its pace, a shaking camera keeps wandering (--align: it "
         "holds still), and everything else keeps its average look.",
    rich_help_panel="Frames")]
Estimator = Annotated[FlowMethod, typer.Option(
    "--flow", metavar="ESTIMATOR",
    help="Flow estimator for --method flow: auto (RAFT on a GPU when its weights are cached, "
         "else DIS medium), dis, dis-fast, dis-ultrafast, farneback, raft-small, raft-large. "
         "Flows are cached (see lexp flow).", rich_help_panel="Flow")]
Exact = Annotated[bool, typer.Option(
    "--exact", help="The reference flow render: flow and every in-between instant at full "
    "size, a pixel of trail apart. Many times slower; the default render is judged "
    "against it (scripts/quality_guard.py).", rich_help_panel="Flow")]
MaxFrames = Annotated[int | None, typer.Option(
    min=1, help="Use at most N frames.", rich_help_panel="Frames")]
WhiteBalance = Annotated[str, typer.Option(
    "--white-balance", rich_help_panel="Light", metavar="camera|daylight|auto|K",
    autocompletion=lambda: list(WHITE_BALANCES),
    help="RAW frames' white balance, one for the whole clip, from its first frame: "
         "camera (as shot), daylight (the camera's daylight), auto (grey world), or a "
         "colour temperature in kelvin (the light that comes out white). "
         "e.g. --white-balance 3200")]
NIGHT = "Night sky: calibration"
Dark = Annotated[list[str] | None, typer.Option(
    "--dark", metavar="FILES", rich_help_panel=NIGHT,
    help="Dark frames (lens capped, the lights' exposure): a folder, a quoted glob or a "
         "file, repeatable. Their per-pixel mean, each pixel's brightest and darkest "
         "left out (a cosmic ray), is subtracted from every frame in linear light, first. "
         "e.g. --dark darks/")]
Flat = Annotated[list[str] | None, typer.Option(
    "--flat", metavar="FILES", rich_help_panel=NIGHT,
    help="Flat frames (an evenly lit white field, same lens and aperture): their mean, "
         "each channel over its mean in the centre, divides every frame: vignetting and "
         "dust shadows out, the centre's light kept. e.g. --flat flats/")]
HotPixels = Annotated[bool, typer.Option(
    "--hot-pixels", rich_help_panel=NIGHT,
    help="Repair hot pixels before anything can streak them: single pixels far above all "
         "their neighbours in most of 16 frames spread over the clip (and a dark's "
         "outliers), replaced by their neighbours' median. e.g. --hot-pixels --dark darks/")]
Reject = Annotated[str | None, typer.Option(
    "--reject", metavar="RULES", rich_help_panel=NIGHT,
    help="Leave out frames by rule, judged on every frame first: bright (a background, "
         "its median light, over 1.5x the median frame's: headlights, a lit cloud, dawn), "
         "blur (sharpness under half the median frame's); and streaks, which masks in "
         "each frame the straight lines only it has (planes, satellites; a meteor too) "
         "before a lighten blend. Said in --json. e.g. --reject bright,streaks")]
RawDraft = Annotated[bool, typer.Option(
    "--raw-draft", rich_help_panel="Frames",
    help="Develop RAW frames at half size (each 2x2 block of the sensor one pixel, no "
         "demosaicing): several times faster, for previews. e.g. --raw-draft -o test.jpg")]
TransferOption = Annotated[Transfer, typer.Option(
    help="Transfer curve of the clip, undone before blending. auto: the video's own HDR "
         "curve (hlg, pq: phones' HDR, HDR10) when it is tagged so, linear for RAW frames "
         "(developed to linear light), else srgb. An HDR clip is blended in scene light, "
         "highlights and all, and written as an sRGB picture. 'none' blends code values "
         "(the naive 8-bit mean).", rich_help_panel="Light")]
Ev = Annotated[float, typer.Option(
    help="Exposure compensation in stops (+1 = twice the light).", rich_help_panel="Light")]
ToneOption = Annotated[Tone, typer.Option(
    help="Tone curve for highlights above white (after --ev): clip, soft shoulder, or "
         "reinhard. auto: soft for HDR clips, clip otherwise.", rich_help_panel="Light")]
Format = Annotated[ImageFormat | None, typer.Option(
    "--format", help="Image format; default from the -o extension (jpeg for -o -).",
    rich_help_panel="Output")]
BitDepth = Annotated[int | None, typer.Option(
    help="8 or 16 (PNG, TIFF), or 32 (TIFF): a float TIFF in linear light, no tone "
         "curve, highlights above white kept, for editing like a RAW. Default: 16 for "
         "TIFF, and for PNG from 16-bit frames; 8 otherwise. e.g. -o master.tif "
         "--bit-depth 32", rich_help_panel="Output")]
Quality = Annotated[int, typer.Option(
    min=1, max=100, help="JPEG quality.", rich_help_panel="Output")]
MedianMemory = Annotated[int, typer.Option(
    min=16, metavar="MB", rich_help_panel="Light",
    help="Median keeps at most this many MB of frames; longer windows are sampled evenly.")]
Overwrite = Annotated[bool, typer.Option(
    "--overwrite", help="Replace outputs that already exist (default: skip them).",
    rich_help_panel="Output")]
Workers = Annotated[int, typer.Option(
    "--jobs", "-j", min=1, envvar="LEXP_JOBS", metavar="N",
    help="Render N clips at once, in N processes.", rich_help_panel="Batch")]
Shard = Annotated[str | None, typer.Option(
    metavar="I/N", rich_help_panel="Batch",
    help="Render only the I-th of N disjoint parts of the inputs (1-based), for job arrays: "
         "every machine runs the same command with its own I.")]
JsonLines = Annotated[bool, typer.Option(
    "--json", help="Print one JSON line per input on stdout.", rich_help_panel="Output")]
Verbose = Annotated[bool, typer.Option(
    "--verbose", "-v", rich_help_panel="Output",
    help="Say how each picture was made in an engineer's terms too: the method, the flow "
         "estimator, the figures behind auto's choice. e.g. -v")]


def _control(*names: str, help: str, **more):  # noqa: A002 (Typer's own name)
    """An option of the photographer's controls panel."""
    return typer.Option(*names, help=help, rich_help_panel=CONTROLS, **more)


Align = Annotated[bool | None, _control(
    "--align/--no-align", help="Steady a handheld clip: every frame is matched to the first "
    "by its fixed detail (what moves is ignored) before blending; frames that cannot be "
    "matched are left out and reported. e.g. --align --align-model homography. "
    "Default: auto aligns when the whole picture drifts, and says so; --no-align keeps "
    "the camera's motion (a deliberate pan).")]
AlignModelOption = Annotated[AlignModel, _control(
    help="similarity: shift, rotation, zoom (hand shake); homography: also tilt (wide "
         "lenses, close scenes).")]
AlignBorderOption = Annotated[AlignBorder, _control(
    help="crop: cut to the area every frame covers; fill: keep the full frame, borders "
         "filled from the first frame.")]
KeepSharp = Annotated[str | None, _control(
    metavar="FRAME", help="Blend one sharp frame (first, last, or a time: 2s, 48f) in where "
    "the scene barely moves, so rocks stay crisp and water goes silky; or median, the "
    "frames' per-pixel median there (a night's ground, its noise averaged out, under "
    "star trails). e.g. --keep-sharp first --still-below 1")]
# (No [default] shown by Typer: the default is config.STILL_BELOW_PX, and importing
# lexp.config here would cost every `lexp --help` 15 ms. A test keeps the text true.)
StillBelow = Annotated[float | None, _control(
    metavar="PX", min=0.0, help="With --keep-sharp: still means moving less than PX pixels "
    "per frame (measured by optical flow; the mask is feathered). 0: use --sharp-mask "
    "only. Default 0.5.")]
SharpMask = Annotated[Path | None, _control(
    metavar="IMAGE", help="With --keep-sharp: an image, white where the sharp frame shows "
    "(added to the still areas). e.g. --keep-sharp last --sharp-mask subject.png")]
RearCurtain = Annotated[bool, _control(
    "--rear-curtain", help="The rear-curtain flash look: the blur plus the last frame at "
    "half strength (a sharp subject at the head of its trail). e.g. -m flow --rear-curtain")]
Video = Annotated[str | None, _control(
    metavar="VIDEO", help="Also write the exposure building up, one video frame per input "
    "frame (star-trail video; .mp4). Takes the -o template fields. e.g. -m max --video "
    "trails.mp4")]
Comet = Annotated[str | None, _control(
    metavar="TIME", help="With --video: comet mode, old light fades with this half-life "
    "(1s, 30f). e.g. -m max --video comets.mp4 --comet 15f")]
GapFill = Annotated[bool | None, _control(
    "--gap-fill/--no-gap-fill", help="With -m max: take the brightest light over the "
    "instants between frames too, along the optical flow, so a headlight moving 20 px a "
    "frame draws one unbroken line, not beads (slower: an in-between picture every few "
    "px of motion). "
    "Default: where the gaps would show (tried on the first frames); the --video and "
    "its --comet are filled too. --no-gap-fill: the frames only. e.g. -m max --gap-fill")]
Timestamps = Annotated[bool, _control(
    "--timestamps/--no-timestamps", help="Weigh each frame by the time it covers (video "
    "presentation times; EXIF capture times in image folders), so skipped or unevenly "
    "spaced frames do not bias the result. Used by mean and flow.")]
Deflicker = Annotated[bool, _control(
    "--deflicker", help="Match every frame's exposure (one gain per frame, in linear light) "
    "before blending: for flickering time-lapses. e.g. --deflicker -m mean")]
MotionGuide = Annotated[str, _control(
    metavar="GUIDE", help="Direction of extrapolated motion (--exposure longer than the "
    "clip): flow (as measured), 4way or 8way (snapped to 4 or 8 directions), or an angle in "
    "degrees (0 right, 90 up, 270 down) for all motion. e.g. --motion-guide 270")]


@app.command(epilog=RENDER_EPILOG, cls=brief_help_command(RENDER_BRIEF, RENDER_BRIEF_EPILOG))
def render(
    inputs: Inputs, method: MethodOption = Method.auto, output: Output = None,
    exposure: Exposure = None, start: Start = None, end: End = None, stride: Stride = 1,
    max_frames: MaxFrames = None, fps: Fps = None, raw_draft: RawDraft = False,
    white_balance: WhiteBalance = "camera",
    image_format: Format = None, bit_depth: BitDepth = None, quality: Quality = 95,
    overwrite: Overwrite = False, json_lines: JsonLines = False, verbose: Verbose = False,
    align: Align = None, keep_sharp: KeepSharp = None, video: Video = None,
    comet: Comet = None, gap_fill: GapFill = None, rear_curtain: RearCurtain = False,
    deflicker: Deflicker = False, timestamps: Timestamps = True,
    align_model: AlignModelOption = AlignModel.similarity,
    align_border: AlignBorderOption = AlignBorder.crop,
    still_below: StillBelow = None, sharp_mask: SharpMask = None,
    motion_guide: MotionGuide = "flow",
    ev: Ev = 0.0, tone: ToneOption = Tone.auto, transfer: TransferOption = Transfer.auto,
    median_memory: MedianMemory = 512,
    workers: Workers = 1, shard: Shard = None,
    flow_method: Estimator = FlowMethod.auto, device: Device = "auto", exact: Exact = False,
    checkpoint: Checkpoint = None, cache: CacheDir = None,
    dark: Dark = None, flat: Flat = None, hot_pixels: HotPixels = False,
    reject: Reject = None,
    follow: Follow = False, preview_every: PreviewEvery = "30s", until: UntilOption = None,
    idle: Idle = None, poll: Poll = 1.0,
) -> None:
    """Render a long exposure from a clip: its frames stacked in linear light, or traced
    along their motion into continuous trails."""
    if json_lines and output == "-":
        raise UsageError("--json and -o - both want stdout", hint="write the image to a file")
    if json_lines:
        stdout.check_open("the --json lines")
    with _json_line_on_failure(json_lines, output):
        if cache is not None:  # every cache user (and each -j worker) reads it from here
            os.environ["LEXP_CACHE_DIR"] = str(cache)
        from lexp.config import OutputConfig, RenderConfig, TimeSpec, Window

        config = RenderConfig(
            method=method.value, window=Window.from_options(start, end, stride, max_frames),
            fps=fps, transfer=transfer.value, ev=ev, tone=tone.value,
            median_memory_mb=median_memory,
            exposure=TimeSpec.parse(exposure, "--exposure") if exposure else None,
            flow=flow_method.value, device=device, exact=exact,
            align=align_model.value if align else None, align_auto=align is None,
            gap_fill=gap_fill,
            align_border=align_border.value, deflicker=deflicker, timestamps=timestamps,
            keep_sharp=keep_sharp,
            sharp_mask=str(sharp_mask) if sharp_mask else None, rear_curtain=rear_curtain,
            motion_guide=motion_guide, checkpoint=checkpoint, raw_draft=raw_draft,
            white_balance=white_balance, dark=tuple(dark or ()), flat=tuple(flat or ()),
            hot_pixels=hot_pixels, reject=reject or (),
            **({} if still_below is None else {"still_below": still_below}))
        if config.method == "learned":
            from lexp import checkpoint as checkpoints

            checkpoints.load_network(checkpoints.resolve(checkpoint))  # fail before any work
        if comet is not None and video is None:
            raise UsageError("--comet shapes the trail video", hint="add --video trails.mp4")
        out = OutputConfig(format=image_format.value if image_format else None,
                           bit_depth=bit_depth, quality=quality,
                           comet=TimeSpec.parse(comet, "--comet") if comet else None)
        if follow:
            names = [str(p) for p in inputs]
            check_follow_options(names, output, {
                "--start": start is not None, "--end": end is not None, "--stride": stride != 1,
                "--max-frames": max_frames is not None, "--exposure": exposure is not None,
                "--comet": comet is not None,
                "--align": align is not None, "--keep-sharp": keep_sharp is not None,
                "--sharp-mask": sharp_mask is not None, "--deflicker": deflicker,
                "--rear-curtain": rear_curtain, "--gap-fill": gap_fill is not None,
                "--jobs": workers > 1, "--shard": shard is not None})
            run_follow(names[0], output, config, out, video=video,
                       preview_every=preview_every,
                       until=until, idle=idle, poll=poll, overwrite=overwrite,
                       json_lines=json_lines, verbose=verbose, quiet=RunState.quiet)
            return
        if (until, idle) != (None, None):
            raise UsageError("--until and --idle end a followed exposure",
                             hint="add --follow")
        _render_batch(inputs, output, config, out, video=video, shard=shard, workers=workers,
                      overwrite=overwrite, json_lines=json_lines, verbose=verbose)


@contextlib.contextmanager
def _json_line_on_failure(json_lines: bool, output: str | None):
    """Under --json, a failure before or around the batch still prints a JSON line, so a
    script reading the lines learns why there are none. (Not for an interrupted batch:
    its lines are the clips that finished, and the exit code says the rest.)"""
    try:
        yield
    except LexpError as err:
        if json_lines and not isinstance(err, Interrupted):
            with contextlib.suppress(LexpError):
                stdout.write_text(json.dumps({"input": None, "output": output,
                                              "status": "failed", "error": err.message,
                                              "hint": err.hint,
                                              "exit_code": err.exit_code}) + "\n")
        raise


def _render_batch(inputs, output, config, out, *, video, shard, workers, overwrite,
                  json_lines, verbose=False) -> None:
    """Resolve the inputs, plan the outputs and render them, reporting each result."""
    from lexp import batch, jobs
    from lexp.cli.show import Reporter, describe_result
    from lexp.inputs import resolve_inputs

    reporter = Reporter(quiet=RunState.quiet)
    # With several inputs, one that is missing (or a folder of junk) is one failed input,
    # reported with the rest; a single input that cannot be found is the run's error.
    unresolved: list = []
    names = [str(p) for p in inputs]
    sources = resolve_inputs(names, problems=unresolved if len(names) > 1 else None)
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
            reporter.info(f"{result.input} → {where}: {describe_result(result, verbose)} · took "
                          f"{result.seconds:.1f} s")
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
            results += batch.render_jobs(plan, config, out, overwrite=overwrite,
                                        workers=workers, progress_for=progress_for,
                                        on_result=on_result, debug=RunState.debug)
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
