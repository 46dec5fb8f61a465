"""Driver-side Ray Tune callbacks: the study store and the live progress line."""

from __future__ import annotations

import math
import time
from typing import Any

from ray.tune import Callback

from sweeper.spec import Spec
from sweeper.store import PARAM_PREFIX, Study

# Keys Ray adds to every result that the trial table does not need.
_RAY_KEYS = {
    "timestamp", "checkpoint_dir_name", "should_checkpoint", "done", "training_iteration",
    "trial_id", "date", "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip",
    "time_since_restore", "iterations_since_restore", "config", "experiment_tag",
}  # fmt: skip


def metrics_of(result: dict[str, Any]) -> dict[str, Any]:
    """The trial's own metrics from a Ray result (Ray's bookkeeping keys dropped)."""
    return {k: v for k, v in result.items() if k not in _RAY_KEYS and not isinstance(v, dict)}


class TrialBook:
    """What the driver knows of every trial: the rows of the trial table."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.rows: dict[str, dict[str, Any]] = {}
        self.curves: dict[str, dict[int, float]] = {}
        self.best: tuple[float, str] | None = None

    def row(self, trial: Any) -> dict[str, Any]:
        if trial.trial_id not in self.rows:
            params = {f"{PARAM_PREFIX}{k}": v for k, v in (trial.config or {}).items()}
            self.rows[trial.trial_id] = {
                "trial_id": trial.trial_id,
                "number": len(self.rows),
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
            best_key = f"best_{name}"
            better = max if self.spec.metric.goal == "maximize" else min
            row[best_key] = better(row.get(best_key, value), value)
            signed = value if self.spec.metric.goal == "maximize" else -value
            if self.best is None or signed > self.best[0]:
                self.best = (signed, trial.trial_id)
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

    def best_value(self) -> float | None:
        if self.best is None:
            return None
        return self.best[0] if self.spec.metric.goal == "maximize" else -self.best[0]


class StoreCallback(Callback):
    """Writes the trial table, the history and the Optuna mirror as results arrive."""

    def __init__(self, study: Study, book: TrialBook) -> None:
        self.study = study
        self.book = book
        self._mirror: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles the run config (callbacks included) into the experiment folder.
        return {**self.__dict__, "_mirror": None}

    def _flush(self) -> None:
        self.study.write_trials(list(self.book.rows.values()))

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        row = self.book.row(trial)
        row["state"] = "RUNNING"
        self._flush()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        metrics = self.book.update(trial, result)
        self.study.append_history(trial.trial_id, int(metrics.get("epoch", 0)), metrics)
        self._flush()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, _error_line(trial))

    def _finish(self, trial: Any, error: str | None) -> None:
        row = self.book.finish(trial, error)
        self._flush()
        try:
            self._optuna().record(
                trial.trial_id,
                row["state"],
                trial.config or {},
                row,
                self.book.curves.get(trial.trial_id, {}),
            )
        except Exception as exc:  # the mirror is a record; never let it stop a study
            row["error"] = row.get("error") or f"optuna mirror: {exc}"

    def _optuna(self) -> Any:
        if self._mirror is None:
            from sweeper.optuna_mirror import OptunaMirror

            self._mirror = OptunaMirror(self.study.optuna_url, self.book.spec)
        return self._mirror


def _error_line(trial: Any) -> str:
    """The last line of the trial's traceback (the exception and its message)."""
    try:
        err = trial.get_error()
    except Exception:  # noqa: BLE001 - best effort
        err = None
    text = str(err or "error").strip().splitlines()
    lines = [ln.strip() for ln in text if ln.strip()]
    return lines[-1][:300] if lines else "error"


class ProgressCallback(Callback):
    """One live line: trials done/total, running, failed, best metric so far."""

    def __init__(self, book: TrialBook, total: int, console: Any) -> None:
        self.book = book
        self.total = total
        self.console = console
        self.t0 = time.monotonic()
        self._live: Any = None
        self._done = 0

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles callbacks; the console and live display are rebuilt on demand.
        return {**self.__dict__, "console": None, "_live": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.console is None:
            from rich.console import Console

            self.console = Console(stderr=True, highlight=False, soft_wrap=True)

    def text(self) -> str:
        states = [r["state"] for r in self.book.rows.values()]
        done = sum(s in ("COMPLETE", "PRUNED", "FAIL") for s in states)
        running = states.count("RUNNING")
        failed = states.count("FAIL")
        best = self.book.best_value()
        name = self.book.spec.metric.name
        best_txt = f"best {name} {best:.4f}" if best is not None else f"best {name} -"
        return (
            f"{self.book.spec.name}: {done}/{self.total} trials done, {running} running, "
            f"{failed} failed, {best_txt}  [{time.monotonic() - self.t0:.0f}s]"
        )

    def _refresh(self, finished: bool = False) -> None:
        if self.console.is_terminal:
            if self._live is None:
                from rich.live import Live

                self._live = Live(self.text(), console=self.console, refresh_per_second=4, transient=False)
                self._live.start()
            self._live.update(self.text())
        elif finished:
            self.console.print(self.text(), highlight=False)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self.console.is_terminal:
            self._refresh()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._refresh(finished=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._refresh(finished=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.update(self.text())
            self._live.stop()
            self._live = None
