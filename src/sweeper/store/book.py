"""The driver's book of trials: one row per trial, and the rules that move its state.

Pure: no Ray imports. A trial is anything with ``trial_id`` and ``config`` (Ray's
``Trial``, or a stand-in in tests). The book is rebuilt from the study's own files when a
driver starts, so a resumed run continues the same table.
"""

from __future__ import annotations

import math
import time
from typing import Any

from sweeper.search.space import constants
from sweeper.spec.values import label
from sweeper.states import TrialState, best_value, counts, is_result, metric_value
from sweeper.store import PARAM_PREFIX, Study
from sweeper.store.table import NODE_KEY

# Keys Ray adds to every result that the trial table does not need.
_RAY_KEYS = {
    "timestamp", "checkpoint_dir_name", "should_checkpoint", "done", "training_iteration",
    "trial_id", "date", "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip",
    "time_since_restore", "iterations_since_restore", "config", "experiment_tag",
}  # fmt: skip
# A PBT copy reports which trial it copied (and at which epoch, what changed) from then on.
LINEAGE_KEY = "pbt_source"
# Reported by the trial, kept in the row under other names (training and start-up time).
_TIME_KEYS = {"train_s", "epoch_s"}


def metrics_of(result: dict[str, Any]) -> dict[str, Any]:
    """The trial's own metrics from a Ray result (Ray's bookkeeping keys and the node
    dropped)."""
    return {
        k: v
        for k, v in result.items()
        if k not in _RAY_KEYS and k != NODE_KEY and not isinstance(v, dict)
    }


