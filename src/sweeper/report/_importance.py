"""Parameter importance with Optuna's fANOVA, from the study's Optuna mirror."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def importance(storage: str | Path, study_name: str, seed: int = 0) -> tuple[pd.Series | None, str]:
    """fANOVA importance of each swept parameter (summing to 1), or None and why not.

    ``storage`` is the mirror's real URL, or the path of an ``optuna.db``.

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
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        varying = {
            k for t in done for k in t.params if len({str(u.params.get(k)) for u in done}) > 1
        }
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
    return series.sort_values(ascending=False), (
        f"Optuna fANOVA over {len(done)} finished trials (importances sum to 1)"
    )
