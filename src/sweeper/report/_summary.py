"""Pure summaries of a study's frames: best trials, grid tables, thresholds, problems.

Every function takes frames (and names) and returns a frame; none reads a file.
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Any

import numpy as np
import pandas as pd

from sweeper.spec.objectives import Objectives
from sweeper.states import TrialState, metric_value
from sweeper.store import PARAM_PREFIX

# A continuous parameter with more distinct values than this is binned for tables.
MAX_LEVELS = 8
BINS = 5
# Pairs of parameters shown (the first ones, in the spec's order).
MAX_PAIRS = 15
# A trial table's metric columns after the main metric and its best (those recorded).
TABLE_METRICS = ("val_acc", "test_acc", "test_loss", "params")
# The order of the trials that are not results, after the results (best first).
OTHERS_ORDER = (
    TrialState.RUNNING,
    TrialState.INTERRUPTED,
    TrialState.PRUNED,
    TrialState.COMPLETE,  # without a finite metric
    TrialState.FAIL,
    TrialState.PENDING,
)


def col(param: str) -> str:
    return PARAM_PREFIX + param


def finished(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The results: trials that trained all their epochs and have a finite metric
    (:func:`sweeper.states.is_result`); tables and plots use these."""
    if df.empty or metric not in df.columns:
        return df.iloc[0:0]
    return df[result_mask(df, metric)]


def result_mask(df: pd.DataFrame, metric: str) -> pd.Series:
    """:func:`sweeper.states.is_result` of every row, column-wise (linear, no row dicts)."""
    complete = {s: TrialState.of(s) is TrialState.COMPLETE for s in df["state"].unique()}
    ok = df["state"].map(complete).astype(bool)
    values = df[metric]
    if values.dtype.kind in "iuf":
        finite = np.isfinite(values.to_numpy(dtype=float))
    else:  # text or mixed: the row rule, value by value
        finite = values.map(lambda v: metric_value({metric: v}, metric) is not None).to_numpy()
    return ok & pd.Series(finite, index=df.index, dtype=bool)


def trial_table(
    df: pd.DataFrame,
    params: list[str],
    metric: str,
    maximize: bool,
    objectives: Objectives | None = None,
) -> pd.DataFrame:
    """Every trial, one row each, in the order of :func:`sweeper.states.best_rows`.

    The results (COMPLETE with a finite ``metric``) come first, best first; then the other
    trials in :data:`OTHERS_ORDER` (RUNNING, PRUNED, FAIL, PENDING), each in table order.
    Columns: ``trial_id``, ``state``, ``epochs``, ``wall_s``, the ``params`` by their names
    (``config/<name>`` where a name is taken, as by a swept ``epochs``), ``metric``, its
    best, :data:`TABLE_METRICS`, and ``error`` when any trial has one; only those recorded.
    ``sweeper status`` prints this table; the report's best trials are its first rows.
    With several ``objectives`` the results come in :meth:`Objectives.ranked` order (the
    Pareto front first) and every objective has a column.
    """
    several = objectives is not None and objectives.multi
    if several:
        rows = df.to_dict(orient="records")
        for i, row in enumerate(rows):
            row[_POSITION] = i
        # several: objectives is set
        best = [row[_POSITION] for row in objectives.ranked(rows)]  # type: ignore[union-attr]
    else:  # best_rows, column-wise: results by metric (ties in table order)
        ok = result_mask(df, metric).to_numpy() if metric in df.columns else np.zeros(len(df), bool)
        where = np.flatnonzero(ok)
        values = pd.to_numeric(df[metric].iloc[where], errors="coerce").to_numpy(dtype=float)
        best = where[np.argsort(-values if maximize else values, kind="stable")].tolist()
    taken = np.zeros(len(df), dtype=bool)
    taken[best] = True
    rank = {state: i for i, state in enumerate(OTHERS_ORDER)}
    ranks = {s: rank[TrialState.of(s)] for s in df["state"].unique()} if len(df) else {}
    order = df["state"].map(ranks).to_numpy()
    left = np.flatnonzero(~taken)
    rest = left[np.argsort(order[left], kind="stable")].tolist()
    cols = ["trial_id", "state", "epochs", "wall_s"]
    if "node" in df.columns and df["node"].dropna().nunique() > 1:
        cols.append("node")  # a cluster's study: where each trial ran
    cols += [col(p) for p in params]
    several_names = objectives.names if several else []  # type: ignore[union-attr]  # several: set
    cols += [metric, *several_names, f"best_{metric}", *TABLE_METRICS]
    if "error" in df.columns and df["error"].fillna("").astype(str).str.len().gt(0).any():
        cols.append("error")
    cols = [c for c in dict.fromkeys(cols) if c in df.columns]
    out = df.iloc[best + rest][cols].reset_index(drop=True)

    def name(c: str) -> str:
        bare = c.removeprefix(PARAM_PREFIX)
        return bare if c.startswith(PARAM_PREFIX) and bare not in cols else c

    return out.rename(columns=name)


