"""``lexp flow``: optical flow of a clip, cached and exported."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from lexp import stdout
from lexp.cli.app import RunState, app
from lexp.cli.options import CacheDir, Device, End, FlowMethod, Fps, JsonSummary, Start, Stride
from lexp.errors import Interrupted, UsageError

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
    device: Device = "auto", start: Start = None, end: End = None, stride: Stride = 1,
    max_frames: int | None = typer.Option(None, min=2, help="Use at most N frames.",
                                          rich_help_panel="Frames"),
    fps: Fps = None,
    export_flo: Path | None = typer.Option(None, metavar="DIR",
                                           help="Write Middlebury .flo files into DIR."),
    export_images: Path | None = typer.Option(None, metavar="DIR",
                                              help="Write colour-coded PNGs into DIR."),
    export_video: Path | None = typer.Option(
        None, metavar="MP4", help="Write the colour-coded forward flow as a video."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor fill the cache."),
    cache: CacheDir = None,
    json_out: JsonSummary = False,
) -> None:
    """Estimate optical flow between consecutive frames, cached on disk and exportable."""
    from lexp import flow as flows
    from lexp import inputs
    from lexp.cli.show import Reporter
    from lexp.config import RenderConfig, Window
    from lexp.flow.cache import FlowCache

    if json_out:
        stdout.check_open("the --json summary")
    reporter = Reporter(quiet=RunState.quiet)
    config = RenderConfig(fps=fps, window=Window.from_options(start, end, stride, max_frames))
    if method == FlowMethod.auto:
        estimator = flows.auto_estimator(scale=scale, device=device, cache=cache)
    else:
        estimator = flows.make_estimator(method.value, scale=scale, device=device, cache=cache)
    sources = inputs.resolve_inputs([str(clip)])
    if len(sources) != 1:
        raise UsageError(f"{clip} holds {len(sources)} clips; lexp flow takes one",
                         hint="name one video (or one folder of frames)")
    export_video = _checked_exports(sources[0], export_flo, export_images, export_video)
    exporter = flows.FlowExporter(export_flo, export_images, export_video)
    on_flow = exporter if exporter.wanted else None  # else the flows' motion will do
    flow_cache = None if no_cache else FlowCache(cache)
    try:
        with reporter.progress(f"flow {clip}") as on_progress:
            run = flows.clip_flows(sources[0], estimator, config, cache=flow_cache,
                                   backward=backward, on_flow=on_flow, on_progress=on_progress)
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
    chosen = (f" on {run.device}" if run.device else "") + \
        (", chosen by auto" if method == FlowMethod.auto else "")
    reporter.info(f"{run.clip}: {run.pairs} flows ({run.method}{chosen}) in {run.seconds:.2f} s; "
                  f"motion mean {run.mean_motion:.2f} px, max {run.max_motion:.2f} px; "
                  f"cache {run.cache_hits} hits, {run.cache_misses} misses")


def _checked_exports(source, export_flo: Path | None, export_images: Path | None,
                     export_video: Path | None) -> Path | None:
    """Check, before any work, that the exports can be written and replace no input;
    returns the video's path (through a link to the file it names)."""
    from lexp import jobs

    if export_video is not None:
        from lexp.paths import check_writable_dir, through_links

        if export_video.suffix.lower() not in jobs.VIDEO_SUFFIXES:
            raise UsageError(f"--export-video {export_video} is not a video file name",
                             hint="end it in .mp4 (or .mov, .m4v, .mkv)")
        export_video = through_links(export_video)  # a link's file, not the link
        check_writable_dir(export_video.parent, export_video)
        jobs.check_not_an_input(export_video, source.paths, "--export-video",
                                source.name)
    if source.kind != "video":  # exports named like frames would join (or replace) them
        for option, folder in (("--export-flo", export_flo), ("--export-images", export_images)):
            if folder is not None:
                jobs.check_folder_holds_no_input(folder, source.paths, option,
                                                 source.name)
    return export_video
