"""``sweeper status``: a study's state, a summary, its best trials (every trial with
``--all``), and where its Optuna mirror is.

What it prints stays small and quick at any study size: the top rows only by default, the
mirror's trials counted by a count query, ``--json`` written row by row.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sweeper.cli._console import console, fmt

# Rows ``status`` (and the end of ``run``) print unless ``--all``.
TOP = 10


def status_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--all", action="store_true", dest="every", help="print every trial's row")
    p.add_argument(
        "--top", type=int, default=TOP, metavar="K",
        help=f"rows printed: the K best trials (default {TOP}), then a count of the rest",
    )  # fmt: skip


def cmd_status(args: argparse.Namespace) -> int:
    """Show a study's state, a summary and its best trials (``--all``: every trial)."""
    from sweeper.store import Study

    study = Study.open(args.study, args.out)
    spec = study.spec()
    if args.json:
        write_json(status_payload(study, spec), sys.stdout)
        return 0
    print_summary(study, spec, top=args.top, every=args.every)
    return 0


def write_json(payload: dict[str, Any], out: Any) -> None:
    """``payload`` as indented JSON, its ``trials`` (a frame) written a row at a time."""
    table = payload.pop("trials")
    head = json.dumps(payload, indent=2)[:-2]  # without the closing "\n}"
    out.write(head + (',\n  "trials": [' if payload else '{\n  "trials": ['))
    lines = table.to_json(orient="records", lines=True).splitlines() if not table.empty else []
    for i in range(0, len(lines), 1000):
        chunk = lines[i : i + 1000]
        out.write(("," if i else "") + "\n    " + ",\n    ".join(chunk))
    out.write("\n  ]\n}\n" if lines else "]\n}\n")
    out.flush()


def trials(study: Any, spec: Any) -> Any:
    """The study's trial table (:func:`sweeper.api._study.trial_table`), best first."""
    from sweeper.api._study import trial_table

    return trial_table(study, spec)


def best(table: Any, spec: Any) -> dict[str, Any] | None:
    """The best result's id and metric, or None (the table's first row, when a result)."""
    from sweeper.api._study import best_records
    from sweeper.states import metric_value

    rows = best_records(table.head(1), spec, 1)
    if not rows:
        return None
    metric = spec.metric.name
    return {"trial_id": str(rows[0]["trial_id"]), metric: metric_value(rows[0], metric)}


def front(table: Any, spec: Any) -> list[dict[str, Any]]:
    """A multi-objective study's Pareto front: each trial's id and objective values, best
    first by the first objective (:meth:`sweeper.spec.objectives.Objectives.front`)."""
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
        "trials": table,  # every trial, streamed by write_json
    }
    if spec.objectives.multi:  # the best trial is the front's first (by the first objective)
        payload["objectives"] = [{"name": m.name, "goal": m.goal} for m in spec.objectives.metrics]
        payload["pareto_front"] = front(table, spec)
        payload["best"] = payload["pareto_front"][0] if payload["pareto_front"] else None
    return payload


def print_summary(
    study: Any, spec: Any, storage: str | None = None, *, top: int = TOP, every: bool = False
) -> None:
    """Print the state, a count of trials by state, the ``top`` rows of the trial table
    (``every`` row when asked) and the best result's line (also the end of ``run``, which
    gives the mirror's real ``storage`` URL)."""
    from rich.table import Table

    table = trials(study, spec)
    out = console()
    if table.empty:
        out.print(f"study {spec.name} ({state_text(study)}): no trials yet")
        out.print(mirror_text(mirror(study, spec, storage)))
        return
    counts = table["state"].value_counts()
    out.print(
        f"study {spec.name} ({state_text(study)}): {len(table):,} trials: "
        + ", ".join(f"{n:,} {str(s).lower()}" for s, n in counts.items())
    )
    rows = table if every or len(table) <= top else table.head(top)
    title = "every trial" if len(rows) == len(table) else f"the first {len(rows)} (best first)"
    shown = Table(title=title, title_justify="left")
    for col in table.columns:
        shown.add_column(str(col), justify="right" if _numeric(table[col]) else "left")
    for row in rows.itertuples(index=False):
        shown.add_row(*[fmt(v) for v in row])
    out.print(shown)
    if len(rows) < len(table):
        out.print(
            f"... and {len(table) - len(rows):,} more trials "
            f"(every row: sweeper status {study.path} --all)"
        )
    if spec.objectives.multi:
        out.print(front_text(front(table, spec), spec))
    else:
        best_row = best(table, spec)
        if best_row is not None:
            metric = spec.metric.name
            out.print(f"best {metric}: {best_row[metric]:.4f} (trial {best_row['trial_id']})")
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
    from sweeper.mirror.storage import mirror_summary

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