_POSITION = "__position"  # a row's place in the table, carried through best_rows


def best_trials(
    df: pd.DataFrame, params: list[str], metric: str, maximize: bool, k: int = 10
) -> pd.DataFrame:
    """The ``k`` best results, best first (the first rows of :func:`trial_table`), with
    their configs and key metrics."""
    table = trial_table(df, params, metric, maximize)
    top = table.head(min(k, len(finished(df, metric))))
    shown = [col(p) if col(p) in table.columns else p for p in params]
    extra = (f"best_{metric}", "test_acc", "test_loss", "params")
    cols = ["trial_id", metric, *extra, "epochs", "wall_s", *shown]
    out = top[[c for c in dict.fromkeys(cols) if c in top.columns]].copy()
    out.insert(0, "rank", range(1, len(out) + 1))
    return out.reset_index(drop=True)


def pareto_front(df: pd.DataFrame, params: list[str], objectives: Objectives) -> pd.DataFrame:
    """The Pareto front's trials (:meth:`Objectives.front`), best first by the first
    objective, with every objective, their configs and key metrics."""
    first = objectives.first
    table = trial_table(df, params, first.name, first.goal == "maximize", objectives)
    front = objectives.front(df.to_dict(orient="records"))
    top = table.head(len(front))
    shown = [col(p) if col(p) in table.columns else p for p in params]
    cols = ["trial_id", *objectives.names, "test_acc", "epochs", "wall_s", *shown]
    out = top[[c for c in dict.fromkeys(cols) if c in top.columns]].copy()
    out.insert(0, "rank", range(1, len(out) + 1))
    return out.reset_index(drop=True)


