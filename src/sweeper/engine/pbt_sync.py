"""Ray Tune's PBT and PB2 made safe to resume (Ray 2.60), synchronous mode above all.

Ray does not save a scheduler with the experiment: ``sweeper resume`` rebuilds PBT fresh
(no perturbation yet, the first sync time) while the restored trials come back at their
checkpointed epochs. Two things then stall a study, and both are fixed here:

- A restarted trial first reports its checkpoint's result again (``engine/trainable.py``:
  the driver may have missed it). PBT took that old epoch as new: in synchronous mode it
  paused the trial at once and, with the next sync still ahead, picked it to run again,
  which restored the same checkpoint and reported the same epoch, forever. A result no
  later than the last one PBT took from the trial now just continues.
- ``synch: true`` sets the next sync time to ``max(next + interval, latest trial time)``:
  when every trial is back at the same epoch past the first sync time, the next equals
  their time, no paused trial is below it, and Ray Tune waits forever
  (ray-project/ray#48616, not in 2.60). The next sync time now is past the latest one.

A third is not about resume: a bottom trial exploited while the save of its sync epoch is
still in flight is stopped by Ray with a STOP cached for that save, which then ends the
copy one epoch later (:meth:`_ResumeSafe._exploit`).

A fourth: synchronous PBT syncs on the result of the last trial to reach the sync time.
When that trial fails (or ends) instead, the others stay paused at the sync, none is below
it, and Ray Tune waits forever with nothing running. The sync now happens as soon as every
live trial is paused at it (:meth:`_ResumeSafe.choose_trial_to_run`), so a failed trial
shows as a failure, not as a study that never ends.

Reads PBT's private ``_synch``, ``_time_attr``, ``_perturbation_interval``,
``_next_perturbation_sync`` and ``_trial_state`` and calls its private ``_quantiles`` and
``_checkpoint_or_exploit``, all checked when the scheduler is made, and reads the trial's
``temporary_state.saving_to`` (Ray 2.60).
"""

from __future__ import annotations

from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler
from ray.tune.schedulers.pb2 import PB2

_PRIVATE = (
    "_synch",
    "_time_attr",
    "_perturbation_interval",
    "_next_perturbation_sync",
    "_trial_state",
    "_quantiles",
    "_checkpoint_or_exploit",
)


class _ResumeSafe:
    """The two fixes (see the module) over Ray's PBT rules."""

    # PBT's private state (_PRIVATE), declared for type checkers; Ray's class sets it.
    _synch: bool
    _time_attr: str
    _perturbation_interval: float
    _next_perturbation_sync: float
    _trial_state: dict[Any, Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        missing = [a for a in _PRIVATE if not hasattr(self, a)]
        if missing:  # pragma: no cover - a Ray upgrade
            raise RuntimeError(
                f"Ray Tune's PopulationBasedTraining has no {', '.join(missing)}: "
                "sweeper's PBT resume fixes are written for Ray 2.60"
            )

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        state = self._trial_state.get(trial)
        time = result.get(self._time_attr)
        if state is not None and isinstance(time, (int, float)) and time <= state.last_train_time:
            return TrialScheduler.CONTINUE  # a restarted trial's restored result, again
        before = self._next_perturbation_sync
        # a mixin: PBT's (or PB2's) method is next in the MRO
        decision = super().on_trial_result(tune_controller, trial, result)  # type: ignore[misc]
        if self._synch and self._next_perturbation_sync != before:  # a sync just happened
            self._past_latest(tune_controller)
        return decision

    def _past_latest(self, tune_controller: Any) -> None:
        trials = tune_controller.get_trials()
        latest = max(self._trial_state[t].last_train_time for t in trials)
        if self._next_perturbation_sync <= latest:
            self._next_perturbation_sync = latest + self._perturbation_interval

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        """Ray's choice; in synchronous mode, when every live trial waits paused at the
        sync (the last one to come failed or ended), the sync first, as Ray's result rule
        does it when the last one reports."""
        chosen = super().choose_trial_to_run(tune_controller)  # type: ignore[misc]
        if chosen is not None or not self._synch:
            return chosen
        live = tune_controller.get_live_trials()
        waiting = [
            t
            for t in live
            if t.status == Trial.PAUSED
            and self._trial_state[t].last_train_time >= self._next_perturbation_sync
        ]
        if not live or len(waiting) < len(live):
            return None  # a trial still runs (its result syncs) or none is left
        lower, upper = self._quantiles()  # type: ignore[attr-defined]
        middle = [t for t in tune_controller.get_trials() if t not in lower and t not in upper]
        time = max(self._trial_state[t].last_train_time for t in live)
        for t in upper + middle + lower:  # the strong ones saved before the weak copy them
            self._trial_state[t].last_perturbation_time = time
            self._checkpoint_or_exploit(t, tune_controller, upper, lower)  # type: ignore[attr-defined]
        self._next_perturbation_sync += self._perturbation_interval
        self._past_latest(tune_controller)
        return super().choose_trial_to_run(tune_controller)  # type: ignore[misc]

    def _exploit(self, tune_controller: Any, trial: Any, trial_to_clone: Any) -> None:
        """Ray's exploit, without the stale STOP a save in flight left behind.

        A trial still running here has just reported its sync epoch and is saving it on
        the way to its pause. Ray pauses it without that save (its result is discarded,
        the copy replaces the state), but its stop, seeing the save, caches a STOP for
        when the save resolves; none will, so the STOP waits for the copy's next save
        and ends the trial then, an epoch after the copy (sweeper shows it PRUNED, and
        synchronous PBT may wait for it forever). With the save dropped first, the stop
        caches nothing.
        """
        if trial.status != Trial.PAUSED and trial.is_saving:
            trial.temporary_state.saving_to = None
        super()._exploit(tune_controller, trial, trial_to_clone)  # type: ignore[misc]  # a mixin: PBT is next in the MRO


class SyncedPBT(_ResumeSafe, PopulationBasedTraining):
    """Ray's PopulationBasedTraining, safe to resume."""


class SyncedPB2(_ResumeSafe, PB2):
    """Ray's PB2, safe to resume."""


CLASSES = {"pbt": SyncedPBT, "pb2": SyncedPB2}
