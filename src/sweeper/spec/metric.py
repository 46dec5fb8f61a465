"""The metric block of a sweep file: W&B's ``metric: {name, goal, target}``, and
``metrics: [..]`` (or ``metric: [..]``) for several objectives."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import StrictBool, StrictStr, model_validator

from sweeper.spec.params import Number, _Strict


class Metric(_Strict):
    """The metric the sampler optimises (W&B: ``metric: {name, goal, target}``).

    A ``metric`` block must name its metric, and its goal defaults to W&B's (minimize);
    a file with no block at all maximises :data:`DEFAULT_METRIC`. ``target``: the study
    starts no new trial once a trial reports a value at or beyond it (in the goal's
    direction); running trials finish. ``impute`` (W&B's: ``latest``, ``best`` or
    ``worst``): what the sampler is told for a trial that failed after reporting the
    metric, the latest, best or worst of its reported values (without it, or with no value
    reported, the trial is told as failed and the samplers leave it out); the trial table
    and the Optuna mirror still say FAIL. ``impute_while_running`` (``latest``, ``best``,
    ``worst``, or ``true``; W&B's default ``false``): the sampler also sees each running
    trial that has reported the metric, as if finished with its best value so far (W&B's
    Bayesian search takes a running run's metric extremum whatever the word); a running
    trial with no value yet stays running (Optuna's samplers keep away from its config).
    """

    name: StrictStr
    goal: Literal["maximize", "minimize"] = "minimize"
    target: Number | None = None
    impute: Literal["latest", "best", "worst"] | None = None
    impute_while_running: Literal["latest", "best", "worst", "false"] | StrictBool | None = None

    @model_validator(mode="after")
    def _supported(self) -> Metric:
        if self.target is not None and not math.isfinite(self.target):
            raise ValueError(f"@target: must be a finite number, got {self.target}")
        return self

    @property
    def imputes_running(self) -> bool:
        """Whether running trials' values reach the sampler (``impute_while_running``)."""
        return self.impute_while_running not in (None, "false", False)

    @property
    def mode(self) -> str:
        """Ray Tune's word for the goal."""
        return "max" if self.goal == "maximize" else "min"

    def imputed(self, values: list[float]) -> float | None:
        """W&B's ``impute`` over a failed trial's reported values (None: nothing to tell)."""
        finite = [v for v in values if v == v and abs(v) != float("inf")]
        if self.impute is None or not finite:
            return None
        if self.impute == "latest":
            return finite[-1]
        best = self.impute == "best"
        return max(finite) if best == (self.goal == "maximize") else min(finite)

    def reached(self, value: float) -> bool:
        """Whether ``value`` is at or beyond ``target`` in the goal's direction."""
        if self.target is None or value != value:
            return False
        return value >= self.target if self.goal == "maximize" else value <= self.target


def metric_list(raw: dict[str, Any]) -> dict[str, Any]:
    """``metric: [..]`` is W&B's ``metrics: [..]`` (several objectives), saved as ``metrics``."""
    if isinstance(raw.get("metric"), list):
        if "metrics" in raw:
            raise ValueError("@metrics: give metric or metrics, not both")
        raw["metrics"] = raw.pop("metric")
    elif "metric" in raw and "metrics" in raw:
        raise ValueError("@metrics: give metric (one objective) or metrics (several), not both")
    return raw
