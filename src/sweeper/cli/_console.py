"""Printing for the CLI (shared with the Python API: :mod:`sweeper.console`)."""

from __future__ import annotations

from sweeper.console import console, fmt

__all__ = ["console", "fmt"]
