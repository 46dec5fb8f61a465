"""Plotly figures of a study's summaries: frames in, ``go.Figure`` out (no I/O)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sweeper.report._summary import cell_text, col, finished, pivot, sorted_levels

CURVE_PANELS = (("train_loss", "val_loss"), ("train_acc", "val_acc"))
HEIGHT = 420
# Up to this many trials a figure draws each one; a larger study's figures draw the best
# ``top`` over a summary of the rest (a band, a histogram, grey lines, a sample of points).
ALL_TRIALS = 50
# At most this many grey lines (parallel coordinates) and points (scatter), sampled.
FAINT_LINES = 2000
MAX_POINTS = 2000
_GREY = "rgba(190,190,190,0.35)"


def _go() -> Any:
    import plotly.graph_objects as go

    return go


def _layout(fig: Any, title: str, height: int = HEIGHT, top: int = 60) -> Any:
    fig.update_layout(
        title={"text": title, "x": 0.01},
        height=height,
        margin={"l": 60, "r": 30, "t": top, "b": 50},
        template="plotly_white",
    )
    return fig


def parallel(
    df: pd.DataFrame,
    params: list[str],
    metric: str,
    labels: dict[str, list[Any]],
    kinds: dict[str, str],
    top_ids: list[str] | None = None,
) -> Any:
    """Parallel coordinates: one axis per swept parameter, then the metric (the colour).

    Categorical axes show their labels (values encoded 0..n-1 in the spec's order); a
    log-uniform parameter is drawn on a log10 axis labelled with its values. Above
    :data:`ALL_TRIALS` results, the ``top_ids`` are coloured by the metric and drawn last
    (on top) over the others in grey (a sample of :data:`FAINT_LINES` of them).
    """
    go = _go()
    done = finished(df, metric)
    n = len(done)
    values = pd.to_numeric(done[metric], errors="coerce")
    colour: Any = values.to_numpy(dtype=float)
    line: dict[str, Any] = {"colorscale": "Viridis", "showscale": True,
                            "colorbar": {"title": {"text": metric}}}  # fmt: skip
    title = f"Parallel coordinates ({n} finished trial{'s' * (n != 1)})"
    if n > ALL_TRIALS and top_ids:
        done, values, colour, line = _highlight(done, values, top_ids, line)
        title = f"Parallel coordinates: the best {len(top_ids)} of {n:,} finished trials"
    dims = [_dimension(done[col(p)], p, labels.get(p), kinds.get(p, "")) for p in params]
    dims.append({"label": metric, "values": values.to_numpy(dtype=float)})
    line["color"] = colour
    fig = go.Figure(go.Parcoords(line=line, dimensions=dims, labelangle=0))
    return _layout(fig, title, height=460, top=110)  # room for the axis labels


def _highlight(
    done: pd.DataFrame, values: pd.Series, top_ids: list[str], line: dict[str, Any]
) -> tuple[pd.DataFrame, pd.Series, Any, dict[str, Any]]:
    """The rest (a sample) first in grey, then the best in colour: parcoords draws in order,
    and a colour scale whose bottom is grey paints the rest below the best's values."""
    is_top = done["trial_id"].astype(str).isin(top_ids).to_numpy()
    rest = np.flatnonzero(~is_top)
    if len(rest) > FAINT_LINES:
        rest = np.sort(np.random.default_rng(0).choice(rest, FAINT_LINES, replace=False))
    order = np.concatenate([rest, np.flatnonzero(is_top)])
    done, values = done.iloc[order], values.iloc[order]
    best = values[is_top[order]]
    lo, hi = float(best.min()), float(best.max())
    span = (hi - lo) or 1.0
    floor = lo - span / 10  # the rest's colour value: below the scale's coloured part
    colour = np.where(is_top[order], values.to_numpy(dtype=float), floor)
    from plotly.colors import sequential

    viridis = sequential.Viridis
    last = len(viridis) - 1  # the scale must end at exactly 1 (plotly.js drops it else)
    steps = [(1.0 if i == last else 0.1 + 0.9 * i / last, c) for i, c in enumerate(viridis)]
    line = {**line, "colorscale": [(0.0, _GREY), (0.0999, _GREY), *steps],
            "cmin": floor, "cmax": hi}  # fmt: skip
    return done, values, colour, line


def _dimension(values: pd.Series, name: str, labels: list[Any] | None, kind: str) -> dict:
    numeric = pd.to_numeric(values, errors="coerce")
    if labels is not None and (
        numeric.isna().any() or kind == "categorical" and not _all_numbers(labels)
    ):
        codes = {str(v): i for i, v in enumerate(labels)}
        return {
            "label": name,
            "values": np.array([codes.get(str(v), np.nan) for v in values], dtype=float),
            "tickvals": list(range(len(labels))),
            "ticktext": [str(v) for v in labels],
            "range": [-0.25, len(labels) - 0.75] if len(labels) > 1 else [-1, 1],
        }
    if kind == "log_uniform_values" and (numeric > 0).all() and len(numeric):
        logs = np.log10(numeric)
        ticks = np.arange(np.floor(logs.min()), np.ceil(logs.max()) + 1)
        return {"label": f"{name} (log)", "values": logs.to_numpy(dtype=float),
                "tickvals": ticks.tolist(),
                "ticktext": [f"{10**t:g}" for t in ticks]}  # fmt: skip
    dim: dict[str, Any] = {"label": name, "values": numeric.to_numpy(dtype=float)}
    distinct = sorted(numeric.dropna().unique())
    if 1 < len(distinct) <= 12:
        dim["tickvals"] = distinct
        dim["ticktext"] = [f"{v:g}" for v in distinct]
    return dim


def _all_numbers(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def importance_bar(values: pd.Series, note: str) -> Any:
    go = _go()
    ordered = values.sort_values()
    fig = go.Figure(go.Bar(x=ordered.to_numpy(), y=ordered.index.tolist(), orientation="h",
                           text=[f"{v:.2f}" for v in ordered], textposition="auto"))  # fmt: skip
    fig.update_xaxes(title_text="importance", range=[0, 1])
    return _layout(fig, f"Parameter importance: {note}", height=max(220, 80 + 40 * len(values)))


def heatmap(table: pd.DataFrame, rows: str, cols: str, metric: str) -> Any:
    """A rows x cols heatmap of the mean metric, each cell labelled ``mean ± std (n)``."""
    go = _go()
    means = pivot(table, rows, cols, "mean")
    text = pivot(table.assign(text=cell_text(table, 3)), rows, cols, "text")
    fig = go.Figure(
        go.Heatmap(
            z=means.to_numpy(dtype=float),
            x=[str(c) for c in means.columns],
            y=[str(i) for i in means.index],
            text=text.fillna("").to_numpy(),
            texttemplate="%{text}",
            colorscale="Viridis",
            colorbar={"title": {"text": f"mean {metric}"}},
            hovertemplate=f"{rows}=%{{y}}<br>{cols}=%{{x}}<br>%{{text}}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text=cols, type="category")
    fig.update_yaxes(title_text=rows, type="category", autorange="reversed")  # table order
    return _layout(fig, f"{metric} by {rows} × {cols} (mean ± std (n))",
                   height=max(300, 120 + 50 * len(means)))  # fmt: skip


def one_way(table: pd.DataFrame, param: str, metric: str) -> Any:
    """Mean ± std of the metric for each level of one parameter."""
    go = _go()
    fig = go.Figure(go.Bar(x=[str(v) for v in table[param]], y=table["mean"],
                           error_y={"type": "data", "array": table["std"].tolist()},
                           text=cell_text(table, 3).tolist(), textposition="outside"))  # fmt: skip
    fig.update_xaxes(title_text=param, type="category")
    fig.update_yaxes(title_text=f"mean {metric}")
    return _layout(fig, f"{metric} by {param} (mean ± std (n))")


def curves(hist: pd.DataFrame, names: dict[str, str]) -> Any:
    """Learning curves per trial: loss (train, val) and accuracy (train, val) per epoch."""
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    keys = [pair for pair in CURVE_PANELS if any(m in hist.columns for m in pair)]
    fig = make_subplots(rows=1, cols=len(keys), subplot_titles=[" / ".join(p) for p in keys])
    palette = qualitative.Plotly
    for i, (trial_id, rows) in enumerate(hist.groupby("trial_id", sort=False)):
        color = palette[i % len(palette)]
        label = names.get(trial_id, trial_id)
        _trial_curves(fig, rows, keys, trial_id, label, color)
    whole = {"dtick": 1} if hist["epoch"].max() <= 20 else {}  # integer epochs
    for c in range(1, len(keys) + 1):
        fig.update_xaxes(title_text="epoch", row=1, col=c, **whole)
    fig.update_layout(legend={"font": {"size": 10}})
    return _layout(fig, "Learning curves (dotted: train, solid: validation)", height=460)


def metric_vs_params(
    df: pd.DataFrame,
    metric: str,
    color_by: str | None,
    labels: list[Any] | None = None,
    top_ids: list[str] | None = None,
) -> Any:
    """Final metric (and test accuracy) against the model's parameter count, one colour
    per level of ``color_by`` (in :func:`level_key` order). Above :data:`MAX_POINTS`
    results, a random sample of them plus the ``top_ids``."""
    go = _go()
    done = finished(df, metric)
    n = len(done)
    title = f"{metric} against parameter count"
    if n > MAX_POINTS:
        keep = done["trial_id"].astype(str).isin(top_ids or []).to_numpy(copy=True)
        keep[np.random.default_rng(0).choice(n, MAX_POINTS, replace=False)] = True
        done = done[keep]
        title += (
            f" (a random {len(done):,} of {n:,} trials, the best {len(top_ids or [])} among them)"
        )
    fig = go.Figure()
    groups: list[tuple[Any, pd.DataFrame]] = [("", done)]
    if color_by:
        by = done[col(color_by)]
        groups = [(v, done[by == v]) for v in sorted_levels(by.dropna(), labels)]
    for level, rows in groups:
        hover = rows["trial_id"].astype(str)
        name = f"{color_by}={level}" if color_by else metric
        fig.add_trace(go.Scatter(x=rows["params"], y=rows[metric], mode="markers", name=name,
                                 text=hover, marker={"size": 10 if n <= ALL_TRIALS else 5},
                                 hovertemplate="trial %{text}<br>params %{x:,}<br>"
                                 f"{metric} %{{y:.4f}}<extra></extra>"))  # fmt: skip
    counts = pd.to_numeric(done["params"], errors="coerce")
    if len(counts) and counts.min() > 0 and counts.max() / counts.min() > 10:
        fig.update_xaxes(type="log")
    fig.update_xaxes(title_text="parameters")
    fig.update_yaxes(title_text=metric)
    return _layout(fig, title)


def pareto(results: pd.DataFrame, front: list[str], metrics: Any) -> Any:
    """The first two objectives of every result (x: the second, y: the first), the Pareto
    front's trials highlighted and joined in the order of the second objective."""
    go = _go()
    y_name, x_name = metrics[0].name, metrics[1].name
    on = results["trial_id"].astype(str).isin(front)
    fig = go.Figure()
    for rows, name, color, size in (
        (results[~on], "dominated", "#c7c7c7", 8),
        (results[on].sort_values(x_name), "Pareto front", "#d62728", 11),
    ):
        fig.add_trace(go.Scatter(x=rows[x_name], y=rows[y_name], name=name, text=rows["trial_id"],
                                 mode="markers+lines" if name != "dominated" else "markers",
                                 line={"shape": "hv", "color": color},
                                 marker={"size": size, "color": color},
                                 hovertemplate=f"trial %{{text}}<br>{x_name} %{{x:.4g}}<br>"
                                 f"{y_name} %{{y:.4f}}<extra></extra>"))  # fmt: skip
    x = pd.to_numeric(results[x_name], errors="coerce")
    if len(x) and x.min() > 0 and x.max() / x.min() > 10:
        fig.update_xaxes(type="log")
    fig.update_xaxes(title_text=f"{x_name} ({metrics[1].goal})")
    fig.update_yaxes(title_text=f"{y_name} ({metrics[0].goal})")
    return _layout(fig, f"Pareto front: {y_name} against {x_name}")


def threshold_bars(
    table: pd.DataFrame, names: dict[str, str], metric: str, threshold: float, maximize: bool
) -> Any:
    """Epochs each trial needed to reach the threshold (grey: never reached)."""
    go = _go()
    reached = table["epochs_to_threshold"].notna()
    y = [names.get(t, t) for t in table["trial_id"]]
    x = table["epochs_to_threshold"].where(reached, table["epochs"]).fillna(0)
    colors = np.where(reached, "#1f77b4", "#c7c7c7").tolist()
    text = [f"{int(v)}" if ok else "not reached" for v, ok in zip(x, reached, strict=True)]
    fig = go.Figure(go.Bar(x=x, y=y, orientation="h", marker={"color": colors}, text=text,
                           textposition="auto"))  # fmt: skip
    fig.update_xaxes(title_text="epochs", **({"dtick": 1} if x.max() <= 20 else {}))
    fig.update_yaxes(autorange="reversed", type="category")
    return _layout(fig, f"Epochs to reach {metric} {'≥' if maximize else '≤'} {threshold:g}",
                   height=max(260, 90 + 24 * len(table)))  # fmt: skip


def curves_summary(hist: pd.DataFrame, names: dict[str, str], top_ids: list[str]) -> Any:
    """A large study's learning curves: for each metric, a band over every trial (the
    10th-90th percentiles and the median per epoch), and the ``top_ids``' own curves."""
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    go = _go()
    keys = [pair for pair in CURVE_PANELS if any(m in hist.columns for m in pair)]
    fig = make_subplots(rows=1, cols=len(keys), subplot_titles=[" / ".join(p) for p in keys])
    by_epoch = hist.groupby("epoch")
    for c, pair in enumerate(keys, start=1):
        for key, shade in zip(
            pair, ("rgba(255,127,14,0.15)", "rgba(31,119,180,0.18)"), strict=True
        ):
            if key not in hist.columns or hist[key].isna().all():
                continue
            q = by_epoch[key].quantile([0.1, 0.5, 0.9]).unstack()
            x = q.index.to_numpy()
            band = dict(legendgroup=f"band-{key}", showlegend=False, hoverinfo="skip")
            fig.add_trace(go.Scatter(x=x, y=q[0.9].to_numpy(), mode="lines", line={"width": 0},
                                     **band), row=1, col=c)  # fmt: skip
            fig.add_trace(go.Scatter(x=x, y=q[0.1].to_numpy(), mode="lines", line={"width": 0},
                                     fill="tonexty", fillcolor=shade, **band), row=1, col=c)  # fmt: skip
            fig.add_trace(go.Scatter(x=x, y=q[0.5].to_numpy(), mode="lines",
                                     line={"color": "#555", "dash": "dash", "width": 1},
                                     name=f"all trials: median {key}", legendgroup=f"band-{key}",
                                     hovertemplate=f"median {key} %{{y:.4f}} @ epoch %{{x}}<extra></extra>"),
                          row=1, col=c)  # fmt: skip
    palette = qualitative.Plotly
    top = hist[hist["trial_id"].isin(top_ids)]
    rank = {t: i for i, t in enumerate(top_ids)}
    for trial_id, rows in sorted(top.groupby("trial_id"), key=lambda g: rank[g[0]]):
        color = palette[rank[trial_id] % len(palette)]
        label = names.get(trial_id, trial_id)
        _trial_curves(fig, rows, keys, trial_id, label, color)
    whole = {"dtick": 1} if hist["epoch"].max() <= 20 else {}
    for c in range(1, len(keys) + 1):
        fig.update_xaxes(title_text="epoch", row=1, col=c, **whole)
    fig.update_layout(legend={"font": {"size": 10}})
    n = hist["trial_id"].nunique()
    return _layout(fig, f"Learning curves: the best {len(top_ids)} of {n:,} trials over the "
                   "band of all (dotted: train, solid: validation)", height=460)  # fmt: skip


def threshold_histogram(table: pd.DataFrame, metric: str, threshold: float, maximize: bool) -> Any:
    """How many trials first reached the threshold at each epoch (grey: never reached)."""
    go = _go()
    reached = table["epochs_to_threshold"].dropna().astype(int)
    counts = reached.value_counts().sort_index()
    never = int(table["epochs_to_threshold"].isna().sum())
    x = [str(e) for e in counts.index] + (["not reached"] if never else [])
    y = counts.tolist() + ([never] if never else [])
    colors = ["#1f77b4"] * len(counts) + (["#c7c7c7"] if never else [])
    fig = go.Figure(go.Bar(x=x, y=y, marker={"color": colors}, text=[f"{v:,}" for v in y],
                           textposition="auto"))  # fmt: skip
    fig.update_xaxes(title_text="first epoch at the threshold", type="category")
    fig.update_yaxes(title_text="trials")
    sign = "≥" if maximize else "≤"
    return _layout(fig, f"Epochs to reach {metric} {sign} {threshold:g}: {len(table):,} trials")


def _trial_curves(fig: Any, rows: Any, keys: Any, trial_id: str, label: str, color: str) -> None:
    """One trial's train (dotted) and validation (solid) curves, a subplot per metric pair."""
    go = _go()
    for c, pair in enumerate(keys, start=1):
        for key, dash in zip(pair, ("dot", "solid"), strict=True):
            if key not in rows or rows[key].isna().all():
                continue
            fig.add_trace(
                go.Scatter(x=rows["epoch"].to_numpy(), y=rows[key].to_numpy(),
                           mode="lines+markers", line={"color": color, "dash": dash},
                           marker={"size": 4}, name=label, legendgroup=trial_id,
                           showlegend=(c == 1 and dash == "solid"),
                           hovertemplate=f"{label}<br>{key} %{{y:.4f}} @ epoch %{{x}}<extra></extra>"),
                row=1, col=c,
            )  # fmt: skip
