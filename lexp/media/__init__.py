"""Reading clips as a stream of frames: video files, image folders, globs and stdin.

Data contract
-------------
Frames leave this module as ``uint8`` H×W×3 **RGB** numpy arrays (BGR exists only inside
cv2 calls), one at a time from an iterator; a clip is never held in memory whole.
:meth:`Clip.frames` yields ``(index, frame)`` where ``index`` counts frames from the
start of the clip (0-based), whatever window was selected.

Sources
-------
- Video files (mp4, mov, mkv, avi, webm, gif, ...): decoded in-process by OpenCV's
  FFmpeg backend on a reader thread (:class:`CvVideoClip`). It is the same FFmpeg
  decoder and swscale conversion as the ffmpeg binary (the frames are bit-identical;
  a test checks it), without copying every frame through a pipe, which is what lets a
  mean render keep pace with decoding on two cores.
- Otherwise, and for stdin: the ffmpeg binary that ships with imageio-ffmpeg, as raw
  rgb24 on a pipe (:class:`VideoClip`). We drive ffmpeg ourselves rather than through
  ``imageio_ffmpeg.read_frames`` to read stdin, to read each frame straight into its
  array, to enlarge the pipe, and to turn ffmpeg's log into one-line errors. A file
  OpenCV cannot open goes this way too, so its error message comes from ffmpeg.
  ``LEXP_DECODER=ffmpeg`` forces this path for every video. Video of 10 bits or more
  (HDR among it) always takes it, converted to rgb24 with rounding, and the colour tags
  in ffmpeg's header (``ClipInfo.transfer_tag``) tell HDR curves apart (see
  :func:`open_video`, and ``lexp.colour`` for what is done with them).
- Image folders / globs / lists of image files: natural sort (frame2 before frame10);
  16-bit images are rounded to 8 bits, grey and alpha are handled.
- ``-`` (stdin): a video stream, or a stream of images one after another (ffmpeg's
  ``-f image2pipe``: PNG, JPEG, BMP, PNM, TIFF). MP4/MOV need random access (their index
  may sit at the end), so those are spooled to a temp file first; streamable containers
  (mkv, mpegts, nut, y4m, ...) and image streams go straight into ffmpeg. An image
  stream has no frame rate of its own: ``--fps`` gives one (else ffmpeg's 25).
"""

from lexp.media.clip import (
    IMAGE_EXTENSIONS,
    STDIN,
    VIDEO_EXTENSIONS,
    Clip,
    ClipInfo,
    IteratorClip,
    MemoryClip,
    check_frame,
    is_image,
    is_video,
    natural_key,
    to_8bit,
    window_frames,
    window_length,
)
from lexp.media.ffmpeg import VideoClip, ffmpeg_exe
from lexp.media.images import AnimatedImageClip, FrameFolderClip, read_image, read_image_rgb8
from lexp.media.opencv import CvVideoClip, is_utf8_name, open_video
from lexp.media.sources import ClipSource, open_clip
from lexp.media.stdin import StdinClip
from lexp.media.writer import VideoWriter
from lexp.paths import refuse_special_file, special_file_kind

__all__ = [
    "IMAGE_EXTENSIONS", "STDIN", "VIDEO_EXTENSIONS", "AnimatedImageClip", "Clip", "ClipInfo",
    "ClipSource",
    "CvVideoClip", "FrameFolderClip", "IteratorClip", "MemoryClip", "StdinClip", "VideoClip",
    "VideoWriter",
    "check_frame", "ffmpeg_exe", "is_image", "is_utf8_name", "is_video", "natural_key",
    "open_clip", "open_video", "read_image", "read_image_rgb8", "refuse_special_file",
    "special_file_kind", "to_8bit", "window_frames", "window_length",
]
