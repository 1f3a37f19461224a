"""Signals during a sweep: a stop request unwinds through ``finally``, and cleanup is not cut short.

The harness starts servers, stressors and clients and creates cgroups; they must go on Ctrl-C,
SIGTERM and SIGHUP as on normal exit, so those signals raise (and ``try/finally`` cleans up), and
while cleaning up they are held.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator
from types import FrameType

log = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """Raised from the SIGTERM/SIGHUP handler so ``finally`` blocks run."""


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise ``Interrupted`` (a KeyboardInterrupt).

    SIGINT is installed explicitly too: a shell starts background jobs with SIGINT ignored, and
    Python keeps an inherited SIG_IGN, so ``kill -INT`` would otherwise do nothing.
    """

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Interrupted(f"signal {signum}")

    old = {}
    for s in STOP_SIGNALS:
        try:
            old[s] = signal.signal(s, handler)
        except ValueError:  # not the main thread
            pass
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP during cleanup so a second Ctrl-C cannot cut it short."""
    pending = []
    old = {}

    def hold(signum: int, _frame: FrameType | None) -> None:
        pending.append(signum)

    for s in STOP_SIGNALS:
        try:
            old[s] = signal.signal(s, hold)
        except ValueError:
            pass
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if pending:
            log.warning("signals %s arrived during cleanup", pending)
