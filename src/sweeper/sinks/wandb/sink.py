"""The W&B sink of the driver callback: one W&B run per trial.

It runs on the driver, not in the trials: ``wandb.init`` inside a trial loses the data of
trials that Tune stops, and W&B's settings would have to reach every worker. The W&B work
itself is in :mod:`sweeper.sinks.wandb`; this sink turns the study's trial events
(:mod:`sweeper.sinks.base`) into its calls, and takes each run's summary from the trial's
row (never a file).

The calls run on a thread of their own (:class:`~sweeper.sinks.background.Background`),
in order: W&B's first run starts its service (seconds), and Ray Tune schedules a trial's
first train call only after the callback's ``on_trial_start`` returns. The thread imports
wandb and starts its service as soon as the sink is made; :meth:`WandbSink.close` waits
until every run is written.
"""

from __future__ import annotations

import math
from typing import Any

from sweeper.sinks.background import Background
from sweeper.sinks.base import (
    BaseSink,
    SinkContext,
    StudyEnd,
    StudyStart,
    TrialEnded,
    TrialResult,
    TrialStarted,
)
from sweeper.store import BASE_COLUMNS, PARAM_PREFIX, Study


class WandbSink(BaseSink):
    """Config at a trial's start, a history row per epoch, its row as summary at the end."""

    name = "wandb"

    def __init__(self, study: Study, spec: Any) -> None:
        from sweeper.sinks.wandb import TrackerSettings, WandbTracker

        self.spec = spec
        self.study = study
        self.resumed: set[str] = set()  # trials the history held epochs for at the start
        self._before: Any = None  # the history at the first resumed run's start
        w = spec.wandb
        self.tracker = WandbTracker(
            TrackerSettings(
                mode=w.mode,
                root=study.path,
                group=spec.name,
                project=w.project,
                entity=w.entity,
                tags=list(w.tags),
            )
        )
        self.background = Background("W&B", self.tracker.warn)
        # A script trial's own wandb.init() is its run: the driver opens none, and only
        # forgets the runs of trials Ray does not know (their folders, on a resume).
        self.opens_runs = self.tracker.enabled and spec.model is not None
        if self.opens_runs:
            self.background.submit(self.tracker.prepare)

    # -- the sink's events: queued ---------------------------------------------------------
    def start(self, study: StudyStart) -> None:
        """Note the resumed trials (their runs get the epochs their earlier W&B records
        lack); drop the runs of trials the study no longer has."""
        self.resumed = set(study.history_epochs)
        if self.tracker.enabled:
            self.background.submit(self.tracker.forget, set(study.trials))

    def trial_started(self, event: TrialStarted) -> None:
        """Open the trial's run, named and configured by its swept values."""
        if self.opens_runs:
            self.background.submit(self._start, event.trial_id, dict(event.config))

    def trial_result(self, event: TrialResult) -> None:
        if self.opens_runs:
            self.background.submit(
                self._log, event.trial_id, dict(event.config), dict(event.metrics)
            )

    def trial_ended(self, event: TrialEnded) -> None:
        if self.opens_runs:
            self.background.submit(
                self._finish, event.trial_id, dict(event.config), dict(event.row)
            )

    def flush(self) -> None:
        self.background.flush()

    def close(self, end: StudyEnd) -> None:
        """Close every run still open and wait until W&B has written them all."""
        self.background.submit(self.tracker.close)
        self.background.close()

    # -- on the W&B thread ----------------------------------------------------------------
    def _start(self, trial_id: str, params: dict[str, Any]) -> None:
        if not self.tracker.enabled or trial_id in self.tracker.runs:
            return
        try:
            from sweeper.models import get_entry
            from sweeper.sinks.wandb import run_config

            config = run_config(self.spec, params)
            family = get_entry(str(config["model"])).family
        except Exception as exc:  # noqa: BLE001 - a config the trial itself will reject
            config, family = dict(params), self.spec.runs
            self.tracker.warn(f"W&B config of trial {trial_id}: {exc}")
        name = " ".join([trial_id, *(f"{k}={v}" for k, v in params.items())])
        done = self._done(trial_id) if trial_id in self.resumed else []
        self.tracker.start(trial_id, name[:120], config, job_type=family, done=done)

    def _done(self, trial_id: str) -> list[tuple[int, dict[str, Any]]]:
        """The epochs the study's history holds for a resumed trial, as ``(step, metrics)``."""
        if self._before is None:
            self._before = self.study.history()
        rows = self._before[self._before["trial_id"] == trial_id]
        return [
            (int(row["epoch"]), {k: v for k, v in row.items() if k != "trial_id" and v == v})
            for row in rows.sort_values("epoch").to_dict("records")
        ]

    def _log(self, trial_id: str, params: dict[str, Any], metrics: dict[str, Any]) -> None:
        self._start(trial_id, params)  # a restored trial may report before it is started
        self.tracker.log(trial_id, int(metrics.get("epoch", 0)), metrics)

    def _finish(self, trial_id: str, params: dict[str, Any], row: dict[str, Any]) -> None:
        self._start(trial_id, params)  # a trial that failed before its first result
        if trial_id in self.tracker.runs:
            exit_code = 1 if str(row.get("state")) == "FAIL" else 0
            self.tracker.finish(trial_id, summary(trial_id, row), exit_code)


def summary(trial_id: str, row: dict[str, Any]) -> dict[str, Any]:
    """A run's summary from its trial row: final and best metrics, epochs, times, state."""
    out: dict[str, Any] = {"state": str(row.get("state", "")), "trial_id": trial_id}
    for key, value in row.items():
        if key.startswith(PARAM_PREFIX) or key in BASE_COLUMNS:
            continue
        value = value.item() if hasattr(value, "item") else value  # numpy -> Python
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = value
    out["epochs"] = int(row.get("epochs") or 0)
    out["wall_s"] = float(row.get("wall_s") or 0.0)
    out["startup_s"] = float(row.get("startup_s") or 0.0)
    error = row.get("error")
    if isinstance(error, str) and error:
        out["error"] = error
    return out


def make_sink(context: SinkContext) -> WandbSink | None:
    """The study's sink: on unless the spec's ``wandb.mode`` is ``disabled``."""
    if context.spec.wandb.mode == "disabled":
        return None
    return WandbSink(context.study, context.spec)
