"""The one way lexp stops when asked to: Ctrl-C (SIGINT), ``kill`` or a job scheduler
(SIGTERM), and a closing terminal or ssh session (SIGHUP) all unwind the same way, as a
KeyboardInterrupt, so every ``finally`` and ``except BaseException`` removes its temp
file, lock and partial output, and the run ends with exit code 130.

(SIGKILL cannot be caught: :func:`lexp.paths.sweep_leftovers` removes what such a run
left, the next time a run writes into the same folder.)
"""

from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def unwind_on_stop_signals() -> None:
    """Make SIGTERM and SIGHUP raise KeyboardInterrupt, as SIGINT does (main thread only).

    A signal the caller chose to ignore stays ignored: under ``nohup`` (SIGHUP ignored)
    a render must outlive the terminal, as Python leaves an ignored SIGINT alone.
    """
    for signum in STOP_SIGNALS:
        if signum != signal.SIGINT and signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, _raise_interrupt)
