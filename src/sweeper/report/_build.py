"""The report as data: sections of notes, figures and tables, built from the frames.

:func:`build` is pure (frames and the importance result in, :class:`Section` list out); the
HTML, Markdown and CSV writers only lay the sections out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sweeper.report import _figures as figs
from sweeper.report import _summary as S
from sweeper.report._collect import ReportContext


@dataclass
class Table:
    """A table: ``frame`` holds the numbers (CSV), ``display`` what people read (HTML, md)."""

    name: str
    title: str
    frame: pd.DataFrame
    display: pd.DataFrame | None = None

    @property
    def shown(self) -> pd.DataFrame:
        return self.frame if self.display is None else self.display


@dataclass
class Section:
    key: str
    title: str
    notes: list[str] = field(default_factory=list)
    figures: list[Any] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


def build(
    df: pd.DataFrame,
    hist: pd.DataFrame,
    ctx: ReportContext,
    importance: tuple[pd.Series | None, str],
    *,
    top: int = 10,
    threshold: float | None = None,
    figures: bool = True,
) -> list[Section]:
    """Every section of a study's report; ``figures=False`` skips plotly (md and csv).

    Linear in the number of trials, and bounded in what it draws: a large study's figures
    show the ``top`` trials over a summary of the rest (see each section's note).
    """
    best = S.best_trials(df, ctx.params, ctx.metric, ctx.maximize, k=top)
    top_ids = [str(t) for t in best["trial_id"]]
    names = _trial_names(df, ctx.params, top_ids if len(df) > figs.ALL_TRIALS else None)
    return [
        _overview(df, ctx, best),
        _best(best, ctx, top),
        *([_pareto(df, ctx, figures)] if ctx.objectives.multi else []),
        _parallel(df, ctx, top_ids, figures),
        _importance(importance, figures),
        _grid(df, ctx, figures),
        _curves(hist, names, top_ids, figures),
        _vs_params(df, ctx, top_ids, figures),
        _threshold(df, hist, ctx, names, threshold, figures),
        _problems(df, ctx),
    ]


def _trial_names(
    df: pd.DataFrame, params: list[str], ids: list[str] | None = None
) -> dict[str, str]:
    """``trial_id (p=v, ...)``: how plots name a trial (only ``ids``' when given)."""
    rows = df if ids is None else df[df["trial_id"].astype(str).isin(ids)]
    out = {}
    for row in rows.to_dict(orient="records"):
        values = ", ".join(f"{p}={row.get(S.col(p))}" for p in params)
        out[str(row["trial_id"])] = (
            f"{row['trial_id']} ({values})" if values else str(row["trial_id"])
        )
    return out


def _overview(df: pd.DataFrame, ctx: ReportContext, best: pd.DataFrame) -> Section:
    spec = ctx.spec
    counts = S.state_counts(df)
    done = S.finished(df, ctx.metric)
    best_txt = (
        f"{best.loc[0, ctx.metric]:.4f} (trial {best.loc[0, 'trial_id']})"
        if not best.empty
        else "-"
    )
    data = spec.data
    facts = {
        "study": ctx.name,
        "state": ctx.state,
        "folder": str(ctx.path),
        "search": f"{spec.sampler_name} sampler (method {spec.method}) over "
        f"{', '.join(ctx.params) or 'no swept parameters'}",
        "trials": _trials_fact(df, ctx, counts),
        "metric": f"{ctx.metric} ({ctx.goal}); {len(done)} finished trials",
        f"best {ctx.metric}": best_txt,
        "model": _model_fact(ctx),
        "data": f"{data.name} (train/val/test {_sizes_fact(ctx)})",
        "training": _training_fact(ctx),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if ctx.objectives.multi:  # several objectives: no one best, a front
        front = S.pareto_front(df, ctx.params, ctx.objectives)
        facts["metric"] = f"{ctx.objectives.describe()}; {len(done)} finished trials"
        facts[f"best {ctx.metric}"] = f"{best_txt} (Pareto front: {len(front)} trials)"
    frame = pd.DataFrame({"": list(facts), "value": list(facts.values())})
    return Section("overview", f"Study {ctx.name}", tables=[Table("overview", "Overview", frame)])


def _trials_fact(df: pd.DataFrame, ctx: ReportContext, counts: dict[str, int]) -> str:
    """``6 of 6 planned (a grid of 96 cells, capped)``: a capped grid says so."""
    from sweeper.search.space import space_size

    planned = ctx.meta.get("n_trials", "?")
    text = f"{len(df)} of {planned} planned"
    cells = space_size(ctx.spec) if ctx.spec.sampler_name == "grid" else None
    if cells is not None and isinstance(planned, int) and planned < cells:
        text += f" (the grid has {cells} cells; capped at {planned})"
    return text + ": " + ", ".join(f"{n} {s.lower()}" for s, n in counts.items())


def _sizes_fact(ctx: ReportContext) -> str:
    """The split sizes the run loaded (study.json), else the spec's (``all``: not cut)."""
    ran = ctx.meta.get("data_sizes") or {}
    data = ctx.spec.data
    spec = {"train": data.train_size, "val": data.val_size, "test": data.test_size}
    return "/".join(str(ran.get(k) or spec[k] or "all") for k in ("train", "val", "test"))


def _model_fact(ctx: ReportContext) -> str:
    spec = ctx.spec
    if not spec.model:
        return spec.runs
    args = {k: ("swept" if k in ctx.params else v) for k, v in dict(spec.model.args).items()}
    model = "swept" if "model" in ctx.params else spec.model.label
    return f"{model} {args or ''}".strip()


def _training_fact(ctx: ReportContext) -> str:
    """``2 epochs, batch swept, optimizer swept, ...``: a swept key never shows one value."""
    train = ctx.spec.train

    def value(key: str, text: str) -> str:
        return f"{key} swept" if key in ctx.params else text

    return ", ".join([
        value("epochs", f"{train.epochs} epochs"),
        value("batch_size", f"batch {train.batch_size}"),
        value("optimizer", str(train.optimizer)),
        f"{train.repeats} repeat(s)",
        value("seed", f"seed {train.seed}"),
    ])  # fmt: skip


def _best(table: pd.DataFrame, ctx: ReportContext, top: int) -> Section:
    notes = [] if not table.empty else ["No trial finished with a finite metric yet."]
    title = f"Best {min(top, len(table))} trials by {ctx.metric}"
    return Section("best", "Best trials", notes, tables=[Table("best_trials", title, table)])


def _pareto(df: pd.DataFrame, ctx: ReportContext, figures: bool) -> Section:
    """A multi-objective study's Pareto front: its table, and the first two objectives'
    scatter with the front highlighted."""
    objectives = ctx.objectives
    sec = Section("pareto", f"Pareto front of {objectives.describe()}")
    table = S.pareto_front(df, ctx.params, objectives)
    if table.empty:
        sec.notes.append("No trial finished with every objective finite yet.")
        return sec
    sec.notes.append(
        f"{len(table)} trials no other trial dominates (as good in every objective and "
        f"better in one), ordered by {objectives.first.name}."
    )
    if figures:
        results = df[[objectives.is_result(r) for r in df.to_dict(orient="records")]]
        sec.figures.append(figs.pareto(results, list(table["trial_id"]), objectives.metrics))
    sec.tables.append(Table("pareto_front", "Pareto front", table))
    return sec


def _parallel(df: pd.DataFrame, ctx: ReportContext, top_ids: list[str], figures: bool) -> Section:
    sec = Section("parallel", "Parallel coordinates")
    done = len(S.finished(df, ctx.metric))
    if not done or not ctx.params:
        sec.notes.append("Needs finished trials and at least one swept parameter.")
        return sec
    if done > figs.ALL_TRIALS:
        shown = min(done, figs.FAINT_LINES + len(top_ids))
        sec.notes.append(
            f"The best {len(top_ids)} trials in colour (by {ctx.metric}) over "
            + (f"the other {done - len(top_ids):,}" if shown == done else
               f"a random {shown - len(top_ids):,} of the other {done - len(top_ids):,}")
            + " in grey. Drag along an axis to keep only the lines that cross that range."
        )  # fmt: skip
    if figures:
        sec.figures.append(
            figs.parallel(df, ctx.params, ctx.metric, ctx.labels, ctx.kinds, top_ids)
        )
    return sec


def _importance(importance: tuple[pd.Series | None, str], figures: bool) -> Section:
    values, note = importance
    sec = Section("importance", "Parameter importance", [note])
    if values is not None:
        if figures:
            sec.figures.append(figs.importance_bar(values, "fANOVA"))
        frame = values.rename_axis("parameter").reset_index()
        sec.tables.append(Table("importance", "fANOVA importance", frame))
    return sec


def _grid(df: pd.DataFrame, ctx: ReportContext, figures: bool) -> Section:
    sec = Section("grid", "Grid tables", [
        f"Mean ± std (count) of {ctx.metric} over repeats and over the other parameters, "
        "finished trials only; continuous parameters are binned."
    ])  # fmt: skip
    pairs = S.pairs(ctx.params, df)
    singles = [p for p in ctx.params if S.col(p) in df.columns] if not pairs else []
    for a, b in pairs:
        table = S.grid_table(df, a, b, ctx.metric, ctx.kinds, ctx.labels)
        if table.empty:
            continue
        if figures:
            sec.figures.append(figs.heatmap(table, a, b, ctx.metric))
        shown = S.pivot(table.assign(text=S.cell_text(table)), a, b, "text").fillna("")
        shown = shown.rename_axis(index=f"{a} \\ {b}", columns=None).reset_index()
        sec.tables.append(Table(f"grid_{a}__{b}", f"{ctx.metric} by {a} × {b}", table, shown))
    for p in singles:
        table = S.grid_table(df, p, None, ctx.metric, ctx.kinds, ctx.labels)
        if table.empty:
            continue
        if figures:
            sec.figures.append(figs.one_way(table, p, ctx.metric))
        shown = table[[p]].assign(**{ctx.metric: S.cell_text(table)})
        sec.tables.append(Table(f"grid_{p}", f"{ctx.metric} by {p}", table, shown))
    if not ctx.params:
        sec.notes.append("No swept parameters to tabulate.")
    elif not sec.tables:
        sec.notes.append("No finished trials to tabulate yet.")
    return sec


def _curves(
    hist: pd.DataFrame, names: dict[str, str], top_ids: list[str], figures: bool
) -> Section:
    sec = Section("curves", "Learning curves")
    has = [k for pair in figs.CURVE_PANELS for k in pair if k in hist.columns]
    if hist.empty or not has:
        sec.notes.append("No per-epoch history recorded.")
        return sec
    many = hist["trial_id"].nunique() > figs.ALL_TRIALS
    if many:
        sec.notes.append(
            f"The best {len(top_ids)} trials' curves over a band for all "
            f"{hist['trial_id'].nunique():,} trials: their median per epoch (dashed) and "
            "10th to 90th percentiles (shaded)."
        )
    if figures:
        sec.figures.append(
            figs.curves_summary(hist, names, top_ids) if many else figs.curves(hist, names)
        )
    return sec


def _vs_params(df: pd.DataFrame, ctx: ReportContext, top_ids: list[str], figures: bool) -> Section:
    sec = Section("params", f"{ctx.metric} against parameter count")
    if "params" not in df.columns or S.finished(df, ctx.metric).empty:
        sec.notes.append("Needs finished trials that report their parameter count.")
        return sec
    categorical = [p for p in ctx.params if p in ctx.labels]
    if figures:
        by = categorical[0] if categorical else None
        sec.figures.append(
            figs.metric_vs_params(df, ctx.metric, by, ctx.labels.get(by) if by else None, top_ids)
        )
    return sec


def _threshold(
    df: pd.DataFrame,
    hist: pd.DataFrame,
    ctx: ReportContext,
    names: dict[str, str],
    threshold: float | None,
    figures: bool,
) -> Section:
    sec = Section("threshold", "Epochs to reach a threshold")
    if threshold is None:
        threshold = S.default_threshold(df, ctx.metric)
        if threshold is not None:
            sec.notes.append(
                f"Threshold {threshold:g}: the median final {ctx.metric} of finished trials "
                "(choose another with --threshold)."
            )
    if threshold is None:
        sec.notes.append("No finished trials yet.")
        return sec
    table = S.epochs_to_threshold(hist, df, ctx.metric, threshold, ctx.maximize, ctx.params)
    if table.empty:
        sec.notes.append("No per-epoch history recorded.")
        return sec
    if len(table) > figs.ALL_TRIALS:
        sec.notes.append(
            f"How many of the {len(table):,} trials first reached it at each epoch; the table "
            "lists the fastest first."
        )
    if figures and len(table) > figs.ALL_TRIALS:
        sec.figures.append(figs.threshold_histogram(table, ctx.metric, threshold, ctx.maximize))
    elif figures:
        sec.figures.append(figs.threshold_bars(table, names, ctx.metric, threshold, ctx.maximize))
    shown = table.assign(
        epochs_to_threshold=table["epochs_to_threshold"].map(
            lambda v: "not reached" if pd.isna(v) else str(int(v))
        )
    )
    title = f"Epochs to reach {ctx.metric} {'≥' if ctx.maximize else '≤'} {threshold:g}"
    sec.tables.append(Table("epochs_to_threshold", title, table, shown))
    return sec


def _problems(df: pd.DataFrame, ctx: ReportContext) -> Section:
    from sweeper.search.space import grid

    sec = Section("problems", "Failed, pruned and missing trials")
    table = S.problems(df, ctx.params)
    if table.empty:
        sec.notes.append("Every trial trained to the end.")
    else:
        sec.tables.append(Table("problems", "Trials that did not train to the end", table))
    if ctx.spec.sampler_name == "grid":
        missing = S.missing_cells(df, grid(ctx.spec))
        if not missing.empty:
            sec.tables.append(Table("missing_cells", "Grid cells no trial ran", missing))
            sec.notes.append(
                f"{len(missing)} grid cell(s) never ran (interrupted or capped with --max-trials)."
            )
    return sec