class TrialBook:
    """The rows of the trial table, keyed by trial id, plus each trial's metric curve."""

    def __init__(self, study: Study) -> None:
        self.spec = study.spec()
        self.metric = self.spec.metric.name
        self.maximize = self.spec.metric.goal == "maximize"
        self.rows: dict[str, dict[str, Any]] = {}
        self.curves: dict[str, dict[int, float]] = {}
        self._next_number = 0
        self._best: float | None = None
        self._load(study)
        self._recount()

    def _load(self, study: Study) -> None:
        """Continue from the study's files (empty for a new study)."""
        for rec in study.trials().to_dict(orient="records"):
            rec = {k: v for k, v in rec.items() if not (isinstance(v, float) and v != v)}
            rec["error"] = rec.get("error", "") or ""
            rec["state"] = TrialState.of(rec.get("state"))
            if rec["state"] is TrialState.RUNNING:  # its driver was killed: nothing runs it
                rec["state"] = TrialState.INTERRUPTED
            self.rows[str(rec["trial_id"])] = rec
            self._next_number = max(self._next_number, int(rec.get("number", -1)) + 1)
        hist = study.history()
        if self.metric in hist.columns:
            for rec in hist[["trial_id", "epoch", self.metric]].dropna().itertuples(index=False):
                self.curves.setdefault(str(rec[0]), {})[int(rec[1])] = float(rec[2])

    def row(self, trial: Any) -> dict[str, Any]:
        """The trial's row, made (PENDING, numbered after every other) on first sight."""
        if trial.trial_id not in self.rows:
            # Constants (``value:``) are not searched, but they are part of every config.
            config = {**constants(self.spec), **(trial.config or {})}
            self.rows[trial.trial_id] = {
                "trial_id": trial.trial_id,
                "number": self._next_number,
                "state": TrialState.PENDING,  # counted below
                "epochs": 0,
                "wall_s": 0.0,
                "startup_s": 0.0,
                "error": "",
                **{f"{PARAM_PREFIX}{k}": label(v) for k, v in config.items()},  # list: JSON
            }
            self._next_number += 1
            self._counts[TrialState.PENDING] += 1
        return self.rows[trial.trial_id]

    def start(self, trial: Any) -> dict[str, Any]:
        row = self.row(trial)
        self._set_state(row, TrialState.RUNNING)
        return row

    def _set_state(self, row: dict[str, Any], state: TrialState) -> None:
        """Move a row to ``state``, keeping the counts, the running set and the best result
        current."""
        self._counts[TrialState.of(row["state"])] -= 1
        self._counts[state] += 1
        row["state"] = state
        if state is TrialState.RUNNING:
            self.running.add(str(row["trial_id"]))
        else:
            self.running.discard(str(row["trial_id"]))
        value = metric_value(row, self.metric)
        if (
            value is not None
            and is_result(row, self.metric)
            and (
                self._best is None or (value > self._best if self.maximize else value < self._best)
            )
        ):
            self._best = value

    def _recount(self) -> None:
        self._counts = counts(r["state"] for r in self.rows.values())
        self.running = {
            t for t, r in self.rows.items() if TrialState.of(r["state"]) is TrialState.RUNNING
        }
        self._best = best_value(self.rows.values(), self.metric, self.maximize)

    def planned_epochs(self, trial: Any) -> int:
        return int((trial.config or {}).get("epochs", self.spec.train.epochs))

    def update(self, trial: Any, result: dict[str, Any]) -> dict[str, Any]:
        """Take one result into the trial's row; returns the trial's own metrics."""
        row = self.row(trial)
        metrics = metrics_of(result)
        row.update({k: v for k, v in metrics.items() if k not in _TIME_KEYS})
        if metrics.get(LINEAGE_KEY) and isinstance(result.get("config"), dict):
            # a PBT copy runs a new config: the row shows the values it trains with now
            row.update({f"{PARAM_PREFIX}{k}": label(v) for k, v in result["config"].items()})
        if result.get(NODE_KEY):
            row[NODE_KEY] = str(result[NODE_KEY])  # where it ran last (a retry may move it)
        self._set_state(row, TrialState.RUNNING)
        row["epochs"] = int(metrics.get("epoch", row["epochs"]))
        total = float(result.get("time_total_s", 0.0) or 0.0)
        train = float(metrics.get("train_s", row["wall_s"]) or 0.0)
        row["wall_s"] = round(train, 3)  # training only: the epochs and their evaluation
        row["startup_s"] = round(max(0.0, total - train), 3)  # imports, data, model, restore
        value = metrics.get(self.metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            self.curves.setdefault(trial.trial_id, {})[row["epochs"]] = float(value)
            better = max if self.maximize else min
            row[f"best_{self.metric}"] = better(row.get(f"best_{self.metric}", value), value)
        return metrics

    def finish(self, trial: Any, error: str | None = None) -> dict[str, Any]:
        """End the trial: FAIL on an error, PRUNED if stopped before its planned epochs
        (a diverged trial is not), else COMPLETE."""
        row = self.row(trial)
        if error is not None:
            row["error"] = error
            self._set_state(row, TrialState.FAIL)
        elif self._stopped_early(trial, row):
            self._set_state(row, TrialState.PRUNED)
        else:
            self._set_state(row, TrialState.COMPLETE)
        row["ended_at"] = round(time.time(), 3)
        return row

    def interrupt(self) -> list[dict[str, Any]]:
        """Mark every RUNNING trial INTERRUPTED (its driver is stopping: nothing runs it any
        more; ``resume`` continues it as Ray saved it); returns the rows changed."""
        changed = [self.rows[t] for t in sorted(self.running)]
        for row in changed:
            self._set_state(row, TrialState.INTERRUPTED)
        return changed

    def _stopped_early(self, trial: Any, row: dict[str, Any]) -> bool:
        """Ended before its end: a script that did not exit 0 by itself (it reports
        ``exit_code`` last), a model trial short of its planned epochs (and not diverged)."""
        if self.spec.model is None:
            return "exit_code" not in row
        return row["epochs"] < self.planned_epochs(trial) and not row.get("diverged")

    def forget_unknown(self, known_ids: set[str]) -> set[str]:
        """Drop the rows of trials Ray does not know; returns their ids.

        Ray's experiment snapshot, with the searcher state inside it, is the truth on resume:
        a trial begun after the snapshot (even one that finished before the kill) is unknown
        to the restored searcher, which will suggest its config again under a new id, so its
        old row must go, or the table would hold that config twice.
        """
        dropped = {t for t in self.rows if t not in known_ids}
        for trial_id in dropped:
            del self.rows[trial_id]
            self.curves.pop(trial_id, None)
        self._recount()
        return dropped

    def snapshot(self) -> TrialBook:
        """A copy for another thread: later changes to this book's rows do not reach it."""
        view = object.__new__(TrialBook)
        view.__dict__.update(self.__dict__)
        view.rows = {t: dict(r) for t, r in self.rows.items()}
        view.curves = {t: dict(c) for t, c in self.curves.items()}
        view._counts = self._counts.copy()
        view.running = set(self.running)
        return view

    def params(self, trial_id: str) -> dict[str, Any]:
        """A row's swept values (the ``config/`` columns, prefix dropped)."""
        row = self.rows[trial_id]
        return {
            k.removeprefix(PARAM_PREFIX): v for k, v in row.items() if k.startswith(PARAM_PREFIX)
        }

    def work_done(self) -> float:
        """Trials' worth of work done: each ended trial 1, a running model trial the share
        of its planned epochs trained (a script trial's epochs are not known: 0)."""
        done = float(sum(self._counts[s] for s in TrialState if s.ended))
        if self.spec.model is None:
            return done
        for trial_id in self.running:
            row = self.rows[trial_id]
            planned = row.get(f"{PARAM_PREFIX}epochs", self.spec.train.epochs)
            if isinstance(planned, (int, float)) and planned > 0:
                done += min(1.0, float(row.get("epochs", 0) or 0) / planned)
        return done

    def counts(self) -> dict[TrialState, int]:
        """Trials in each state (kept as rows change: no pass over the rows)."""
        return dict(self._counts)

    def best(self) -> float | None:
        """The best result so far (COMPLETE trials only: :func:`sweeper.states.is_result`)."""
        return self._best
