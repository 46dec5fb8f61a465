"""A study as Python sees it: tables as DataFrames, the report inline, export and resume.

:class:`Study` wraps the study folder (:class:`sweeper.store.Study`) and reads everything
from it, never from the sweep file: the same table ``sweeper status`` shows, the history,
the best trials, the saved spec. Its HTML form (``_repr_html_``) is the state line and the
trial table, so a study left as a cell's last line shows itself in Jupyter.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from sweeper.console import fmt


def trial_table(store: Any, spec: Any) -> Any:
    """The study's trial table as the report reads it: results best first, then the rest.

    Trials recorded RUNNING by a driver that is gone (SIGKILL, a lost machine) show as
    INTERRUPTED: nothing runs them, and ``resume`` continues them.
    """
    from sweeper.report import collect, trial_table
    from sweeper.states import TrialState

    maximize = spec.metric.goal == "maximize"
    df = collect(store)
    running = df["state"] == TrialState.RUNNING.value
    if running.any() and not store.driver_running():
        df.loc[running, "state"] = TrialState.INTERRUPTED.value
    return trial_table(df, list(spec.parameters), spec.metric.name, maximize, spec.objectives)


def best_records(table: Any, spec: Any, k: int = 1) -> list[dict[str, Any]]:
    """The ``k`` best results' rows (:func:`sweeper.states.best_rows`), best first; with
    several objectives, the Pareto front's first ``k`` (by the first objective)."""
    from sweeper.states import best_rows

    records = table.to_dict(orient="records")
    if spec.objectives.multi:
        return [dict(r) for r in spec.objectives.front(records)[:k]]
    maximize = spec.metric.goal == "maximize"
    return [dict(r) for r in best_rows(records, spec.metric.name, maximize, k)]


def state_word(store: Any) -> str:
    """The study's state; a 'running' study whose driver is gone is 'interrupted'."""
    state = store.meta().get("state", "?")
    return "interrupted" if state == "running" and not store.driver_alive() else state


class Study:
    """A study folder: made by :func:`sweeper.run`, opened by :func:`sweeper.open_study`.

    Attributes:
        store: the study folder itself (:class:`sweeper.store.Study`).
        last_run: what the last run or resume in this process left
            (:class:`sweeper.engine.tune.RunResult`), or None.
    """

    def __init__(self, store: Any, last_run: Any = None) -> None:
        self.store = store
        self.last_run = last_run

    # -- what it is -----------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return Path(self.store.path)

    @property
    def name(self) -> str:
        return str(self.store.name)

    @property
    def spec(self) -> Any:
        """The spec saved with the study (a :class:`sweeper.spec.Spec`)."""
        return self.store.spec()

    @property
    def state(self) -> str:
        """``finished``, ``interrupted``, ``running``, ``created`` or ``failed``."""
        return state_word(self.store)

    # -- its tables -----------------------------------------------------------------------
    def trials(self) -> Any:
        """One row per trial (id, state, swept values, metrics, epochs, seconds), best
        first: the table ``sweeper status`` shows."""
        return trial_table(self.store, self.spec)

    def history(self) -> Any:
        """Per-epoch metrics: one row per (trial_id, epoch)."""
        return self.store.history()

    def best(self, k: int = 1) -> Any:
        """The ``k`` best trials with a result (rows of :meth:`trials`), best first."""
        import pandas as pd

        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise _error(f"best: k must be an integer >= 1, got {k!r}")
        spec = self.spec
        table = trial_table(self.store, spec)
        rows = best_records(table, spec, k)
        return pd.DataFrame(rows, columns=table.columns).reset_index(drop=True)

    # -- what it gives back ---------------------------------------------------------------
    def report(
        self,
        path: str | os.PathLike | None = None,
        *,
        format: str | None = None,  # noqa: A002 - the CLI's --format
        top: int = 10,
        threshold: float | None = None,
    ) -> Any:
        """The study's report. With ``path``: written there (HTML, or ``format`` ``md`` /
        ``csv``; by default from the suffix) and the files written are returned. Without:
        a :class:`Report` of plotly figures and tables, shown inline in Jupyter."""
        from sweeper.report import write_report

        if path is None and format is None:
            from sweeper.api._report import build_report

            return build_report(self.store, top=top, threshold=threshold)
        fmt_ = format or _format_of(path)
        return write_report(self.store, fmt_, path, top=top, threshold=threshold)

    def export(self, k: int = 3, out: str | os.PathLike | None = None) -> list[Any]:
        """The ``k`` best configs as runnable sweep files with their weights (under
        ``<study>/export`` or ``out``); one :class:`sweeper.export.Exported` each."""
        from sweeper.export import export_study

        return export_study(self.store, top=k, out=out)

    def resume(
        self,
        *,
        data_dir: str | None = None,
        wandb: str | None = None,
        address: str | None = None,
        storage: str | None = None,
    ) -> Study:
        """Continue this study if it was interrupted (a finished one: nothing to do)."""
        from sweeper.api._launch import resume
        from sweeper.console import command_clock

        with command_clock():
            launched = resume(
                self.store, data_dir=data_dir, wandb=wandb, address=address, storage=storage
            )
        if launched is not None:
            self.last_run = launched.result
        return self

    # -- how it shows ---------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"<sweeper.Study {self.name!r} ({self.state}) at {self.path}>"

    def _repr_html_(self) -> str:
        table = self.trials()
        head = (
            f"<p><b>study {html.escape(self.name)}</b> ({html.escape(self.state)}), "
            f"{len(table)} trials: <code>{html.escape(str(self.path))}</code></p>"
        )
        if table.empty:
            return head
        shown = table.apply(lambda c: c.map(fmt))
        return head + shown.to_html(index=False, escape=True)


def _format_of(path: Any) -> str:
    """``.md``: Markdown; anything else HTML (CSV tables only when asked: ``format="csv"``)."""
    return "md" if Path(path).suffix.lower() == ".md" else "html"


def _error(message: str) -> Exception:
    from sweeper.errors import SweeperError

    return SweeperError(message)
