"""Ray Tune's OptunaSearch over the spec's space, handing trials the values they receive.

The sampler draws shaped priors as quantiles (:mod:`sweeper.spec.distributions`); this
searcher decodes each draw before Ray records the trial's config, so the trial, its row
in the trial table, W&B and ``optuna.db`` all see the same value. It also holds W&B's
``metric.target``: once a trial reports a value at or beyond it, no new trial starts
(running trials finish), as a W&B sweep does. With several objectives (``spec.objectives``)
the sampler's study has one direction per objective and is told each trial's final values.
"""

from __future__ import annotations

from typing import Any

from optuna.trial import TrialState
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from sweeper.engine import optuna_private
from sweeper.registry.samplers import SAMPLERS
from sweeper.search.space import decode, distributions, make_sampler
from sweeper.spec import Spec


def _sampler(spec: Spec) -> Any:
    """The spec's sampler; with ``impute_while_running`` one that also learns from running
    trials' values (:mod:`sweeper.search.impute`; a grid or random sampler learns nothing)."""
    sampler = make_sampler(spec)
    learns = SAMPLERS.get(spec.sampler_name).learns
    if spec.metric.imputes_running and learns and not spec.objectives.multi:
        from sweeper.search.impute import RunningImputed

        return RunningImputed(sampler)
    return sampler


class SpecSearch(OptunaSearch):
    """OptunaSearch whose suggestions are decoded configs and which stops at the target."""

    def __init__(self, spec: Spec) -> None:
        optuna_private.check_ray()  # at the study's start, not at its first pruned trial
        objectives = spec.objectives
        multi = objectives.multi  # several: Ray's OptunaSearch takes lists (directions)
        super().__init__(
            space=distributions(spec),
            metric=objectives.names if multi else spec.metric.name,
            mode=objectives.modes if multi else spec.metric.mode,
            sampler=_sampler(spec),
        )
        self._spec = spec
        self.target_reached = False
        self._values: dict[str, list[float]] = {}  # each trial's reported metric (impute)
        self._pruned: set[str] = set()

    def mark_pruned(self, trial_id: str) -> None:
        """The spec's pruner stopped this trial: tell Optuna PRUNED when it completes."""
        self._pruned.add(trial_id)

    # Ray annotates Optional[Dict] but documents (and handles) Searcher.FINISHED, a str
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        if self.target_reached:
            return Searcher.FINISHED
        config = super().suggest(trial_id)
        return decode(self._spec, config) if isinstance(config, dict) else config

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        super().on_trial_result(trial_id, result)
        self._note(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        pruned = trial_id in getattr(self, "_pruned", ())
        if pruned and not optuna_private.told(self, trial_id):
            # Ray's OptunaSearch would tell COMPLETE with the last value: it was pruned
            ot_trial = optuna_private.trials(self)[trial_id]
            try:
                optuna_private.study(self).tell(ot_trial, state=TrialState.PRUNED)
            except RuntimeError:  # the grid sampler's study.stop() once the grid is done:
                pass  # told already; Ray's own tell swallows the same (it logs any error)
            optuna_private.mark_told(self, trial_id)
            return
        imputed = (
            self._spec.metric.imputed(getattr(self, "_values", {}).pop(trial_id, []))
            if error
            else None
        )
        if imputed is not None:  # W&B's impute: the sampler learns from the failed trial
            result, error = {self._spec.metric.name: imputed}, False
        super().on_trial_complete(trial_id, result, error)
        if result and not error:
            self._note(None, result)

    def _note(self, trial_id: str | None, result: dict[str, Any]) -> None:
        value = result.get(self._spec.metric.name)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return
        if trial_id is not None and self._spec.metric.impute is not None:
            self.__dict__.setdefault("_values", {}).setdefault(trial_id, []).append(float(value))
        if self._spec.metric.reached(float(value)):
            self.target_reached = True
