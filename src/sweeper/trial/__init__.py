"""One trial: ``train_trial(config, context) -> metrics`` (imports torch; never ray or wandb)."""

from __future__ import annotations

from sweeper.trial.config import SWEEPABLE_TRAIN_KEYS, TrialConfig, resolve_trial

__all__ = ["SWEEPABLE_TRAIN_KEYS", "TrialConfig", "resolve_trial"]
