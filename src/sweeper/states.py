"""Trial state: one type, and the two rules every part of sweeper uses.

A trial is PENDING (known, not started), RUNNING, INTERRUPTED (it was running when its
driver stopped: Ctrl-C, SIGTERM, a kill; ``resume`` continues it), or ended as COMPLETE
(trained all its planned epochs; a diverged trial is COMPLETE with ``diverged`` set),
PRUNED (a scheduler stopped it early) or FAIL (it raised). Two predicates answer the questions the progress
line, ``status``, the report, ``export``, the W&B summary and the Optuna mirror all ask:

- :func:`is_result`: does this trial count as a result? COMPLETE with a finite metric.
- :func:`best_rows`: which results are best? Results only, ordered by the metric's goal.

Pruned and failed trials are ended (:attr:`TrialState.ended`) but never results: a pruned
trial's metric is from fewer epochs than the others', so it is not compared with them.
No pandas, ray or torch here.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from typing import Any


class TrialState(str, enum.Enum):
    """A trial's state, spelled as in the trial table and in Optuna (``TrialState``;
    INTERRUPTED is sweeper's own: the Optuna mirror holds ended trials only)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    INTERRUPTED = "INTERRUPTED"
    COMPLETE = "COMPLETE"
    PRUNED = "PRUNED"
    FAIL = "FAIL"

    def __str__(self) -> str:
        return self.value

    @property
    def ended(self) -> bool:
        """The trial will not train again (COMPLETE, PRUNED or FAIL)."""
        return self in ENDED

    @classmethod
    def of(cls, value: Any) -> TrialState:
        """The state named by ``value`` (a table cell); anything unknown is PENDING."""
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value))
        except ValueError:
            return cls.PENDING


ENDED = frozenset({TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL})


def metric_value(row: Mapping[str, Any], metric: str) -> float | None:
    """The row's finite value of ``metric``, or None (missing, NaN, inf, not a number)."""
    value = row.get(metric)
    if isinstance(value, bool) or value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def is_result(row: Mapping[str, Any], metric: str) -> bool:
    """Whether a trial row counts as a result: COMPLETE, with a finite ``metric``."""
    return TrialState.of(row.get("state")) is TrialState.COMPLETE and (
        metric_value(row, metric) is not None
    )


def best_rows(
    rows: Iterable[Mapping[str, Any]], metric: str, maximize: bool, k: int | None = None
) -> list[Mapping[str, Any]]:
    """The results among ``rows``, best first (ties keep their order); ``k`` of them if given."""
    results = [r for r in rows if is_result(r, metric)]
    sign = -1.0 if maximize else 1.0
    # a result's metric is a number (is_result), never None
    results.sort(key=lambda r: sign * metric_value(r, metric))  # type: ignore[operator]
    return results if k is None else results[:k]


def best_value(rows: Iterable[Mapping[str, Any]], metric: str, maximize: bool) -> float | None:
    """The best result's ``metric``, or None when no trial is a result yet."""
    best = best_rows(rows, metric, maximize, k=1)
    return metric_value(best[0], metric) if best else None


def counts(states: Iterable[Any]) -> dict[TrialState, int]:
    """How many trials are in each state (every state present, zeros included)."""
    out = dict.fromkeys(TrialState, 0)
    for s in states:
        out[TrialState.of(s)] += 1
    return out
