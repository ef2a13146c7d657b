"""A followed exposure's checkpoint (:mod:`lexp.follow`): beside its output, as
``.NAME.lexp-follow.npz``, written atomically: a JSON header (the format and its version,
the settings that made the stack, the names of the frames in it, the stacker's and the
calibration's small state) and the stack's arrays (the running mean as float32, or the
brightest/darkest codes). Loading it checks its format; resuming checks its settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lexp.errors import InputError, UsageError

STATE_FORMAT = "lexp-follow"
STATE_VERSION = 1
STATE_SUFFIX = ".lexp-follow.npz"


def checkpoint_path(output: Path) -> Path:
    """Where the running state of a followed exposure is kept: beside its output."""
    return output.with_name(f".{output.name}{STATE_SUFFIX}")


def write(path: Path, header: dict, arrays: dict[str, np.ndarray]) -> None:
    """The checkpoint, atomically (OutputError when it cannot be written)."""
    from lexp.paths import atomic_write

    header = {"format": STATE_FORMAT, "version": STATE_VERSION, **header}
    with atomic_write(path) as file:
        np.savez(file, header=np.array(json.dumps(header)), **arrays)


def load(path: Path) -> tuple[dict, dict]:
    """A checkpoint's (header, arrays); a clear error for one that is damaged or made by
    another version of its format."""
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            arrays = {k: data[k] for k in data.files if k != "header"}
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
        raise InputError(f"the checkpoint {path} is damaged ({err})",
                         hint="use --overwrite to start the exposure afresh") from None
    if header.get("format") != STATE_FORMAT or header.get("version") != STATE_VERSION:
        raise InputError(f"the checkpoint {path} is of format {header.get('format')} "
                         f"version {header.get('version')}; this lexp resumes "
                         f"{STATE_FORMAT} version {STATE_VERSION}",
                         hint="use --overwrite to start the exposure afresh")
    return header, arrays


def check_same(path: Path, saved: dict, now: dict) -> None:
    """A usage error naming the first setting the run differs in from its checkpoint."""
    for key, value in now.items():
        if saved.get(key) != value:
            raise UsageError(f"the checkpoint {path} was made with {key} {saved.get(key)}, "
                             f"this run has {key} {value}",
                             hint="run the command that started it to resume, or add "
                                  "--overwrite to start afresh")