def repeat_values(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (trial, repeat) value of ``metric``: a trial with repeats reports each
    repeat's final value as ``<metric>_r<i>``; otherwise its one value stands alone."""
    pattern = re.compile(rf"^{re.escape(metric)}_r\d+$")
    per_run = [c for c in df.columns if pattern.match(c)]
    if not per_run:
        return df.assign(_value=pd.to_numeric(df[metric], errors="coerce"))
    long = df.melt(id_vars=[c for c in df.columns if c not in per_run], value_vars=per_run)
    long["_value"] = pd.to_numeric(long["value"], errors="coerce")
    single = df[df[per_run].isna().all(axis=1)].assign(
        _value=lambda d: pd.to_numeric(d[metric], errors="coerce")
    )
    long = long.dropna(subset=["_value"]).drop(columns=["variable", "value"])
    return pd.concat([long, single], ignore_index=True)


def levels(values: pd.Series, kind: str = "") -> pd.Series:
    """Table levels of a parameter: its values, or bins for a continuous one."""
    numeric = pd.to_numeric(values, errors="coerce")
    if values.nunique(dropna=True) <= MAX_LEVELS or numeric.isna().any():
        return values.astype(object)
    use_log = kind == "log_uniform_values" or (
        numeric.min() > 0 and numeric.max() / numeric.min() > 100
    )
    basis = np.log10(numeric) if use_log else numeric
    codes = pd.qcut(basis, BINS, duplicates="drop")
    fmt = (lambda x: f"{10**x:.3g}") if use_log else (lambda x: f"{x:.3g}")
    return codes.map(lambda iv: f"{fmt(iv.left)}–{fmt(iv.right)}").astype(object)


def grid_table(
    df: pd.DataFrame,
    rows: str,
    cols: str | None,
    metric: str,
    kinds: dict[str, str] | None = None,
    labels: dict[str, list[Any]] | None = None,
) -> pd.DataFrame:
    """Mean, std and count of ``metric`` for each level of ``rows`` (x ``cols``).

    Counts run over repeats and over every other parameter, like the seeds' grid tables.
    Returns a long frame: ``rows``, ``cols``, ``mean``, ``std``, ``count``, levels in
    :func:`level_key` order (numbers numerically, categories in the spec's order).
    """
    kinds = kinds or {}
    values = repeat_values(finished(df, metric), metric)
    if values.empty:
        return pd.DataFrame(columns=[p for p in (rows, cols) if p] + ["mean", "std", "count"])
    keys = [p for p in (rows, cols) if p]
    frame = pd.DataFrame({p: levels(values[col(p)], kinds.get(p, "")) for p in keys})
    frame["_value"] = values["_value"].to_numpy()
    out = frame.groupby(keys, sort=False, dropna=False)["_value"].agg(["mean", "std", "count"])
    out["std"] = out["std"].fillna(0.0)
    return _sorted_levels(out.reset_index(), keys, labels)


def _sorted_levels(
    frame: pd.DataFrame, keys: list[str], labels: dict[str, list[Any]] | None = None
) -> pd.DataFrame:
    labels = labels or {}

    def key(series: pd.Series) -> pd.Series:
        order = level_key(labels.get(str(series.name)))
        return pd.Series([order(v) for v in series], index=series.index)

    return frame.sort_values(keys, key=key).reset_index(drop=True)


_BIN = re.compile(r"^(-?[\d.eE+-]+)–")


def level_key(labels: list[Any] | None = None) -> Any:
    """A sort key for one parameter's levels: the report's one order for them everywhere.

    Numbers (and number-like text, and binned ranges ``a–b``) come first in numeric order,
    whatever their type (``32`` before ``128``, never as text); other values follow in the
    spec's order (``labels``), then as text; missing values last.
    """
    place = {str(v): i for i, v in enumerate(labels or [])}

    def key(value: Any) -> tuple:
        if value is None or (isinstance(value, float) and value != value):
            return (3, 0.0, "")
        number = _number(value)
        if number is not None:
            return (0, number, "")
        text = str(value)
        if text in place:
            return (1, float(place[text]), "")
        return (2, 0.0, text)

    return key


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    text = str(value).strip()
    bin_ = _BIN.match(text)
    try:
        return float(bin_.group(1) if bin_ else text)
    except ValueError:
        return None


def sorted_levels(values: Any, labels: list[Any] | None = None) -> list[Any]:
    """Distinct ``values`` in :func:`level_key` order."""
    return sorted(dict.fromkeys(values), key=level_key(labels))


def pivot(table: pd.DataFrame, rows: str, cols: str, value: str) -> pd.DataFrame:
    """One statistic of a two-parameter :func:`grid_table` as a rows x cols matrix."""
    wide = table.pivot(index=rows, columns=cols, values=value)
    return wide.reindex(
        index=list(dict.fromkeys(table[rows])), columns=list(dict.fromkeys(table[cols]))
    )


def cell_text(table: pd.DataFrame, digits: int = 4) -> pd.Series:
    """``mean ± std (n)`` for each row of a grid table."""
    return table.apply(
        lambda r: f"{r['mean']:.{digits}f} ± {r['std']:.{digits}f} ({int(r['count'])})", axis=1
    )


def pairs(params: list[str], df: pd.DataFrame) -> list[tuple[str, str]]:
    """Pairs of swept parameters that vary in the table (at most :data:`MAX_PAIRS`)."""
    varying = [p for p in params if col(p) in df.columns and df[col(p)].nunique(dropna=True) > 1]
    return list(itertools.combinations(varying, 2))[:MAX_PAIRS]


def default_threshold(df: pd.DataFrame, metric: str) -> float | None:
    """The median final metric of finished trials: about half of them reach it."""
    values = pd.to_numeric(finished(df, metric)[metric], errors="coerce").dropna()
    if values.empty:
        return None
    return float(values.median())


def epochs_to_threshold(
    hist: pd.DataFrame,
    df: pd.DataFrame,
    metric: str,
    threshold: float,
    maximize: bool,
    params: list[str],
) -> pd.DataFrame:
    """For each trial, the first epoch whose ``metric`` reached ``threshold`` (NaN: never)."""
    columns = ["trial_id", "state", *params, "epochs_to_threshold", "epochs"]
    if hist.empty or metric not in hist.columns or df.empty:
        return pd.DataFrame(columns=columns)
    curve = hist[["trial_id", "epoch", metric]].dropna()
    hit = curve[metric] >= threshold if maximize else curve[metric] <= threshold
    first = curve[hit].groupby("trial_id")["epoch"].min()
    out = df[
        ["trial_id", "state", "epochs", *(col(p) for p in params if col(p) in df.columns)]
    ].copy()
    out["epochs_to_threshold"] = out["trial_id"].map(first)
    out = out.rename(columns=lambda c: c.removeprefix(PARAM_PREFIX))
    out = out.sort_values(["epochs_to_threshold", "trial_id"], na_position="last")
    return out[[c for c in columns if c in out.columns]].reset_index(drop=True)


def problems(df: pd.DataFrame, params: list[str]) -> pd.DataFrame:
    """Trials that did not train to the end: failed, stopped early, diverged, unfinished."""
    if df.empty:
        return pd.DataFrame(columns=["trial_id", "state", "epochs", "error"])
    diverged = pd.to_numeric(df.get("diverged", pd.Series(0, index=df.index)), errors="coerce")
    complete = df["state"].map(TrialState.of) == TrialState.COMPLETE
    bad = ~complete | (diverged.fillna(0) > 0)
    out = df.loc[bad, ["trial_id", "state", "epochs", "error", *(col(p) for p in params)]].copy()
    out.loc[diverged[bad].fillna(0) > 0, "state"] = out["state"] + " (diverged)"
    order = {TrialState.FAIL: 0, TrialState.PRUNED: 1}  # then the rest

    def key(states: pd.Series) -> pd.Series:
        return states.str.split().str[0].map(lambda s: order.get(TrialState.of(s), 2))

    out = out.sort_values("state", key=key, kind="stable")
    return out.rename(columns=lambda c: c.removeprefix(PARAM_PREFIX)).reset_index(drop=True)


def missing_cells(df: pd.DataFrame, grid: dict[str, list[Any]]) -> pd.DataFrame:
    """Cells of a grid that no trial ran (an interrupted or capped grid): never silently lost.

    Rows in :func:`level_key` order of each parameter (numbers numerically, other values in
    the grid's order)."""
    if not grid:
        return pd.DataFrame()
    names = list(grid)
    cells = set(itertools.product(*(map(_norm, grid[n]) for n in names)))
    if not df.empty and all(col(n) in df.columns for n in names):
        ran = set(zip(*(df[col(n)].map(_norm) for n in names), strict=True))
        cells -= ran
    keys = [level_key(grid[n]) for n in names]
    rows = sorted(cells, key=lambda c: tuple(k(v) for k, v in zip(keys, c, strict=True)))
    return pd.DataFrame(rows, columns=names)


def _norm(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def state_counts(df: pd.DataFrame) -> dict[str, int]:
    counts = df["state"].value_counts().to_dict() if not df.empty else {}
    return {str(k): int(v) for k, v in counts.items()}
