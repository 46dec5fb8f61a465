"""Experiment tracking: one W&B run per trial (offline by default), read back, synced.

Nothing here imports wandb at import time; the tracker imports it on its first run.
"""

from __future__ import annotations

from sweeper.sinks.wandb.sync import offline_run_dirs, sync_runs
from sweeper.sinks.wandb.runs import (
    MODES,
    TrackerSettings,
    WandbTracker,
    config_value,
    run_config,
    run_id,
)

__all__ = [
    "MODES",
    "TrackerSettings",
    "WandbTracker",
    "config_value",
    "offline_run_dirs",
    "run_config",
    "run_id",
    "sync_runs",
]
