"""Optuna's genetic samplers (NSGA-II, NSGA-III), picklable with every Optuna sweeper allows.

Ray Tune pickles the search algorithm, sampler included, into the study's ``tune/`` folder
(``tuner.pkl`` when a study starts, the searcher's state at each snapshot; ``sweeper
resume`` reads both). Optuna 5.1 gave the genetic samplers' base class a ``threading.Lock``
(``BaseGASampler._thread_lock``) and no ``__getstate__``, so pickling them fails ("cannot
pickle '_thread.lock' object") and a study with ``sampler: nsga2`` could not start. These
subclasses leave the lock out of the pickle and make a new one when loaded; with Optuna
5.0, which has no such lock, they change nothing.
"""

from __future__ import annotations

import threading
from typing import Any

import optuna


class _FreshLock:
    """Pickles without ``_thread_lock``; a loaded copy gets a lock of its own."""

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_thread_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()  # unused before Optuna 5.1


class NSGAIISampler(_FreshLock, optuna.samplers.NSGAIISampler):
    """Optuna's NSGAIISampler that Ray Tune can pickle."""


class NSGAIIISampler(_FreshLock, optuna.samplers.NSGAIIISampler):
    """Optuna's NSGAIIISampler that Ray Tune can pickle."""
