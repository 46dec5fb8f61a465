"""Every read of Ray Tune's OptunaSearch's private state, behind one check of Ray's version.

Ray's ``OptunaSearch`` (``ray/tune/search/optuna/optuna_search.py``) has no public handle on
what sweeper's pruners (:mod:`.pruning`) and searcher (:mod:`.search`) need: the
``optuna.Study`` it asks and tells (``_ot_study``), each Ray trial's ``optuna.Trial``
(``_ot_trials``, trial id -> trial) and the ids of the trials it already told
(``_completed_trials``). sweeper reads them here and nowhere else, written for Ray
:data:`~sweeper.engine.snapshot.TESTED_RAY` (the minor pyproject.toml pins): with another Ray
every function here raises a :class:`~sweeper.errors.SweeperError` naming this module, never
a late ``AttributeError`` mid-study. (:mod:`.snapshot` reads ``_ot_trials`` from Ray's pickled
searcher state on disk, under the same pin.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sweeper.engine.snapshot import TESTED_RAY
from sweeper.errors import SweeperError

if TYPE_CHECKING:
    import optuna

PRIVATE = ("_ot_study", "_ot_trials", "_completed_trials")
"""The attributes of Ray's OptunaSearch this module reads."""


def check_ray(version: str | None = None) -> None:
    """Raise unless ``version`` (default: the installed Ray's) is Ray ``TESTED_RAY``.x."""
    if version is None:
        import ray

        version = str(ray.__version__)
    if ".".join(version.split(".")[:2]) != TESTED_RAY:
        raise SweeperError(
            f"sweeper.engine.optuna_private reads Ray {TESTED_RAY}'s private OptunaSearch state "
            f"({', '.join(PRIVATE)}), but Ray {version} is installed: install "
            f"ray=={TESTED_RAY}.* (pyproject.toml's pin) or update that module for Ray {version}"
        )


def is_optuna_search(searcher: Any) -> bool:
    """Whether ``searcher`` is an OptunaSearch that has set up its study."""
    return all(hasattr(searcher, name) for name in PRIVATE)


def optuna_searcher(tune_controller: Any) -> Any:
    """The OptunaSearch behind Ray's search generator (and its concurrency limiter)."""
    check_ray()
    searcher = getattr(tune_controller.search_alg, "searcher", None)
    while searcher is not None and not is_optuna_search(searcher):
        searcher = getattr(searcher, "searcher", None)
    if searcher is None:
        raise SweeperError(
            "sweeper.engine.optuna_private: no OptunaSearch with "
            f"{', '.join(PRIVATE)} behind Ray Tune's search algorithm"
        )
    return searcher


def _private(searcher: Any, name: str) -> Any:
    check_ray()
    value = getattr(searcher, name, None)
    if value is None:
        raise SweeperError(
            f"sweeper.engine.optuna_private: Ray's {type(searcher).__name__} has no {name} "
            f"(or not yet: its study is made when Tune sets the searcher up)"
        )
    return value


def study(searcher: Any) -> optuna.Study:
    """The ``optuna.Study`` the searcher asks and tells."""
    return _private(searcher, "_ot_study")


def trials(searcher: Any) -> dict[str, optuna.Trial]:
    """The searcher's Optuna trials by Ray trial id (its own dict: not to be changed)."""
    return _private(searcher, "_ot_trials")


def told(searcher: Any, trial_id: str) -> bool:
    """Whether the searcher has told Optuna the trial's end."""
    return trial_id in _private(searcher, "_completed_trials")


def mark_told(searcher: Any, trial_id: str) -> None:
    """Record the trial's end as told, so the searcher does not tell it again."""
    _private(searcher, "_completed_trials").add(trial_id)
