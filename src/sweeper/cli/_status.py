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
        print(json.dumps(status_payload(study, spec), indent=2))
        return 0
    print_summary(study, spec)
    return 0


def trials(study: Any, spec: Any) -> Any:
    """The study's trial table (:func:`sweeper.api._study.trial_table`), best first."""
    from sweeper.api._study import trial_table

    return trial_table(study, spec)


def best(table: Any, spec: Any) -> dict[str, Any] | None:
    """The best result's id and metric, or None."""
    from sweeper.api._study import best_records
    from sweeper.states import metric_value

    rows = best_records(table, spec, 1)
    if not rows:
        return None
    metric = spec.metric.name
    return {"trial_id": str(rows[0]["trial_id"]), metric: metric_value(rows[0], metric)}


def front(table: Any, spec: Any) -> list[dict[str, Any]]:
    """A multi-objective study's Pareto front: each trial's id and objective values, best
    first by the first objective (:meth:`sweeper.objectives.Objectives.front`)."""
    from sweeper.states import metric_value

    objectives = spec.objectives
    rows = objectives.front(table.to_dict(orient="records"))
    names = objectives.names
    return [
        {"trial_id": str(r["trial_id"]), **{n: metric_value(r, n) for n in names}} for r in rows
    ]


def status_payload(study: Any, spec: Any) -> dict[str, Any]:
    """What ``status --json`` prints: the study's state, its best result and every trial."""
    table = trials(study, spec)
    state = state_word(study)
    resumable = state in ("interrupted", "created")
    payload = {
        "name": spec.name,
        "state": state,
        "resume": f"sweeper resume {study.path}" if resumable else None,
        "path": str(study.path),
        "metric": {"name": spec.metric.name, "goal": spec.metric.goal},
        "best": best(table, spec),
        "optuna": mirror(study, spec),
        "trials": json.loads(table.to_json(orient="records")) if not table.empty else [],
    }
    if spec.objectives.multi:  # the best trial is the front's first (by the first objective)
        payload["objectives"] = [{"name": m.name, "goal": m.goal} for m in spec.objectives.metrics]
        payload["pareto_front"] = front(table, spec)
        payload["best"] = payload["pareto_front"][0] if payload["pareto_front"] else None
    return payload


def print_summary(study: Any, spec: Any, storage: str | None = None) -> None:
    """Print the trial table and the best result's line (also the end of ``run``, which
    gives the mirror's real ``storage`` URL)."""
    from rich.table import Table

    table = trials(study, spec)
    out = console()
    if table.empty:
        out.print(f"study {spec.name} ({state_text(study)}): no trials yet")
        out.print(mirror_text(mirror(study, spec, storage)))
        return
    shown = Table(title=f"study {spec.name} ({state_text(study)})", title_justify="left")
    for col in table.columns:
        shown.add_column(str(col), justify="right" if _numeric(table[col]) else "left")
    for row in table.itertuples(index=False):
        shown.add_row(*[fmt(v) for v in row])
    out.print(shown)
    if spec.objectives.multi:
        out.print(front_text(front(table, spec), spec))
    else:
        top = best(table, spec)
        if top is not None:
            metric = spec.metric.name
            out.print(f"best {metric}: {top[metric]:.4f} (trial {top['trial_id']})")
    out.print(mirror_text(mirror(study, spec, storage)))


def front_text(rows: list[dict[str, Any]], spec: Any) -> str:
    """``pareto front (val_acc max, params min): 3 trials: t1 (0.91, 1,234), ...``."""
    objectives = spec.objectives
    head = ", ".join(f"{m.name} {m.mode}" for m in objectives.metrics)
    trials = "; ".join(
        f"{r['trial_id']} (" + ", ".join(f"{r[n]:.4g}" for n in objectives.names) + ")"
        for r in rows
    )
    return f"pareto front ({head}): {len(rows)} trials: {trials or 'none yet'}"


def mirror(study: Any, spec: Any, storage: str | None = None) -> dict[str, Any]:
    """The Optuna mirror's place (password masked) and its trial count (the table is the
    truth; the mirror may lag it while a storage is down)."""
    from sweeper.optuna_storage import mirror_summary

    return mirror_summary(spec.storage, study.path, spec.name, storage)


def mirror_text(info: dict[str, Any]) -> str:
    held = f"{info['trials']} trials" if info["trials"] is not None else info["note"]
    return f"optuna mirror: {info['storage']} ({held})"


def _numeric(values: Any) -> bool:
    import pandas as pd

    kind = pd.api.types.infer_dtype(values, skipna=True)
    return kind in ("integer", "floating", "mixed-integer-float", "decimal")


def state_word(study: Any) -> str:
    """The study's state; a 'running' study whose driver is gone is 'interrupted'."""
    from sweeper.api._study import state_word as word

    return word(study)


def state_text(study: Any) -> str:
    """The study's state, saying when a 'running' study's driver is in fact gone."""
    state = study.meta().get("state", "?")
    if state == "running" and not study.driver_alive():
        state = "interrupted: its driver is gone"
    if state.startswith("interrupted") or state == "created":
        state += f"; continue with `sweeper resume {study.path}`"
    return state
