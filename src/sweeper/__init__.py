"""sweeper: hyperparameter sweeps for PyTorch on Ray Tune and Optuna."""

from __future__ import annotations

__version__ = "0.1.0"

from sweeper.errors import SpecError, SweeperError

__all__ = ["SpecError", "SweeperError", "__version__"]
