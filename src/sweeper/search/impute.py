"""W&B's ``metric.impute_while_running``: the sampler sees running trials' values so far.

W&B's Bayesian search (``wandb/sweeps`` ``bayes_search.py``) adds each running run to its
observations with the run's metric extremum (its best value so far) when the sweep sets
``impute_while_running``. :class:`RunningImputed` wraps an Optuna sampler so that it
does the same: while it samples, every running trial that has reported an intermediate
value (Ray's OptunaSearch reports each result) appears to it as finished with its best
value so far. The study itself is unchanged: the trial is told its real value when it
ends. A running trial with no value yet stays running (Optuna's TPE and GP samplers keep
away from its config on their own). Single objective only: Ray reports no intermediate
values for several.
"""

from __future__ import annotations

import copy
from collections.abc import Container, Sequence
from typing import Any

from optuna.samplers import BaseSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState


def _best(trial: FrozenTrial, maximize: bool) -> float | None:
    values = [v for v in trial.intermediate_values.values() if v == v]
    if not values:
        return None
    return max(values) if maximize else min(values)


def running_as_finished(trials: list[FrozenTrial], maximize: bool) -> list[FrozenTrial]:
    """``trials`` with each running trial that has a value shown as COMPLETE with its best."""
    out = []
    for trial in trials:
        best = _best(trial, maximize) if trial.state == TrialState.RUNNING else None
        if best is not None:
            trial = copy.copy(trial)
            trial.state = TrialState.COMPLETE
            trial.values = [best]
        out.append(trial)
    return out


class _ImputedStudy:
    """The study as the wrapped sampler sees it (everything else is the real study's)."""

    def __init__(self, study: Study) -> None:
        self._study = study
        self._maximize = study.direction == StudyDirection.MAXIMIZE

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        trials = self._study._get_trials(deepcopy=deepcopy, states=None, use_cache=False)
        shown = running_as_finished(trials, self._maximize)
        return [t for t in shown if states is None or t.state in states]

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return self._get_trials(deepcopy=deepcopy, states=states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


class RunningImputed(BaseSampler):
    """An Optuna sampler that also learns from running trials' best values so far."""

    def __init__(self, sampler: BaseSampler) -> None:
        self.sampler = sampler

    def _view(self, study: Study) -> Any:
        return study if study._is_multi_objective() else _ImputedStudy(study)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        return self.sampler.infer_relative_search_space(self._view(study), trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, Any]
    ) -> dict[str, Any]:
        return self.sampler.sample_relative(self._view(study), trial, search_space)

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: Any
    ) -> Any:
        return self.sampler.sample_independent(
            self._view(study), trial, param_name, param_distribution
        )

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.sampler.before_trial(study, trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.sampler.reseed_rng()
