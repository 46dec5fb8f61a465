"""Read a study folder into frames: the only I/O of the report besides writing it.

``collect(study)`` gives the trial table, typed by the saved spec; ``context(study)`` the
facts every summary needs (metric, goal, swept parameters and their labels). No Ray, no
torch: the report reads the study's files only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sweeper.spec.objectives import Objectives
from sweeper.spec.values import labels_of
from sweeper.states import TrialState
from sweeper.store import PARAM_PREFIX, Study


@dataclass(frozen=True)
class ReportContext:
    """What the summaries and plots of one study need besides its frames.

    Attributes:
        name: the study's name; ``path`` its folder; ``state`` from study.json.
        metric: the metric the sampler optimised; ``goal`` maximize or minimize.
        params: the swept parameters, in the spec's order (columns ``config/<name>``).
        labels: for each categorical parameter, its values in the spec's order.
        kinds: each swept parameter's distribution (``categorical``, ``log_uniform_values``...).
        spec: the saved spec; ``meta`` study.json.
    """

    name: str
    path: Path
    state: str
    metric: str
    goal: str
    params: list[str]
    labels: dict[str, list[Any]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    spec: Any = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def objectives(self) -> Objectives:
        """The study's objectives (several: a multi-objective study, ``metric`` the first)."""
        return self.spec.objectives

    @property
    def maximize(self) -> bool:
        return self.goal == "maximize"

    @property
    def optuna_url(self) -> str:
        return f"sqlite:///{(self.path / 'optuna.db').resolve()}"


def context(study: Study) -> ReportContext:
    """The study's metric, goal and swept parameters, from its saved spec."""
    spec = study.spec()
    meta = study.meta()
    swept = {k: p for k, p in spec.parameters.items() if p.kind != "constant"}
    labels = {k: labels_of(p.values or []) for k, p in swept.items() if p.kind == "categorical"}
    return ReportContext(
        name=spec.name,
        path=study.path,
        state=str(meta.get("state", "?")),
        metric=spec.metric.name,
        goal=spec.metric.goal,
        params=list(swept),
        labels=labels,
        kinds={k: p.kind for k, p in swept.items()},
        spec=spec,
        meta=meta,
    )


def collect(study: Study) -> pd.DataFrame:
    """The trial table, one row per trial, with each ``config/<param>`` typed by the spec.

    Categorical values come back as the spec wrote them (CSV makes ``[16, auto]`` all
    text); ``state`` is always a :class:`TrialState` name; ``error`` is text.
    """
    ctx = context(study)
    df = study.trials().copy()
    for col in ("state", "error"):
        if col not in df.columns:
            df[col] = ""
    df["state"] = df["state"].map(lambda s: TrialState.of(s).value)  # unknown: PENDING
    df["error"] = df["error"].fillna("").astype(str)
    df["trial_id"] = df["trial_id"].astype(str)
    for name in ctx.objectives.names:  # no trial reported yet (or every one failed first)
        if name not in df.columns:
            df[name] = float("nan")
    for name in ctx.params:
        col = PARAM_PREFIX + name
        if col not in df.columns:
            df[col] = pd.NA
        elif name in ctx.labels:
            df[col] = _as_labels(df[col], ctx.labels[name])
    return df.reset_index(drop=True)


def history(study: Study) -> pd.DataFrame:
    """Per-epoch metrics, one row per (trial_id, epoch), trial ids as text."""
    hist = study.history()
    if not hist.empty:
        hist["trial_id"] = hist["trial_id"].astype(str)
        hist = hist.sort_values(["trial_id", "epoch"]).reset_index(drop=True)
    return hist


def _as_labels(values: pd.Series, labels: list[Any]) -> pd.Series:
    """Map values read from CSV back to the spec's own values (``"16"`` -> ``16``)."""
    by_text = {str(v): v for v in labels}

    def one(v: Any) -> Any:
        if v is None or (isinstance(v, float) and v != v):
            return None
        if isinstance(v, float) and v.is_integer() and str(int(v)) in by_text:
            return by_text[str(int(v))]
        return by_text.get(str(v), v)

    return values.map(one).astype(object)
