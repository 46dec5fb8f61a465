"""``sweeper status``: a study's trial table, its best trial so far and its state."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sweeper.cli._console import console, fmt


def cmd_status(args: argparse.Namespace) -> int:
    """Show a study's trial table and its best trial so far."""
    from sweeper.store import Study

    study = Study.open(args.study, args.out)
    spec = study.spec()
    if args.json:
        df = _summary_frame(study, spec)
        state = state_word(study)
        resumable = state in ("interrupted", "created")
        payload = {
            "name": spec.name,
            "state": state,
            "resume": f"sweeper resume {study.path}" if resumable else None,
            "path": str(study.path),
            "metric": {"name": spec.metric.name, "goal": spec.metric.goal},
            "trials": json.loads(df.to_json(orient="records")) if not df.empty else [],
        }
        print(json.dumps(payload, indent=2))
        return 0
    print_summary(study, spec)
    return 0


def _summary_frame(study: Any, spec: Any) -> Any:
    from sweeper.store import PARAM_PREFIX

    df = study.trials()
    if df.empty:
        return df
    metric = spec.metric.name
    cols = ["trial_id", "state", "epochs", "wall_s"]
    cols += [c for c in df.columns if c.startswith(PARAM_PREFIX)]
    cols += [
        c for c in (metric, f"best_{metric}", "val_acc", "test_acc", "params") if c in df.columns
    ]
    if "error" in df.columns and df["error"].fillna("").astype(str).str.len().gt(0).any():
        cols.append("error")
    cols = list(dict.fromkeys(cols))
    out = df[cols].copy()
    # Show params by their names, unless one collides with a column (a swept `epochs`).
    out.columns = [
        c.removeprefix(PARAM_PREFIX) if c.removeprefix(PARAM_PREFIX) not in cols else c
        for c in cols
    ]
    if metric in out.columns:
        out = out.sort_values(metric, ascending=spec.metric.goal == "minimize", na_position="last")
    return out


def print_summary(study: Any, spec: Any) -> None:
    """Print the trial table and the best trial's line (also the end of ``run``)."""
    from rich.table import Table

    df = _summary_frame(study, spec)
    out = console()
    if df.empty:
        out.print(f"study {spec.name} ({state_text(study)}): no trials yet")
        return
    table = Table(title=f"study {spec.name} ({state_text(study)})", title_justify="left")
    for col in df.columns:
        table.add_column(str(col), justify="right" if df[col].dtype.kind in "if" else "left")
    for _, row in df.iterrows():
        table.add_row(*[fmt(v) for v in row])
    out.print(table)
    metric = spec.metric.name
    if metric in df.columns and df[metric].notna().any():
        best = df.iloc[0]
        out.print(f"best {metric}: {best[metric]:.4f} (trial {best['trial_id']})")


def state_word(study: Any) -> str:
    """The study's state; a 'running' study whose driver is gone is 'interrupted'."""
    state = study.meta().get("state", "?")
    return "interrupted" if state == "running" and not study.driver_alive() else state


def state_text(study: Any) -> str:
    """The study's state, saying when a 'running' study's driver is in fact gone."""
    state = study.meta().get("state", "?")
    if state == "running" and not study.driver_alive():
        state = "interrupted: its driver is gone"
    if state.startswith("interrupted") or state == "created":
        state += f"; continue with `sweeper resume {study.path}`"
    return state
