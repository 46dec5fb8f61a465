"""A study's objectives: one metric, or several (a multi-objective study), and the Pareto rule.

``spec.objectives`` is an :class:`Objectives`; ``spec.metric`` is its first metric, which
single-metric code (the progress line, Ray Tune's own ``metric``, the curves) keeps using.
With one objective every rule here is :mod:`sweeper.states`' rule, so a single-objective
study is ranked exactly as before. With several, a result is a COMPLETE trial with every
objective finite, and the best results are the Pareto front: the results no other result
dominates (as good in every objective, better in one), ordered by the first objective.
No pandas, ray or torch here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sweeper.states import TrialState, best_rows, is_result, metric_value


@dataclass(frozen=True)
class Objectives:
    """The metrics a study optimises, in the spec's order (the first one leads)."""

    metrics: tuple[Any, ...]  # tuple[Metric, ...] (sweeper.spec.schema)

    @property
    def multi(self) -> bool:
        """More than one objective: a Pareto front, not one best trial."""
        return len(self.metrics) > 1

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.metrics]

    @property
    def goals(self) -> list[Literal["maximize", "minimize"]]:
        return [m.goal for m in self.metrics]

    @property
    def modes(self) -> list[str]:
        """Ray Tune's words for the goals (``max``/``min``)."""
        return ["max" if g == "maximize" else "min" for g in self.goals]

    @property
    def first(self) -> Any:
        return self.metrics[0]

    def describe(self) -> str:
        """``val_acc (maximize), params (minimize)``."""
        return ", ".join(f"{m.name} ({m.goal})" for m in self.metrics)

    def values(self, row: Mapping[str, Any]) -> list[float] | None:
        """The row's finite value of every objective, or None when one is missing."""
        out = [v for name in self.names if (v := metric_value(row, name)) is not None]
        return out if len(out) == len(self.names) else None

    def is_result(self, row: Mapping[str, Any]) -> bool:
        """COMPLETE with every objective finite (one objective: :func:`states.is_result`)."""
        if not self.multi:
            return is_result(row, self.first.name)
        return TrialState.of(row.get("state")) is TrialState.COMPLETE and (
            self.values(row) is not None
        )

    def dominates(self, a: Sequence[float], b: Sequence[float]) -> bool:
        """Whether values ``a`` dominate ``b``: no worse in every objective, better in one."""
        signs = [1.0 if g == "maximize" else -1.0 for g in self.goals]
        ge = all(s * x >= s * y for s, x, y in zip(signs, a, b, strict=True))
        return ge and any(s * x > s * y for s, x, y in zip(signs, a, b, strict=True))

    def front(self, rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The non-dominated results, best first by the first objective (ties keep order).

        Two results with equal values do not dominate each other: both are on the front,
        as in Optuna's ``study.best_trials``.
        """
        results = [r for r in rows if self.is_result(r)]
        vals = [self.values(r) for r in results]
        on_front = [
            r
            for r, v in zip(results, vals, strict=True)
            # results only: no value list is None
            if not any(self.dominates(w, v) for w in vals)  # type: ignore[arg-type]
        ]
        return best_rows(on_front, self.first.name, self.first.goal == "maximize")

    def ranked(self, rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """Every result, best first: :func:`states.best_rows` for one objective; for
        several the Pareto front, then the other results, each by the first objective."""
        rows = list(rows)
        maximize = self.first.goal == "maximize"
        if not self.multi:
            return best_rows(rows, self.first.name, maximize)
        front = self.front(rows)
        ids = {id(r) for r in front}
        rest = [r for r in rows if self.is_result(r) and id(r) not in ids]
        return front + best_rows(rest, self.first.name, maximize)

    def best(self, rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The best results: the one best (one objective) or the Pareto front (several)."""
        rows = list(rows)
        return self.front(rows) if self.multi else self.ranked(rows)[:1]
