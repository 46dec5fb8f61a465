"""Plotly figures of a study's summaries: frames in, ``go.Figure`` out (no I/O)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sweeper.report._summary import cell_text, col, finished, pivot

CURVE_PANELS = (("train_loss", "val_loss"), ("train_acc", "val_acc"))
HEIGHT = 420


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
) -> Any:
    """Parallel coordinates: one axis per swept parameter, then the metric (the colour).

    Categorical axes show their labels (values encoded 0..n-1 in the spec's order); a
    log-uniform parameter is drawn on a log10 axis labelled with its values.
    """
    go = _go()
    done = finished(df, metric)
    dims = [_dimension(done[col(p)], p, labels.get(p), kinds.get(p, "")) for p in params]
    values = pd.to_numeric(done[metric], errors="coerce")
    dims.append({"label": metric, "values": values.tolist()})
    line = {"color": values.tolist(), "colorscale": "Viridis", "showscale": True,
            "colorbar": {"title": {"text": metric}}}  # fmt: skip
    fig = go.Figure(go.Parcoords(line=line, dimensions=dims, labelangle=0))
    n = len(done)
    title = f"Parallel coordinates ({n} finished trial{'s' * (n != 1)})"
    return _layout(fig, title, height=460, top=110)  # room for the axis labels


def _dimension(values: pd.Series, name: str, labels: list[Any] | None, kind: str) -> dict:
    numeric = pd.to_numeric(values, errors="coerce")
    if labels is not None and (
        numeric.isna().any() or kind == "categorical" and not _all_numbers(labels)
    ):
        codes = {str(v): i for i, v in enumerate(labels)}
        return {
            "label": name,
            "values": [codes.get(str(v), np.nan) for v in values],
            "tickvals": list(range(len(labels))),
            "ticktext": [str(v) for v in labels],
            "range": [-0.25, len(labels) - 0.75] if len(labels) > 1 else [-1, 1],
        }
    if kind == "log_uniform_values" and (numeric > 0).all() and len(numeric):
        logs = np.log10(numeric)
        ticks = np.arange(np.floor(logs.min()), np.ceil(logs.max()) + 1)
        return {"label": f"{name} (log)", "values": logs.tolist(), "tickvals": ticks.tolist(),
                "ticktext": [f"{10**t:g}" for t in ticks]}  # fmt: skip
    dim: dict[str, Any] = {"label": name, "values": numeric.tolist()}
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

    go = _go()
    keys = [pair for pair in CURVE_PANELS if any(m in hist.columns for m in pair)]
    fig = make_subplots(rows=1, cols=len(keys), subplot_titles=[" / ".join(p) for p in keys])
    palette = qualitative.Plotly
    for i, (trial_id, rows) in enumerate(hist.groupby("trial_id", sort=False)):
        color = palette[i % len(palette)]
        label = names.get(trial_id, trial_id)
        for c, pair in enumerate(keys, start=1):
            for key, dash in zip(pair, ("dot", "solid"), strict=True):
                if key not in rows or rows[key].isna().all():
                    continue
                fig.add_trace(
                    go.Scatter(x=rows["epoch"], y=rows[key], mode="lines+markers",
                               line={"color": color, "dash": dash}, marker={"size": 4},
                               name=label, legendgroup=trial_id,
                               showlegend=(c == 1 and dash == "solid"),
                               hovertemplate=f"{label}<br>{key} %{{y:.4f}} @ epoch %{{x}}<extra></extra>"),
                    row=1, col=c,
                )  # fmt: skip
    whole = {"dtick": 1} if hist["epoch"].max() <= 20 else {}  # integer epochs
    for c in range(1, len(keys) + 1):
        fig.update_xaxes(title_text="epoch", row=1, col=c, **whole)
    fig.update_layout(legend={"font": {"size": 10}})
    return _layout(fig, "Learning curves (dotted: train, solid: validation)", height=460)


def metric_vs_params(df: pd.DataFrame, metric: str, color_by: str | None) -> Any:
    """Final metric (and test accuracy) against the model's parameter count."""
    go = _go()
    done = finished(df, metric)
    fig = go.Figure()
    groups = done.groupby(col(color_by), sort=False) if color_by else [("", done)]
    for level, rows in groups:
        hover = rows["trial_id"].astype(str)
        name = f"{color_by}={level}" if color_by else metric
        fig.add_trace(go.Scatter(x=rows["params"], y=rows[metric], mode="markers", name=name,
                                 text=hover, marker={"size": 10},
                                 hovertemplate="trial %{text}<br>params %{x:,}<br>"
                                 f"{metric} %{{y:.4f}}<extra></extra>"))  # fmt: skip
    counts = pd.to_numeric(done["params"], errors="coerce")
    if len(counts) and counts.min() > 0 and counts.max() / counts.min() > 10:
        fig.update_xaxes(type="log")
    fig.update_xaxes(title_text="parameters")
    fig.update_yaxes(title_text=metric)
    return _layout(fig, f"{metric} against parameter count")


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
