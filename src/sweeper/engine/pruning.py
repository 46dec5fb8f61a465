"""Optuna's pruners inside Ray Tune: a FIFO scheduler that asks the trial's Optuna trial.

Ray's OptunaSearch holds the ``optuna.Study`` (ask and tell) and each Ray trial's Optuna
trial. On every result this scheduler reports the metric at the trial's epoch to that
Optuna trial and asks ``should_prune()`` of the study's pruner (the spec's, set on the
study here); a trial to prune is stopped (Ray's ``STOP``) and the searcher told, so it
tells Optuna PRUNED. The study folder's rule agrees: a trial stopped before its planned
epochs is PRUNED (``store/book.py``).

OptunaSearch's study and trials are private: read through :mod:`.optuna_private`, which
checks Ray's version and fails loudly on another Ray.
"""

from __future__ import annotations

import math
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from sweeper.engine import optuna_private
from sweeper.engine.queue import RunnableQueue


class OptunaPruning(RunnableQueue, FIFOScheduler):
    """Stops a trial when the spec's Optuna pruner prunes its Optuna trial.

    Args:
        pruner: the ``optuna.pruners.BasePruner`` to set on the searcher's study.
        metric: the result key reported to Optuna at each step.
        epochs: the trials' planned epochs (a config's own ``epochs`` wins).
        time_attr: the result key that is the step (the trial's own epoch count).
    """

    def __init__(self, pruner: Any, metric: str, epochs: int, time_attr: str = "epoch") -> None:
        optuna_private.check_ray()  # at the study's start, not at its first result
        super().__init__()
        self._pruner = pruner
        self._epochs = epochs
        self._prune_metric = metric
        self._time_attr = time_attr

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        value, step = result.get(self._prune_metric), result.get(self._time_attr)
        if not isinstance(value, (int, float)) or not math.isfinite(value) or step is None:
            return TrialScheduler.CONTINUE
        searcher = optuna_private.optuna_searcher(tune_controller)
        ot_trial = optuna_private.trials(searcher).get(trial.trial_id)
        if ot_trial is None:
            return TrialScheduler.CONTINUE  # not the searcher's (restored after a kill)
        optuna_private.study(searcher).pruner = self._pruner
        ot_trial.report(float(value), int(step))
        if int(step) >= int((trial.config or {}).get("epochs", self._epochs)):
            return TrialScheduler.CONTINUE  # its last epoch: complete, not pruned
        if ot_trial.should_prune():
            mark = getattr(searcher, "mark_pruned", None)
            if mark is not None:
                mark(trial.trial_id)
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE
