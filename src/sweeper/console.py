"""Printing for the CLI and the Python API: a rich console, the text of a table cell, and
the clock of the command being run (the progress line times the run from it)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

_started: float | None = None  # time.monotonic() when the outermost command began


@contextlib.contextmanager
def command_clock() -> Iterator[None]:
    """Time a command (``sweeper run``, :func:`sweeper.run`) from here: nested blocks keep
    the outermost one's start."""
    global _started
    outer = _started is None
    if outer:
        _started = time.monotonic()
    try:
        yield
    finally:
        if outer:
            _started = None


def command_started() -> float:
    """When the command being run began (``time.monotonic()``); now, outside any."""
    return _started if _started is not None else time.monotonic()


def console(stderr: bool = False) -> Any:
    """A rich console; pipes and files get whole tables, not 80 columns. A reader that
    went away (``| head``) raises BrokenPipeError, which the CLI ends quietly with exit 0
    (rich's own handling exits 1)."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError

    out = _Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not out.is_terminal:
        out.width = max(out.width, 200)
    return out


def fmt(value: Any) -> str:
    """A cell's text: floats to 4 decimals (big ones whole), missing values blank."""
    import pandas as pd

    if value is None or value is pd.NA:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)
