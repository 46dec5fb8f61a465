"""SIGTERM as Ctrl-C: ``kill`` (or a batch scheduler) stops a run the way Ctrl-C does.

Used by the CLI around a whole run and by the engine around ``tuner.fit()``; nested uses
restore each other's handler on the way out.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def sigterm_as_sigint() -> Iterator[Callable[[], None]]:
    """SIGTERM stops a run the way the first Ctrl-C does.

    Inside ``tuner.fit()`` that is Ray Tune's SIGINT handler (stop cleanly, snapshot, return);
    before it, Python's (KeyboardInterrupt). Yields ``rearm()``: ``ray.init`` installs its own
    SIGTERM handler (``sys.exit``), so the forwarding is set again after it.
    """

    def forward(signum: int, frame: Any) -> None:
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:  # SIGINT ignored (a background job of a script, nohup): SIGTERM still stops
            raise KeyboardInterrupt

    def rearm() -> None:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, forward)

    try:
        previous = signal.signal(signal.SIGTERM, forward)
    except ValueError:  # not the main thread
        yield lambda: None
        return
    try:
        yield rearm
    finally:
        signal.signal(signal.SIGTERM, previous)
