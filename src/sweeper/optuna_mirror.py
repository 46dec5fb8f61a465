"""Mirror ended trials into ``optuna.db`` so ``optuna.load_study`` (and optuna-dashboard)
open a study. Ray's OptunaSearch keeps the sampler's own state; this copy is a record.

A trial's Optuna state follows :mod:`sweeper.states`: a result (COMPLETE with a finite
metric) is COMPLETE with its value, PRUNED stays PRUNED, and anything else ended (FAIL, or
COMPLETE without a finite metric) is FAIL.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sweeper.space import recorded_distributions
from sweeper.spec import Spec
from sweeper.states import TrialState, is_result, metric_value


class OptunaMirror:
    """Adds each ended trial, once, to an Optuna study in the storage at ``url``."""

    def __init__(self, url: str, spec: Spec) -> None:
        import optuna

        optuna.logging.set_verbosity(logging.WARNING)
        self._optuna = optuna
        self._dists = recorded_distributions(spec)
        self._metric = spec.metric.name
        self.study = optuna.create_study(
            storage=url,
            study_name=spec.name,
            direction=spec.metric.goal,
            load_if_exists=True,
        )
        self.recorded = [
            t.user_attrs.get("trial_id") for t in self.study.get_trials(deepcopy=False)
        ]
        self._seen = set(self.recorded)

    def record(
        self, trial_id: str, params: dict[str, Any], row: Mapping[str, Any], curve: dict[int, float]
    ) -> None:
        """Add one ended trial (once; a second call for the same id does nothing)."""
        state = TrialState.of(row.get("state"))
        if trial_id in self._seen or not state.ended:
            return
        ot = self._optuna
        ok = is_result(row, self._metric)
        final = "COMPLETE" if ok else ("PRUNED" if state is TrialState.PRUNED else "FAIL")
        frozen = ot.trial.create_trial(
            params={k: v for k, v in params.items() if k in self._dists},
            distributions={k: d for k, d in self._dists.items() if k in params},
            value=metric_value(row, self._metric) if ok else None,
            state=getattr(ot.trial.TrialState, final),
            intermediate_values={e: v for e, v in curve.items() if v == v},
            user_attrs={"trial_id": trial_id, **_scalars(row)},
        )
        self.study.add_trial(frozen)
        self._seen.add(trial_id)
        self.recorded.append(trial_id)

    def close(self) -> None:
        """Close the database connections (Optuna caches its RDB storage)."""
        storage = getattr(self.study, "_storage", None)
        storage = getattr(storage, "_backend", storage)
        engine = getattr(storage, "engine", None)
        if engine is not None:
            engine.dispose()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def synced_mirror(path: Path, spec: Spec, book: Any) -> OptunaMirror:
    """The study's mirror holding exactly the book's ended rows, each once.

    A mirror that holds a trial the book no longer has (dropped on resume), or one trial
    twice, is rebuilt in a new file renamed over the old one; missing trials are added.
    """
    ended = [t for t, r in book.rows.items() if TrialState.of(r["state"]).ended]
    mirror = OptunaMirror(sqlite_url(path), spec)
    recorded = mirror.recorded
    if set(recorded) - set(ended) or len(recorded) != len(set(recorded)):
        mirror.close()
        tmp = path.with_name(f".{path.name}.rebuild")
        tmp.unlink(missing_ok=True)
        mirror = OptunaMirror(sqlite_url(tmp), spec)
        _record_all(mirror, book, ended)
        mirror.close()
        os.replace(tmp, path)
        mirror = OptunaMirror(sqlite_url(path), spec)
    _record_all(mirror, book, ended)
    return mirror


def _record_all(mirror: OptunaMirror, book: Any, ended: list[str]) -> None:
    for trial_id in sorted(ended, key=lambda t: int(book.rows[t].get("number", 0))):
        mirror.record(
            trial_id, book.params(trial_id), book.rows[trial_id], book.curves.get(trial_id, {})
        )


# Per-class and per-repeat columns stay in the trial table: each user attribute is a row
# (and most of the cost of adding a trial) in Optuna's database.
_DETAIL = re.compile(r"(_class\d+|_r\d+|_std)$")


def _scalars(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: (v.value if isinstance(v, TrialState) else v)
        for k, v in row.items()
        if isinstance(v, (int, float, str, bool))
        and not k.startswith("config/")
        and not _DETAIL.search(k)
    }
