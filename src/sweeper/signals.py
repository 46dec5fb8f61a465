"""SIGTERM as Ctrl-C: ``kill`` (or a batch scheduler) stops a run the way Ctrl-C does.

Used by the CLI around a whole run and by the engine around ``tuner.fit()``; nested uses
restore each other's handler on the way out.

A stop is also remembered: Python runs a signal handler between any two bytecodes, and a
KeyboardInterrupt raised while the interpreter is inside a destructor or a weakref callback
(Ray's start-up runs many) is printed as "Exception ignored" and lost. The engine calls
:func:`raise_if_stopped` before it hands control to Ray Tune, so such a stop still stops.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from typing import Any

_stopped = False  # a SIGINT or SIGTERM reached our handlers inside the outermost block
_depth = 0  # how many sigterm_as_sigint blocks are open


def raise_if_stopped() -> None:
    """KeyboardInterrupt when a stop signal arrived inside the block, even one whose
    KeyboardInterrupt was lost."""
    if _stopped:
        raise KeyboardInterrupt


def _stop(signum: int, frame: Any) -> None:
    """Python's Ctrl-C (KeyboardInterrupt), remembered."""
    global _stopped
    _stopped = True
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_sigint() -> Iterator[Callable[[], None]]:
    """SIGTERM stops a run the way the first Ctrl-C does.

    Inside ``tuner.fit()`` that is Ray Tune's SIGINT handler (stop cleanly, snapshot, return);
    before it, Python's (KeyboardInterrupt, remembered for :func:`raise_if_stopped`). Yields
    ``rearm()``: ``ray.init`` installs its own SIGTERM handler (``sys.exit``), so the
    forwarding is set again after it.
    """

    def forward(signum: int, frame: Any) -> None:
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:  # SIGINT ignored (a background job of a script, nohup): SIGTERM still stops
            _stop(signum, frame)

    def rearm() -> None:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, forward)

    try:
        previous = signal.signal(signal.SIGTERM, forward)
    except ValueError:  # not the main thread
        yield lambda: None
        return
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.default_int_handler:
        signal.signal(signal.SIGINT, _stop)
    global _depth, _stopped
    _depth += 1
    try:
        yield rearm
    finally:
        _depth -= 1
        if _depth == 0:
            _stopped = False
        signal.signal(signal.SIGTERM, previous)
        if previous_int is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous_int)
