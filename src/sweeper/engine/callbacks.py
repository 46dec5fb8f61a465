"""The driver-side Ray Tune callback: study store, Optuna mirror and the live progress line.

Ray pickles its callbacks into the experiment folder and hands the pickled copies back on
``Tuner.restore``. So the callback pickles only the study folder's path and rebuilds its
book of trials from the study's own files: a resumed run continues the same table.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ray.tune import Callback

from sweeper.space import constants
from sweeper.store import PARAM_PREFIX, Study

# Keys Ray adds to every result that the trial table does not need.
_RAY_KEYS = {
    "timestamp", "checkpoint_dir_name", "should_checkpoint", "done", "training_iteration",
    "trial_id", "date", "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip",
    "time_since_restore", "iterations_since_restore", "config", "experiment_tag",
}  # fmt: skip
FINISHED = ("COMPLETE", "PRUNED", "FAIL")


def metrics_of(result: dict[str, Any]) -> dict[str, Any]:
    """The trial's own metrics from a Ray result (Ray's bookkeeping keys dropped)."""
    return {k: v for k, v in result.items() if k not in _RAY_KEYS and not isinstance(v, dict)}


class TrialBook:
    """The rows of the trial table, keyed by trial id, plus each trial's metric curve."""

    def __init__(self, study: Study) -> None:
        self.spec = study.spec()
        self.rows: dict[str, dict[str, Any]] = {}
        self.curves: dict[str, dict[int, float]] = {}
        self._load(study)

    def _load(self, study: Study) -> None:
        """Continue from the study's files (empty for a new study)."""
        df = study.trials()
        for rec in df.to_dict(orient="records"):
            rec = {k: v for k, v in rec.items() if not (isinstance(v, float) and v != v)}
            rec["error"] = rec.get("error", "") or ""
            self.rows[str(rec["trial_id"])] = rec
        hist = study.history()
        name = self.spec.metric.name
        if name in hist.columns:
            for rec in hist[["trial_id", "epoch", name]].dropna().itertuples(index=False):
                self.curves.setdefault(str(rec[0]), {})[int(rec[1])] = float(rec[2])

    def row(self, trial: Any) -> dict[str, Any]:
        if trial.trial_id not in self.rows:
            # Constants (``value:``) are not searched, but they are part of every config.
            config = {**constants(self.spec), **(trial.config or {})}
            params = {f"{PARAM_PREFIX}{k}": v for k, v in config.items()}
            numbers = [int(r.get("number", -1)) for r in self.rows.values()]
            self.rows[trial.trial_id] = {
                "trial_id": trial.trial_id,
                "number": max(numbers, default=-1) + 1,
                "state": "PENDING",
                "epochs": 0,
                "wall_s": 0.0,
                "error": "",
                **params,
            }
        return self.rows[trial.trial_id]

    def planned_epochs(self, trial: Any) -> int:
        return int((trial.config or {}).get("epochs", self.spec.train.epochs))

    def update(self, trial: Any, result: dict[str, Any]) -> dict[str, Any]:
        row = self.row(trial)
        metrics = metrics_of(result)
        row.update(metrics)
        row["state"] = "RUNNING"
        row["epochs"] = int(metrics.get("epoch", row["epochs"]))
        row["wall_s"] = round(float(result.get("time_total_s", row["wall_s"])), 3)
        name = self.spec.metric.name
        value = metrics.get(name)
        if isinstance(value, (int, float)) and math.isfinite(value):
            self.curves.setdefault(trial.trial_id, {})[row["epochs"]] = float(value)
            better = max if self.spec.metric.goal == "maximize" else min
            row[f"best_{name}"] = better(row.get(f"best_{name}", value), value)
        return metrics

    def finish(self, trial: Any, error: str | None = None) -> dict[str, Any]:
        row = self.row(trial)
        if error is not None:
            row.update(state="FAIL", error=error)
        elif row["epochs"] < self.planned_epochs(trial) and not row.get("diverged"):
            row["state"] = "PRUNED"
        else:
            row["state"] = "COMPLETE"
        return row

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
        return dropped

    def params(self, trial_id: str) -> dict[str, Any]:
        """A row's swept values (the ``config/`` columns, prefix dropped)."""
        row = self.rows[trial_id]
        return {
            k.removeprefix(PARAM_PREFIX): v for k, v in row.items() if k.startswith(PARAM_PREFIX)
        }

    def counts(self) -> dict[str, int]:
        states = [r["state"] for r in self.rows.values()]
        return {s: states.count(s) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}

    def best(self) -> float | None:
        name = self.spec.metric.name
        values = [r.get(name) for r in self.rows.values() if r["state"] in ("COMPLETE", "PRUNED")]
        values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
        if not values:
            return None
        return max(values) if self.spec.metric.goal == "maximize" else min(values)


