"""The settings of a followed exposure (``lexp render --follow``, :mod:`lexp.follow`): how
often it rewrites its output (:class:`Every`), when it ends (:class:`Until`, an idle
time), and how often a folder is looked at, parsed from the command line's words."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lexp.errors import UsageError


@dataclass(frozen=True)
class Every:
    """A period: every ``frames`` frames or every ``seconds`` seconds."""

    frames: int | None = None
    seconds: float | None = None

    @classmethod
    def parse(cls, text: str, option: str) -> Every:
        """'10' or '10f' (frames), '30s', '5m', '1h' (time)."""
        frames, seconds = _count_or_duration(text, option)
        return cls(frames, seconds)


@dataclass(frozen=True)
class Until:
    """When a followed source ends: after ``frames`` frames in all, or at ``deadline``
    (seconds since the epoch)."""

    frames: int | None = None
    deadline: float | None = None

    @classmethod
    def parse(cls, text: str, now: float | None = None) -> Until:
        """'500f' (frames), '8h', '90m', '45s' (from now), or a clock time '05:30' (its
        next occurrence)."""
        now = time.time() if now is None else now
        clock = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", text.strip())
        if clock:
            hour, minute, second = (int(v or 0) for v in clock.groups())
            if hour > 23 or minute > 59 or second > 59:
                raise UsageError(f"--until {text} is not a time of day",
                                 hint="e.g. --until 05:30, --until 8h or --until 500f")
            moment = datetime.fromtimestamp(now).replace(hour=hour, minute=minute,
                                                         second=second, microsecond=0)
            if moment.timestamp() <= now:
                moment += timedelta(days=1)
            return cls(deadline=moment.timestamp())
        frames, seconds = _count_or_duration(text, "--until", bare="seconds")
        return cls(frames, None if seconds is None else now + seconds)


def seconds_of(text: str, option: str) -> float:
    """A duration ('90', '45s', '10m', '2h') in seconds; a usage error for anything else."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text.lower())
    if not found or float(found.group(1)) <= 0:
        raise UsageError(f"{option} {text!r} is not a duration", hint=f"e.g. {option} 10m")
    return _count_or_duration(text, option, bare="seconds")[1]


def _count_or_duration(text: str, option: str, bare: str = "frames"):
    """(frames, None) or (None, seconds) from '10f', '30s', '5m', '2h' (a bare number is
    ``bare``)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([fsmh]?)\s*", text.lower())
    if not found or float(found.group(1)) <= 0:
        raise UsageError(f"{option} {text!r} is not a frame count or a duration",
                         hint=f"e.g. {option} 10f (frames), 30s, 5m or 2h")
    value, unit = float(found.group(1)), found.group(2) or ("f" if bare == "frames" else "s")
    if unit == "f":
        if value != int(value):
            raise UsageError(f"{option} {text!r}: a frame count is whole",
                             hint=f"e.g. {option} 10f")
        return int(value), None
    return None, value * {"s": 1, "m": 60, "h": 3600}[unit]


@dataclass(frozen=True)
class FollowOptions:
    preview_every: Every = field(default_factory=lambda: Every(seconds=30.0))
    until: Until = field(default_factory=Until)
    idle_seconds: float | None = None  # folders: end after this long without a new frame
    poll_seconds: float = 1.0  # folders: how often the folder is looked at
