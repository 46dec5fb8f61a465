"""The Ray Tune function trainable: a thin adapter around ``train_trial``.

Each epoch's checkpoint (``state.pt``) holds the trial's state *and* the metrics reported
with it. On a restart the trial continues from the newest readable checkpoint, whether it is
the one in Ray's experiment snapshot or a later one found in the trial's folder (a driver
killed after a checkpoint was written but before Ray's snapshot named it, or after Ray had
already deleted the older checkpoint the snapshot names). A checkpoint newer than Ray's is
reported once more first (its result may have died with the driver; the study keeps each
epoch once), so no epoch is trained twice and none is missing from the history. A trial
whose checkpoint is its final epoch trains nothing. Every start is logged to
``starts.jsonl`` in the trial's folder (``{"time", "pid", "epoch", "checkpoint"}``).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

STATE_FILE = "state.pt"
STARTS_FILE = "starts.jsonl"
# In a checkpoint folder that resume recreated (Ray had deleted it): the epoch Ray knew.
RAY_EPOCH_FILE = "ray_epoch.json"


def ray_trainable(config: dict[str, Any], spec: Any, data: Any, cpus: float = 1) -> None:
    """Run one trial inside a Ray worker: resolve its config, restore, train, report."""
    import torch
    from ray import tune

    from sweeper.trial import resolve_trial
    from sweeper.trial.loop import TrialContext, train_trial

    cfg = resolve_trial(spec, config)
    trial_dir = _trial_dir()
    ray_checkpoint = tune.get_checkpoint()
    restore, folder = newest_checkpoint(ray_checkpoint, trial_dir)
    start_epoch = int(restore["epoch"]) if restore is not None else 0
    _log_start(trial_dir, start_epoch, folder.name if folder else None)

    def report(metrics: dict[str, Any], state_fn: Any) -> None:
        if state_fn is None:
            tune.report(metrics)
            return
        _report_state({**state_fn(), "metrics": dict(metrics)})

    def _report_state(state: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(state, Path(tmp) / STATE_FILE)
            tune.report(state["metrics"], checkpoint=tune.Checkpoint.from_directory(tmp))

    if restore is not None and restore.get("metrics"):
        known = _epoch_of(ray_checkpoint)
        if start_epoch > known:
            # A checkpoint written after Ray's snapshot: its result may never have reached
            # the driver. Report it (again) before going on; the study keeps each epoch once.
            _report_state(restore)
    finished = restore is not None and (
        start_epoch >= cfg.epochs or int((restore.get("metrics") or {}).get("diverged", 0))
    )
    if finished:
        return  # nothing left to train; its last result is with Ray (or was just reported)
    train_trial(
        cfg, TrialContext(data=data, report=report, restore=restore, num_threads=int(max(1, cpus)))
    )


def newest_checkpoint(checkpoint: Any, trial_dir: Path | None) -> tuple[Any, Path | None]:
    """The readable checkpoint with the most epochs: Ray's, or one in the trial's folder.

    Returns ``(state, folder)``, or ``(None, None)`` when there is none to continue from.
    """
    candidates: list[Path] = []
    path = _path_of(checkpoint)
    if path is not None:
        candidates.append(path / STATE_FILE)
    if trial_dir is not None:
        candidates += sorted(trial_dir.glob(f"checkpoint_*/{STATE_FILE}"))
    best: Any = None
    best_folder: Path | None = None
    for path in dict.fromkeys(candidates):
        state = _load(path)
        if state is not None and (best is None or int(state["epoch"]) > int(best["epoch"])):
            best, best_folder = state, path.parent
    return best, best_folder


def _path_of(checkpoint: Any) -> Path | None:
    try:
        return Path(checkpoint.path) if checkpoint is not None else None
    except Exception:  # noqa: BLE001
        return None


def _epoch_of(checkpoint: Any) -> int:
    """The epoch of Ray's own checkpoint (0 when it has none, or it cannot be read)."""
    path = _path_of(checkpoint)
    if path is not None and (path / RAY_EPOCH_FILE).exists():
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            return int(json.loads((path / RAY_EPOCH_FILE).read_text())["epoch"])
    state = _load(path / STATE_FILE) if path is not None else None
    return int(state["epoch"]) if state is not None else 0


def _load(path: Path) -> Any:
    """A checkpoint's state, or None when it is missing or unreadable (half-written)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu")
    except Exception:  # noqa: BLE001 - a missing or torn checkpoint is skipped
        return None
    if not isinstance(state, dict) or "epoch" not in state or "runs" not in state:
        return None
    return state


def _trial_dir() -> Path | None:
    """The trial's folder under the study's ``tune/`` (None outside a Tune session)."""
    try:
        from ray import tune

        return Path(tune.get_context().get_storage().trial_fs_path)
    except Exception:  # noqa: BLE001 - a developer API; without it only Ray's checkpoint
        return None


def _log_start(trial_dir: Path | None, epoch: int, source: str | None) -> None:
    """One line per start of the trial: where it continued from (an audit for resume)."""
    if trial_dir is None:
        return
    line = json.dumps(
        {"time": time.time(), "pid": os.getpid(), "epoch": epoch, "checkpoint": source}
    )
    with contextlib.suppress(OSError):
        trial_dir.mkdir(parents=True, exist_ok=True)
        with open(trial_dir / STARTS_FILE, "a", encoding="utf-8") as f:
            f.write(line + "\n")
