"""The Ray Tune function trainable: a thin adapter around ``train_trial``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

STATE_FILE = "state.pt"


def ray_trainable(config: dict[str, Any], spec: Any, data: Any, cpus: float = 1) -> None:
    """Run one trial inside a Ray worker: resolve its config, restore, train, report."""
    import torch
    from ray import tune

    from sweeper.trial import resolve_trial
    from sweeper.trial.loop import TrialContext, train_trial

    cfg = resolve_trial(spec, config)
    restore = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            restore = torch.load(Path(folder) / STATE_FILE, map_location="cpu")

    def report(metrics: dict[str, Any], state_fn: Any) -> None:
        if state_fn is None:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            torch.save(state_fn(), Path(folder) / STATE_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    train_trial(
        cfg, TrialContext(data=data, report=report, restore=restore, num_threads=int(max(1, cpus)))
    )
