"""The driver-side Ray Tune callback that records each trial as a W&B run.

It runs on the driver, not in the trials: ``wandb.init`` inside a trial loses the data of
trials that Tune stops, and W&B's settings would have to reach every worker. The W&B work
itself is in :mod:`sweeper.tracking`; this adapter only turns Ray's events into its calls.

Ray pickles callbacks into the experiment and hands the copies back on ``Tuner.restore``:
the callback pickles only the study folder's path and rebuilds the rest from the study (its
saved spec, trial table), so a resumed study continues the same runs. It must come after
:class:`~sweeper.engine.callbacks.StudyCallback` in the list, whose trial table it reads.
"""

from __future__ import annotations

import math
from typing import Any

from ray.tune import Callback

from sweeper.engine.callbacks import metrics_of
from sweeper.store import BASE_COLUMNS, PARAM_PREFIX, Study


class WandbCallback(Callback):
    """One W&B run per trial: config at start, a history row per epoch, summary at the end."""

    def __init__(self, study_path: str) -> None:
        self.study_path = study_path
        self._setup()

    def _setup(self) -> None:
        from sweeper.tracking import TrackerSettings, WandbTracker

        self.study = Study(self.study_path)
        self.spec = self.study.spec()
        w = self.spec.wandb
        self.tracker = WandbTracker(
            TrackerSettings(
                mode=w.mode,
                root=self.study.path,
                group=self.spec.name,
                project=w.project,
                entity=w.entity,
                tags=list(w.tags),
            )
        )
        self._reconciled = False

    def __getstate__(self) -> dict[str, Any]:
        return {"study_path": self.study_path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._setup()

    # -- Ray events ------------------------------------------------------------------------
    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if not self._reconciled:
            self._reconciled = True
            if self.tracker.enabled:
                self.tracker.forget({t.trial_id for t in trials})

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._start(trial)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self._start(trial)  # a restored trial may report before Ray calls on_trial_start
        metrics = metrics_of(result)
        self.tracker.log(trial.trial_id, int(metrics.get("epoch", 0)), metrics)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, exit_code=0)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._start(trial)  # a trial that failed before its first result still gets a run
        self._finish(trial, exit_code=1)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.tracker.close()

    # -- helpers ---------------------------------------------------------------------------
    def _start(self, trial: Any) -> None:
        if not self.tracker.enabled or trial.trial_id in self.tracker.runs:
            return
        params = dict(trial.config or {})
        try:
            from sweeper.models import get_entry
            from sweeper.tracking import run_config

            config = run_config(self.spec, params)
            family = get_entry(str(config["model"])).family
        except Exception as exc:  # noqa: BLE001 - a config the trial itself will reject
            config, family = dict(params), self.spec.model.name
            self.tracker.warn(f"W&B config of trial {trial.trial_id}: {exc}")
        name = " ".join([trial.trial_id, *(f"{k}={v}" for k, v in params.items())])
        self.tracker.start(trial.trial_id, name[:120], config, job_type=family)

    def _finish(self, trial: Any, exit_code: int) -> None:
        if trial.trial_id in self.tracker.runs:
            self.tracker.finish(trial.trial_id, self._summary(trial.trial_id), exit_code)

    def _summary(self, trial_id: str) -> dict[str, Any]:
        """The trial's row of the study's table: final and best metrics, params, epochs, state.

        StudyCallback (earlier in the callback list) has already written the finished row.
        """
        try:
            df = self.study.trials()
            rows = df[df["trial_id"].astype(str) == trial_id].to_dict(orient="records")
        except Exception:  # noqa: BLE001
            rows = []
        if not rows:
            return {}
        row = rows[-1]
        summary: dict[str, Any] = {"state": str(row.get("state", "")), "trial_id": trial_id}
        for key, value in row.items():
            if key.startswith(PARAM_PREFIX) or key in BASE_COLUMNS:
                continue
            value = value.item() if hasattr(value, "item") else value  # numpy -> Python
            if isinstance(value, (int, float)) and math.isfinite(value):
                summary[key] = value
        summary["epochs"] = int(row.get("epochs") or 0)
        summary["wall_s"] = float(row.get("wall_s") or 0.0)
        error = row.get("error")
        if isinstance(error, str) and error:
            summary["error"] = error
        return summary
