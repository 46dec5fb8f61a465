"""The Ray Tune function trainable: a thin adapter around ``train_trial``.

Checkpoints are the trial's own, not Ray's: after each epoch the trainable writes
``checkpoint_<epoch>/state.pt`` (the trial's state *and* the metrics reported with it) in
its trial folder, atomically (a temporary folder, then a rename), keeps only the newest,
then reports the epoch's metrics to Ray without a Ray checkpoint. Ray's own checkpoint
manager would force a snapshot of the whole experiment (every trial's state) on each
trial checkpoint, a cost that grows with the study; this way Ray's snapshot holds the
trials and the searcher only, and the trials' files are never deleted under a snapshot.

On any (re)start the trial continues from the newest readable checkpoint in its folder,
and reports that epoch once more first (its result may have died with the driver; the
study keeps each epoch once), so no epoch is trained twice and none is missing from the
history. A trial whose checkpoint is its final epoch trains nothing. Every start is
logged to ``starts.jsonl`` in the trial's folder (``{"time", "pid", "epoch", "checkpoint"}``;
a PBT copy's line adds ``copied_from``: the source trial's folder and checkpoint).

Under PBT/PB2 (``engine/population.py``) a trial's state must travel as a Ray checkpoint:
each epoch's state is reported with ``tune.report(..., checkpoint=...)`` instead (Ray keeps
the newest few in the trial's folder, under the same ``checkpoint_*/state.pt`` names), and
a trial handed another trial's checkpoint continues from it with its own new config.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from sweeper.registry.schedulers import POPULATION
from sweeper.store.table import NODE_KEY

STATE_FILE = "state.pt"
STARTS_FILE = "starts.jsonl"
CHECKPOINT_GLOB = "checkpoint_*"


def ray_trainable(
    config: dict[str, Any], spec: Any, data: Any, cpus: float = 1, device: str = "cpu"
) -> None:
    """Run one trial inside a Ray worker: resolve its config, restore, train, report.

    ``device`` is where the placement put the trial: ``cuda`` with a GPU share (Ray made
    its GPU the worker's ``cuda:0``), else ``cpu``, and then CUDA is never touched.
    """
    from ray import tune

    from sweeper.trial import resolve_trial
    from sweeper.trial.loop import TrialContext, train_trial

    cfg = resolve_trial(spec, config)
    trial_dir = trial_folder()
    copies = spec.scheduler is not None and spec.scheduler.name in POPULATION
    restore, folder = newest_checkpoint(trial_dir)
    copied = copied_checkpoint(trial_dir, restore, config) if copies else None
    if copied is not None:
        restore, folder = copied
    start_epoch = int(restore["epoch"]) if restore is not None else 0
    source = f"{copied[1].parent.name}/{copied[1].name}" if copied is not None else None
    log_start(trial_dir, start_epoch, folder.name if folder else None, source)

    node = node_name()
    lineage = dict((restore or {}).get("lineage") or {})
    mark = {"trial_id": tune.get_context().get_trial_id(), "config": dict(config)}

    def report(metrics: dict[str, Any], state_fn: Any) -> None:
        metrics = {**metrics, **lineage}
        if state_fn is None:
            tune.report({**metrics, NODE_KEY: node})
        elif copies:  # a Ray checkpoint, persisted by Ray in the trial's folder
            state = population_state(state_fn(), mark, metrics, lineage, restore)
            with tempfile.TemporaryDirectory() as tmp:
                torch_save(state, Path(tmp) / STATE_FILE)
                checkpoint = tune.Checkpoint.from_directory(tmp)
                tune.report({**metrics, NODE_KEY: node}, checkpoint=checkpoint)
        else:
            save_checkpoint(trial_dir, {**state_fn(), "metrics": dict(metrics)})
            tune.report({**metrics, NODE_KEY: node})

    if restore is not None and restore.get("metrics") and copied is None:
        # again: the driver may never have seen it
        tune.report({**restore["metrics"], NODE_KEY: node})
    finished = restore is not None and (
        start_epoch >= cfg.epochs or int((restore.get("metrics") or {}).get("diverged", 0))
    )
    if finished:
        return  # nothing left to train; its last result was just reported
    train_trial(
        cfg,
        TrialContext(
            data=data,
            report=report,
            restore=restore,
            new_config=copied is not None,
            num_threads=int(max(1, cpus)),
            device=device,
        ),
    )


def node_name() -> str:
    """The Ray node this trial runs on: on a cluster of several nodes (dead ones included),
    its IP and the first 8 hex digits of its node id (nodes on one machine share the IP);
    on a one-node Ray, the machine's host name, which a resume on the same machine (a new
    Ray, a new node id) keeps, so the trial table shows no ``node`` column for it."""
    import socket

    import ray

    node_id = ray.get_runtime_context().get_node_id()
    nodes = ray.nodes()
    if len(nodes) <= 1:
        return socket.gethostname()
    # the address the node was started with (its --node-ip-address), from the cluster's list
    ip = next(
        (n["NodeManagerAddress"] for n in nodes if n.get("NodeID") == node_id),
        ray.util.get_node_ip_address(),
    )
    return f"{ip}:{node_id[:8]}"


def copied_checkpoint(
    trial_dir: Path, own: dict[str, Any] | None, config: dict[str, Any]
) -> tuple[dict[str, Any], Path] | None:
    """Under PBT: the checkpoint Ray hands this trial when it is another trial's (an
    exploit), as the state to continue from, its lineage added; None when it is its own.

    ``copies`` counts a trial's exploits: its checkpoints after a copy rank above those
    from before it (:func:`newest_checkpoint`), whatever their epochs.
    """
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None or Path(checkpoint.path).resolve().parent == trial_dir.resolve():
        return None
    path = Path(checkpoint.path)
    return copied_state(path, own, config), path


def copied_state(path: Path, own: dict[str, Any] | None, config: dict[str, Any]) -> dict[str, Any]:
    """Another trial's checkpoint at ``path`` as this trial's state to continue from: its
    lineage added (source, epoch, what changed), ``copies`` counted, no metrics."""
    state = _load(path / STATE_FILE)
    if state is None:
        raise RuntimeError(f"PBT copied checkpoint {path} has no readable {STATE_FILE}")
    was = state.get("config") or {}
    changes = [f"{k}: {was.get(k)!r} -> {v!r}" for k, v in config.items() if was.get(k) != v]
    state["lineage"] = {
        "pbt_source": str(state.get("trial_id", path.parent.name)),
        "pbt_epoch": int(state["epoch"]),
        "pbt_changes": "; ".join(changes),
    }
    state["copies"] = int((own or {}).get("copies", 0)) + 1
    state["metrics"] = {}  # the source's, not this trial's: not reported again
    return state


def population_state(
    state: dict[str, Any],
    mark: dict[str, Any],
    metrics: dict[str, Any],
    lineage: dict[str, Any],
    restore: dict[str, Any] | None,
) -> dict[str, Any]:
    """An epoch's state as a PBT checkpoint: the trial's id and config (``mark``), its
    metrics and lineage, and the count of copies it descends from."""
    out = {**state, **mark, "metrics": dict(metrics), "lineage": lineage}
    out["copies"] = int((restore or {}).get("copies", 0))
    return out


def torch_save(state: dict[str, Any], path: Path) -> None:
    import torch

    torch.save(state, path)


def save_checkpoint(trial_dir: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` as the trial's newest checkpoint, then delete the older ones."""
    import torch

    final = trial_dir / f"checkpoint_{int(state['epoch']):06d}"
    tmp = Path(tempfile.mkdtemp(prefix=".checkpoint-", dir=trial_dir))
    torch.save(state, tmp / STATE_FILE)
    if final.exists():  # an epoch trained again after a restore
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in [*trial_dir.glob(CHECKPOINT_GLOB), *trial_dir.glob(".checkpoint-*")]:
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def newest_checkpoint(trial_dir: Path | None) -> tuple[Any, Path | None]:
    """The readable checkpoint with the most epochs in the trial's folder.

    Returns ``(state, folder)``, or ``(None, None)`` when there is none to continue from
    (a checkpoint cut short by a kill is skipped).
    """
    best: Any = None
    best_folder: Path | None = None
    if trial_dir is None:
        return best, best_folder
    for path in sorted(trial_dir.glob(f"{CHECKPOINT_GLOB}/{STATE_FILE}")):
        state = _load(path)
        if state is not None and (best is None or _rank(state) > _rank(best)):
            best, best_folder = state, path.parent
    return best, best_folder


