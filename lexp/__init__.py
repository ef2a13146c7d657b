"""lexp: long-exposure photographs from short clips.

The package is flat, one module per concept (see README "Architecture"). Importing
``lexp`` is cheap: nothing heavy (numpy, cv2, torch) is imported here.
"""

import os as _os

__version__ = "0.1.0"

# OpenCV logs to stderr on its own (e.g. "[ WARN:0] ... can't open ..."); lexp reports
# every problem itself, in one line, so keep OpenCV quiet unless the user asks for it.
_os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
_os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
