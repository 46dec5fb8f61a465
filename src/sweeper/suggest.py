"""Did-you-mean hints: the valid name closest to a typo (no torch, no pydantic here)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

DEFAULT_CUTOFF = 0.6  # difflib's own: how alike (ratio) a name must be to be offered


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def closest(name: str, options: Iterable[str], cutoff: float = DEFAULT_CUTOFF) -> str | None:
    """The option nearest to ``name``, or None when none is close.

    Close means difflib's ratio is at least ``cutoff``. Among close options the smallest
    edit distance wins; a tie goes to an option as long as ``name`` (one substitution, so
    ``valuez`` gives ``values``, not ``value``), then to the higher ratio, then to the first.
    """
    best: tuple[int, bool, float, int] | None = None
    found = None
    for i, option in enumerate(options):
        ratio = difflib.SequenceMatcher(None, option, name).ratio()
        if ratio < cutoff:
            continue
        rank = (edit_distance(name, option), len(option) != len(name), -ratio, i)
        if best is None or rank < best:
            best, found = rank, option
    return found


def did_you_mean(name: str, options: Iterable[str], cutoff: float = DEFAULT_CUTOFF) -> str:
    """``"; did you mean 'x'?"`` for the closest option, or "" when none is close."""
    found = closest(name, options, cutoff)
    return f"; did you mean {found!r}?" if found is not None else ""
