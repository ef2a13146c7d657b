"""lexp: long-exposure photographs from short clips.

The package is flat, one module per concept (see README "Architecture"). Importing
``lexp`` is cheap: nothing heavy (numpy, cv2, torch) is imported here.
"""

__version__ = "0.1.0"