class StudyCallback(Callback):
    """Writes the trial table, history and Optuna mirror, and shows one live progress line."""

    def __init__(self, study_path: str, total: int) -> None:
        self.study_path = study_path
        self.total = total
        self._setup()

    def _setup(self) -> None:
        from rich.console import Console

        self.study = Study(self.study_path)
        self.book = TrialBook(self.study)
        self.history_last = self.study.history_epochs()  # trial -> last epoch in history.csv
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self.t0 = time.monotonic()
        self._live: Any = None
        self._mirror: Any = None
        self._reconciled = False

    def __getstate__(self) -> dict[str, Any]:
        return {"study_path": self.study_path, "total": self.total}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._setup()

    # -- Ray events ------------------------------------------------------------------------
    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if not self._reconciled:
            self._reconcile(trials)
            self._reconciled = True

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._show()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.book.row(trial)["state"] = "RUNNING"
        self._flush()

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        metrics = self.book.update(trial, result)
        self._record_history(trial.trial_id, metrics)
        self._flush()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, _error_line(trial))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.close()

    # -- helpers ---------------------------------------------------------------------------
    def _reconcile(self, trials: list) -> None:
        """Make the study's files agree with the trials Ray restored (first step of a run).

        Rows (with their history) of trials Ray does not know go; trials Ray holds as
        finished get finished rows (a kill can fall between Ray's snapshot and the table's
        write); the Optuna mirror is made to hold exactly the finished rows.
        """
        dropped = self.book.forget_unknown({t.trial_id for t in trials})
        if dropped:
            self.study.rewrite_history(lambda trial_id, epoch: trial_id not in dropped)
            for trial_id in dropped:
                self.history_last.pop(trial_id, None)
        for trial in trials:
            status = getattr(trial, "status", None)
            row_state = self.book.rows.get(trial.trial_id, {}).get("state")
            if status == "TERMINATED" and row_state not in ("COMPLETE", "PRUNED"):
                if trial.last_result:
                    self._record_history(trial.trial_id, self.book.update(trial, trial.last_result))
                self.book.finish(trial)
            elif status == "ERROR" and row_state != "FAIL":
                self.book.finish(trial, _error_line(trial))
        self._sync_mirror()
        self._flush()

    def _record_history(self, trial_id: str, metrics: dict[str, Any]) -> None:
        """Append one epoch to history.csv; an epoch trained again replaces its old rows."""
        if "epoch" not in metrics:
            return  # Ray's closing result of a trial: no new epoch
        epoch = int(metrics["epoch"])
        if epoch <= self.history_last.get(trial_id, 0):
            self.study.rewrite_history(lambda t, e: t != trial_id or e < epoch)
        self.study.append_history(trial_id, epoch, metrics)
        self.history_last[trial_id] = epoch

    def _sync_mirror(self) -> None:
        """optuna.db holds each finished row once: rebuilt when it holds a trial that is gone."""
        finished = [t for t, r in self.book.rows.items() if r["state"] in FINISHED]
        try:
            mirror = self._optuna()
            recorded = [
                t.user_attrs.get("trial_id") for t in mirror.study.get_trials(deepcopy=False)
            ]
            if set(recorded) - set(finished) or len(recorded) != len(set(recorded)):
                self._rebuild_mirror(finished)
                mirror = self._optuna()
            for trial_id in finished:
                self._record(mirror, trial_id)
        except Exception as exc:  # noqa: BLE001 - the mirror is a record; never stop a study
            self.console.print(f"sweeper: warning: optuna mirror: {exc}")

    def _rebuild_mirror(self, finished: list[str]) -> None:
        """Write a new optuna.db with the finished rows, then rename it over the old one."""
        import os

        from sweeper.optuna_mirror import OptunaMirror

        self._close_mirror()
        tmp = self.study.path / ".optuna.db.rebuild"
        tmp.unlink(missing_ok=True)
        mirror = OptunaMirror(f"sqlite:///{tmp.resolve()}", self.book.spec)
        for trial_id in sorted(finished, key=lambda t: int(self.book.rows[t].get("number", 0))):
            self._record(mirror, trial_id)
        _dispose(mirror)
        os.replace(tmp, self.study.path / "optuna.db")

    def _record(self, mirror: Any, trial_id: str) -> None:
        row = self.book.rows[trial_id]
        mirror.record(
            trial_id,
            row["state"],
            self.book.params(trial_id),
            row,
            self.book.curves.get(trial_id, {}),
        )

    def _close_mirror(self) -> None:
        if self._mirror is not None:
            _dispose(self._mirror)
            self._mirror = None

    def _flush(self) -> None:
        self.study.write_trials(list(self.book.rows.values()))

    def _finish(self, trial: Any, error: str | None) -> None:
        row = self.book.finish(trial, error)
        try:
            self._optuna().record(
                trial.trial_id,
                row["state"],
                trial.config or {},
                row,
                self.book.curves.get(trial.trial_id, {}),
            )
        except Exception as exc:  # noqa: BLE001 - the mirror is a record; never stop a study
            row["error"] = row.get("error") or f"optuna mirror: {exc}"
        self._flush()
        self._show(finished=True)

    def _optuna(self) -> Any:
        if self._mirror is None:
            from sweeper.optuna_mirror import OptunaMirror

            self._mirror = OptunaMirror(self.study.optuna_url, self.book.spec)
        return self._mirror

    def text(self) -> str:
        c = self.book.counts()
        done = c["COMPLETE"] + c["PRUNED"] + c["FAIL"]
        best = self.book.best()
        name = self.book.spec.metric.name
        best_txt = f"{best:.4f}" if best is not None else "-"
        return (
            f"{self.book.spec.name}: {done}/{self.total} trials done, {c['RUNNING']} running, "
            f"{c['FAIL']} failed, {c['PRUNED']} stopped early, best {name} {best_txt}  "
            f"[{time.monotonic() - self.t0:.0f}s]"
        )

    def _show(self, finished: bool = False) -> None:
        if not self.console.is_terminal:
            if finished:  # logs and pipes get one line per finished trial
                self.console.print(self.text())
            return
        if self._live is None:
            from rich.live import Live

            self._live = Live(self.text(), console=self.console, refresh_per_second=4)
            self._live.start()
        self._live.update(self.text())

    def close(self) -> None:
        if self._live is not None:
            self._live.update(self.text())
            self._live.stop()
            self._live = None


def _dispose(mirror: Any) -> None:
    """Close an Optuna mirror's database connections."""
    storage = getattr(mirror.study, "_storage", None)
    storage = getattr(storage, "_backend", storage)  # Optuna caches its RDB storage
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()


def _error_line(trial: Any) -> str:
    """The last line of the trial's traceback (the exception and its message)."""
    text = ""
    try:  # Ray writes the error to the trial's local folder before calling back
        with open(trial.error_file, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except (OSError, TypeError):
        pass
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("Failure #")
    ]
    return lines[-1][:300] if lines else "error (no message from the trial)"