def _rank(state: dict[str, Any]) -> tuple[int, int]:
    """Newer: more PBT copies (a copy's checkpoints replace the trial's older ones), then
    more epochs."""
    return int(state.get("copies", 0)), int(state["epoch"])


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


def trial_folder() -> Path:
    """The trial's folder under the study's ``tune/`` (on the storage every node sees).

    Ray's public ``get_trial_dir()`` names the worker's local working folder, not the
    trial's folder in the experiment; the storage context (Ray 2.60) names that one.
    """
    from ray import tune

    try:
        path = Path(tune.get_context().get_storage().trial_fs_path)
    except AttributeError as exc:
        import ray

        raise RuntimeError(
            f"Ray {ray.__version__}: the trial context has no storage path ({exc}); "
            "sweeper reads Ray 2.60's get_context().get_storage().trial_fs_path"
        ) from None
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_start(
    trial_dir: Path, epoch: int, checkpoint: str | None, copied_from: str | None = None
) -> None:
    """One line per start of the trial: where it continued from (an audit for resume and
    for PBT's copies, whose checkpoint is in the source trial's folder)."""
    entry = {"time": time.time(), "pid": os.getpid(), "epoch": epoch, "checkpoint": checkpoint}
    if copied_from is not None:
        entry["copied_from"] = copied_from
    line = json.dumps(entry)
    with contextlib.suppress(OSError):
        with open(trial_dir / STARTS_FILE, "a", encoding="utf-8") as f:
            f.write(line + "\n")
