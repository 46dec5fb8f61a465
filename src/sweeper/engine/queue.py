"""What every sweeper scheduler shares: the time attribute and the queue of runnable trials.

Ray's ``FIFOScheduler.choose_trial_to_run`` passes over every trial; :class:`RunnableQueue`
keeps the trials that may still run, so choosing the next one does not grow with the study.
"""

from __future__ import annotations

from typing import Any

from ray.tune.experiment import Trial

TIME_ATTR = "epoch"  # the trial's own count: it survives a restart

_ENDED = (Trial.TERMINATED, Trial.ERROR)


class RunnableQueue:
    """Mixed in before a :class:`FIFOScheduler`: the trials that may still be run."""

    def _queue(self) -> dict[str, Any]:
        if not hasattr(self, "_runnable"):
            self._runnable: dict[str, Any] = {}
        return self._runnable

    # A mixin: the Ray scheduler's methods come next in the MRO (the ignores below).
    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_add(tune_controller, trial)  # type: ignore[misc]
        self._queue()[trial.trial_id] = trial

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        super().on_trial_complete(tune_controller, trial, result)  # type: ignore[misc]
        self._queue().pop(trial.trial_id, None)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_remove(tune_controller, trial)  # type: ignore[misc]
        self._queue().pop(trial.trial_id, None)

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        queue = self._queue()
        for trial_id in [t for t, trial in queue.items() if trial.status in _ENDED]:
            del queue[trial_id]  # ended some other way (an error)
        for status in (Trial.PENDING, Trial.PAUSED):
            for trial in queue.values():
                if trial.status == status:
                    return trial
        return None
