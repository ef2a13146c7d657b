"""From what the user typed to clips, for every command: :func:`resolve_inputs` (render,
flow, bench) and :func:`clips_under` (train's folders, searched recursively).

- ``-``: a video stream on stdin.
- a video file: one clip. A file with an unknown extension is tried as a video.
- image files (typically a shell-expanded glob ``frames/*.png``): together, one clip
  whose frames are those files in natural order.
- a folder: every video in it is a clip (a batch; a folder of Live Photos is a batch of
  their videos); a folder of images and no videos is one clip of frames (images lexp
  itself wrote there left out, with a warning; of RAW+JPEG pairs, the RAW frames).
- a Live Photo's still (IMG_1234.HEIC or .JPG with its video beside it, the one carrying
  its content identifier or, failing that, IMG_1234.MOV): its video.
- a quoted glob (``'shots/*.jpg'``): expanded by lexp with the same rules.
"""

from __future__ import annotations

import glob
from pathlib import Path

from lexp.errors import InputError, UsageError
from lexp.media import STDIN, ClipSource, is_image, is_video, natural_key, refuse_special_file
from lexp.media.live_photos import live_photo_video, pair_stills_with_videos

_GLOB_CHARS = set("*?[")


def resolve_inputs(args: list[str], problems: list | None = None) -> list[ClipSource]:
    """The clips named by the command line, in order (see the module docstring).
    ``problems``: when given, an argument that names nothing usable (missing, a FIFO, a
    folder of junk) is appended to it as (argument, InputError) and the rest go on;
    otherwise the first such argument raises."""
    if not args:
        raise UsageError("no input given", hint="e.g. lexp render clip.mp4 -o out.jpg")
    sources: list[ClipSource] = []
    pending_images: list[Path] = []

    def flush_images() -> None:
        if pending_images:
            name = str(pending_images[0].parent / "*") if len(pending_images) > 1 \
                else str(pending_images[0])
            # Natural order, as for a folder: a shell glob passes frame10 before frame2,
            # and order matters to flow.
            files = sorted(pending_images, key=natural_key)
            pending_images.clear()
            if len(files) == 1 and (video := live_photo_video(files[0])) is not None:
                sources.append(ClipSource(str(video), "video", (video,),
                                          live_photo=files[0].name))
                return
            frames, notes = _without_lexp_outputs(name, files) if len(files) > 1 \
                else (files, ())
            if len(files) == 1 and files[0].suffix.lower() in (".heic", ".heif"):
                notes = (f"{files[0].name}: no Live Photo video ({files[0].stem}.MOV) beside "
                         "it: the still alone rendered",)
            frames, twins = _raw_over_twins(name, frames)
            sources.append(ClipSource(name, "frames", tuple(frames), notes + twins))

    if STDIN in args:
        if len(args) > 1:
            raise UsageError("'-' (stdin) cannot be mixed with other inputs")
        return [ClipSource(STDIN, "stdin")]
    for arg in args:
        try:
            path = Path(arg)
            refuse_special_file(path)
            if path.is_dir():
                flush_images()
                sources.extend(_sources_in(arg, sorted(path.iterdir(), key=natural_key)))
            elif path.exists():
                if is_image(path):
                    pending_images.append(path)
                else:
                    flush_images()
                    sources.append(ClipSource(arg, "video", (path,)))
            elif _GLOB_CHARS & set(arg):
                flush_images()
                matches = [Path(p) for p in sorted(glob.glob(arg), key=natural_key)]
                if not matches:
                    raise InputError(f"no files match {arg}")
                sources.extend(_sources_in(arg, matches))
            else:
                raise InputError(f"no such file or folder: {arg}",
                                 hint="check the name; quote a glob for lexp to expand it")
        except InputError as err:
            if problems is None:
                raise
            problems.append((arg, err))
    flush_images()
    return sources


def clips_under(folder: Path, min_frames: int) -> list[ClipSource]:
    """Every clip in a folder tree, folders in sorted order: each video (named by its
    stem), and each folder of at least ``min_frames`` images, one clip of frames in
    natural order, named by its path under ``folder`` (a dataset such as Sky Timelapse
    keeps ``<video>/<clip>/*.jpg``)."""
    import os

    found: list[ClipSource] = []
    for directory, _, files in sorted(os.walk(folder)):
        here = Path(directory)
        images = sorted((here / f for f in files if is_image(Path(f))), key=natural_key)
        if len(images) >= min_frames:
            relative = str(here.relative_to(folder))
            found.append(ClipSource(relative if relative != "." else folder.name, "frames",
                                    tuple(images)))
        found += [ClipSource(Path(f).stem, "video", (here / f,))
                  for f in sorted(files, key=natural_key) if is_video(Path(f))]
    return found


def _sources_in(name: str, entries: list[Path]) -> list[ClipSource]:
    files = [p for p in entries if p.is_file() and not p.name.startswith(".")]
    videos = [p for p in files if is_video(p)]
    if videos:  # a folder of Live Photos too: a batch of their videos
        stills = {video: still.name for still, video in
                  pair_stills_with_videos([p for p in files if not is_video(p)], videos).items()}
        return [ClipSource(str(p), "video", (p,), live_photo=stills.get(p)) for p in videos]
    images = [p for p in files if is_image(p)]
    if images:
        frames, notes = _without_lexp_outputs(name, images)
        frames, twins = _raw_over_twins(name, frames)
        if frames:
            return [ClipSource(name, "frames", tuple(frames), notes + twins)]
    raise InputError(f"no videos or images in {name}",
                     hint="lexp reads video files (mp4, mov, mkv, ...) and image frames "
                          "(jpg, png, tif)")


def _raw_over_twins(name: str, images: list[Path]) -> tuple[list[Path], tuple]:
    """A camera's RAW+JPEG mode writes IMG_0001.CR2 and IMG_0001.JPG: the RAW frames are
    the clip, their twins of the same name left out (said once)."""
    from lexp.media.camera_files import is_raw

    raw_stems = {p.stem for p in images if is_raw(p)}
    twins = [p for p in images if not is_raw(p) and p.stem in raw_stems]
    if not twins:
        return images, ()
    note = (f"{name}: {len(twins)} RAW+JPEG pair{'s' if len(twins) > 1 else ''}: the RAW "
            f"frames used, {twins[0].name}{' and the rest' if len(twins) > 1 else ''} left out")
    return [p for p in images if p not in twins], (note,)


def _without_lexp_outputs(name: str, images: list[Path]) -> tuple[list[Path], tuple]:
    """The frames of a folder (or glob) without the images lexp itself wrote there (``-o
    frames/out.png`` run twice would take the first result for a frame), and a warning
    naming what was left out."""
    from lexp.stills import is_lexp_output

    ours = [p for p in images if is_lexp_output(p)]
    if not ours:
        return images, ()
    shown = ", ".join(p.name for p in ours[:3]) + (f" and {len(ours) - 3} more"
                                                    if len(ours) > 3 else "")
    note = (f"{name}: left out {shown}: lexp wrote {'it' if len(ours) == 1 else 'them'} "
            "(the embedded settings say so), so not a frame of the clip")
    return [p for p in images if p not in ours], (note,)
