"""Mirror finished trials into ``optuna.db`` so ``optuna.load_study`` (and optuna-dashboard)
open a study. Ray's OptunaSearch keeps the sampler's own state; this copy is a record.
"""

from __future__ import annotations

import logging
from typing import Any

from sweeper.space import distributions
from sweeper.spec import Spec

STATES = {"COMPLETE", "PRUNED", "FAIL"}


class OptunaMirror:
    """Adds each finished trial to an Optuna study in the study folder's SQLite file."""

    def __init__(self, url: str, spec: Spec) -> None:
        import optuna

        optuna.logging.set_verbosity(logging.WARNING)
        self._optuna = optuna
        self._dists = distributions(spec)
        self._metric = spec.metric.name
        self.study = optuna.create_study(
            storage=url,
            study_name=spec.name,
            direction=spec.metric.goal,
            load_if_exists=True,
        )
        self._recorded = {
            t.user_attrs.get("trial_id") for t in self.study.get_trials(deepcopy=False)
        }

    def record(
        self,
        trial_id: str,
        state: str,
        params: dict[str, Any],
        metrics: dict[str, Any],
        curve: dict[int, float],
    ) -> None:
        """Add one finished trial (once; a second call for the same id does nothing)."""
        if trial_id in self._recorded or state not in STATES:
            return
        ot = self._optuna
        value = metrics.get(self._metric)
        ok = state == "COMPLETE" and value is not None and value == value  # not NaN
        frozen = ot.trial.create_trial(
            params={k: v for k, v in params.items() if k in self._dists},
            distributions={k: d for k, d in self._dists.items() if k in params},
            value=float(value) if ok else None,
            state=getattr(ot.trial.TrialState, state if ok or state != "COMPLETE" else "FAIL"),
            intermediate_values={e: v for e, v in curve.items() if v == v},
            user_attrs={"trial_id": trial_id, **_scalars(metrics)},
        )
        self.study.add_trial(frozen)
        self._recorded.add(trial_id)


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
