"""The ``lexp`` command line: parses options, builds a config, calls one library function,
prints the result. One module per command; ``app`` holds the Typer app, the global
options and the entry point (:func:`main`).

Nothing heavy is imported at module level (no numpy, cv2 or torch), so ``lexp --help``
stays fast. Errors from the library arrive as :class:`lexp.errors.LexpError` and leave
as one line on stderr and an exit code (see ``lexp.errors``).
"""

# Registering the commands, in the order --help lists them.
from lexp.cli import bench, download, flow, render, train  # noqa: E402, F401, I001
from lexp.cli.app import app, main
from lexp.cli.train import _TrainingDataReport  # noqa: E402, F401 (tests use it)

__all__ = ["app", "main"]
