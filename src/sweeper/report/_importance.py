"""Parameter importance with Optuna's fANOVA, from the study's Optuna mirror."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pandas as pd

# Above this many finished trials, importance is computed on a random sample of this size.
SAMPLE = 300


def importance(storage: str | Path, study_name: str, seed: int = 0) -> tuple[pd.Series | None, str]:
    """fANOVA importance of each swept parameter (summing to 1), or None and why not.

    ``storage`` is the mirror's real URL, or the path of an ``optuna.db``. A study of more
    than :data:`SAMPLE` finished trials is sampled (the note says so).

    Returns:
        ``(importances, note)``: a Series indexed by parameter, largest first, and a line
        saying what it was computed from (or why it could not be).
    """
    if isinstance(storage, Path):
        if not storage.is_file():
            return None, f"no Optuna study at {storage}"
        storage = f"sqlite:///{storage.resolve()}"
    try:
        import optuna
        from optuna.importance import FanovaImportanceEvaluator, get_param_importances
    except ImportError as exc:  # scikit-learn is what fANOVA needs beyond optuna
        return None, f"parameter importance needs optuna and scikit-learn ({exc})"
    from sweeper.optuna_storage import close_storage, open_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    opened = None
    try:
        opened = open_storage(storage)
        study = optuna.load_study(study_name=study_name, storage=opened)
        done, total = _finished(opened, study, study_name, seed)
        if total > len(done):  # fANOVA's forest on a sample: seconds, whatever the size
            study = optuna.create_study(directions=study.directions)
            study.add_trials(done)
        varying = varying_params(done)
        if len(done) < 2 or not varying:
            return None, "parameter importance needs at least 2 finished trials that differ"
        values = get_param_importances(
            study, evaluator=FanovaImportanceEvaluator(seed=seed), params=sorted(varying)
        )
    except Exception as exc:  # noqa: BLE001 - a report section, not a reason to fail
        return None, f"parameter importance unavailable: {type(exc).__name__}: {exc}"
    finally:
        if opened is not None:
            close_storage(opened)
    series = pd.Series({k: float(v) for k, v in values.items()}, name="importance")
    over = (
        f"a random sample of {len(done):,} of the {total:,} finished trials"
        if total > len(done)
        else f"{total} finished trials"
    )
    return series.sort_values(ascending=False), (
        f"Optuna fANOVA over {over} (importances sum to 1)"
    )


def _finished(storage: Any, study: Any, name: str, seed: int) -> tuple[list[Any], int]:
    """The study's COMPLETE trials (a random :data:`SAMPLE` of them when there are more)
    and how many there are. A database is asked for their ids only, then for the sample's
    trials: loading 50,000 trials would take a minute."""
    import optuna

    complete = optuna.trial.TrialState.COMPLETE
    engine = getattr(storage, "engine", None)
    if engine is None:  # a journal: replayed whole anyway
        done = study.get_trials(deepcopy=False, states=(complete,))
        total = len(done)
        if total > SAMPLE:
            done = random.Random(seed).sample(done, SAMPLE)
        return done, total
    import sqlalchemy as sa

    query = sa.text("SELECT trial_id FROM trials WHERE study_id = :id AND state = 'COMPLETE'")
    with engine.connect() as conn:
        study_id = storage.get_study_id_from_name(name)
        ids = [row[0] for row in conn.execute(query, {"id": study_id})]
    if len(ids) <= SAMPLE:
        return study.get_trials(deepcopy=False, states=(complete,)), len(ids)
    sample = sorted(random.Random(seed).sample(ids, SAMPLE))
    return _load(engine, sample), len(ids)


def _load(engine: Any, ids: list[int]) -> list[Any]:
    """The trials ``ids`` (params and values: what fANOVA reads) in two queries."""
    import optuna
    import sqlalchemy as sa
    from optuna.distributions import json_to_distribution

    params: dict[int, dict[str, Any]] = {i: {} for i in ids}
    dists: dict[int, dict[str, Any]] = {i: {} for i in ids}
    values: dict[int, list[float]] = {i: [] for i in ids}
    bind = sa.bindparam("ids", expanding=True)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT trial_id, param_name, param_value, distribution_json FROM trial_params"
                " WHERE trial_id IN :ids"
            ).bindparams(bind),
            {"ids": ids},
        )
        for tid, name, value, dist_json in rows:
            dist = json_to_distribution(dist_json)
            dists[tid][name] = dist
            params[tid][name] = dist.to_external_repr(value)
        rows = conn.execute(
            sa.text(
                "SELECT trial_id, value FROM trial_values WHERE trial_id IN :ids"
                " ORDER BY trial_id, objective"
            ).bindparams(bind),
            {"ids": ids},
        )
        for tid, value in rows:
            values[tid].append(float(value))
    return [
        optuna.trial.create_trial(params=params[i], distributions=dists[i], values=values[i])
        for i in ids
        if values[i]
    ]


def varying_params(trials: list) -> set[str]:
    """Parameters that take at least two values among ``trials`` (one pass over them)."""
    seen: dict[str, set[str]] = {}
    for t in trials:
        for k, v in t.params.items():
            seen.setdefault(k, set()).add(str(v))
    return {k for k, values in seen.items() if len(values) > 1}
