"""sweeper: hyperparameter sweeps for PyTorch on Ray Tune and Optuna.

``sweeper.run``, ``sweeper.open_study``, ``sweeper.check`` and ``sweeper.Study`` are the
Python API (:mod:`sweeper.api`); they are imported on first use, so ``import sweeper``
stays cheap (no torch, ray or pandas).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from sweeper.errors import SpecError, SweeperError

_API = ("Report", "Study", "check", "open_study", "run")


def __getattr__(name: str) -> Any:
    if name in _API:
        import sweeper.api

        return getattr(sweeper.api, name)
    raise AttributeError(f"module 'sweeper' has no attribute {name!r}")


__all__ = [
    "Report",
    "SpecError",
    "Study",
    "SweeperError",
    "__version__",
    "check",
    "open_study",
    "run",
]
