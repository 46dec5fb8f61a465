"""The engine: Ray Tune runs the trials, OptunaSearch chooses them (imports ray lazily)."""

from __future__ import annotations

from sweeper.engine.tune import RunResult, run_study

__all__ = ["RunResult", "run_study"]
