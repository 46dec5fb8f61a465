"""Printing for the CLI (shared with the Python API: :mod:`sweeper.console`)."""

from __future__ import annotations

import os
import sys

from sweeper.console import console, fmt

__all__ = ["closed_pipe", "console", "fmt"]


def closed_pipe() -> int:
    """The reader of our output went away (``| head``): stop quietly, exit 0.

    stdout is pointed at /dev/null so the interpreter's last flush at exit does not fail
    again with "Exception ignored ... BrokenPipeError"."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout (a test's capture): nothing to flush
        pass
    return 0
