"""Parameter importance with Optuna's fANOVA, from the study's Optuna mirror.

A large study's importance is computed on a random sample of its finished trials, read
from the database by their ids (no Optuna storage opened, no 50,000 trials loaded), with a
smaller forest: seconds at any size, and the page says so.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pandas as pd

# Above this many finished trials, importance is computed on a random sample of this size,
# by a forest of SAMPLE_TREES trees (Optuna's default, 64, for the whole of a smaller study).
SAMPLE = 300
SAMPLE_TREES = 16


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

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        done, total, study = _finished(storage, study_name, seed)
        trees = {} if total == len(done) else {"n_trees": SAMPLE_TREES}
        varying = varying_params(done)
        if len(done) < 2 or not varying:
            return None, "parameter importance needs at least 2 finished trials that differ"
        values = get_param_importances(
            study, evaluator=FanovaImportanceEvaluator(seed=seed, **trees), params=sorted(varying)
        )
    except Exception as exc:  # noqa: BLE001 - a report section, not a reason to fail
        return None, f"parameter importance unavailable: {type(exc).__name__}: {exc}"
    series = pd.Series({k: float(v) for k, v in values.items()}, name="importance")
    over = (
        f"a random sample of {len(done):,} of the {total:,} finished trials ({SAMPLE_TREES} trees)"
        if total > len(done)
        else f"{total} finished trials"
    )
    return series.sort_values(ascending=False), (
        f"Optuna fANOVA over {over} (importances sum to 1)"
    )


def _finished(url: str, name: str, seed: int) -> tuple[list[Any], int, Any]:
    """The COMPLETE trials fANOVA reads, how many the study has, and a study holding them.

    A database study of more than :data:`SAMPLE` of them gives a random sample, read by id
    (:func:`_sample`); any other study is loaded by Optuna as it is."""
    import optuna

    from sweeper.mirror.storage import close_storage, open_storage, scheme_of

    if scheme_of(url) != "journal":
        sampled = _sample(url, name, seed)
        if sampled is not None:
            done, total, width = sampled
            study = optuna.create_study(directions=["minimize"] * width)
            study.add_trials(done)
            return done, total, study
    opened = open_storage(url)
    try:
        study = optuna.load_study(study_name=name, storage=opened)
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if len(done) <= SAMPLE:
            return done, len(done), study
        sample = random.Random(seed).sample(done, SAMPLE)
        small = optuna.create_study(directions=study.directions)
        small.add_trials(sample)
        return sample, len(done), small
    finally:
        close_storage(opened)


def _sample(url: str, name: str, seed: int) -> tuple[list[Any], int, int] | None:
    """A random :data:`SAMPLE` of a database study's COMPLETE trials, their total and the
    number of objectives; None when the study is no larger (or not there)."""
    import sqlalchemy as sa

    from sweeper.mirror.storage import CONNECT_TIMEOUT_S, scheme_of, sqlalchemy_url

    timeout = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    engine = sa.create_engine(
        sqlalchemy_url(url), **({} if scheme_of(url) == "sqlite" else timeout)
    )
    try:
        with engine.connect() as conn:
            study_id = conn.execute(
                sa.text("SELECT study_id FROM studies WHERE study_name = :name"), {"name": name}
            ).scalar()
            if study_id is None:
                return None
            query = "SELECT trial_id FROM trials WHERE study_id = :id AND state = 'COMPLETE'"
            ids = [row[0] for row in conn.execute(sa.text(query), {"id": study_id})]
            if len(ids) <= SAMPLE:
                return None
            width = conn.execute(
                sa.text("SELECT COUNT(*) FROM study_directions WHERE study_id = :id"),
                {"id": study_id},
            ).scalar_one()
            sample = sorted(random.Random(seed).sample(ids, SAMPLE))
            return _load(conn, sample), len(ids), int(width)
    finally:
        engine.dispose()


def _load(conn: Any, ids: list[int]) -> list[Any]:
    """The trials ``ids`` (params and values: what fANOVA reads) in two queries."""
    import optuna
    import sqlalchemy as sa
    from optuna.distributions import json_to_distribution

    params: dict[int, dict[str, Any]] = {i: {} for i in ids}
    dists: dict[int, dict[str, Any]] = {i: {} for i in ids}
    values: dict[int, list[float]] = {i: [] for i in ids}
    bind: Any = sa.bindparam("ids", expanding=True)
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
