"""Printing for the CLI and the Python API: a rich console and the text of a table cell."""

from __future__ import annotations

from typing import Any


def console(stderr: bool = False) -> Any:
    """A rich console; pipes and files get whole tables, not 80 columns."""
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False, soft_wrap=True)
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
