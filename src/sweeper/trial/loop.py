"""``train_trial(config, context)``: build, train and evaluate one config.

Everything comes in through the arguments (no globals), so the same function runs in a
Ray worker, in a test, or in a notebook. The data live on the trial's device for the whole
trial and are batched by index. All runs of a config (``repeats`` seeds x ``cv_folds``
folds) train in lockstep, so each epoch reports means over runs, with ``*_std`` beside
them when there are several, and the last epoch adds each run's own values (``*_r<i>``).
The runs train in units (``trial/run.py``): fused into one vmapped model where they can
(``trial/fused.py``, ``train.fuse``), else one after another.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sweeper.data import Splits
from sweeper.models import count_params
from sweeper.registry.optimizers import OPTIMIZER_KEYS
from sweeper.trial import step as fast
from sweeper.trial.config import TrialConfig
from sweeper.trial.device_data import DeviceData, resolve_device
from sweeper.trial.fused import make_units
from sweeper.trial.run import GRAD_STEPS, Run, make_runs
from sweeper.trial.tasks import task_for

__all__ = [
    "GRAD_STEPS",
    "DeviceData",
    "Run",
    "TrialContext",
    "make_runs",
    "resolve_device",
    "train_trial",
]
Report = Callable[[dict[str, Any], "Callable[[], dict[str, Any]] | None"], None]
PER_RUN_KEYS = (
    "val_loss",
    "val_acc",
    "val_iou",
    "val_dice",
    "test_loss",
    "test_acc",
    "test_iou",
    "test_dice",
)


@dataclass
class TrialContext:
    """What the caller hands a trial.

    Attributes:
        data: the dataset's splits (numpy, uint8 images).
        report: ``report(metrics, state_fn)`` once per epoch; ``state_fn()`` returns the
            checkpoint to save (or is None when checkpoints are off).
        restore: a checkpoint from ``state_fn`` to continue from, or None.
        new_config: ``restore`` is another config's state (a PBT copy): the optimizer keeps
            this config's ``lr``, ``momentum``, ``weight_decay`` over the restored ones.
        num_threads: CPU threads for torch (the CPUs the scheduler gave this trial).
        device: where the placement put the trial (``cpu``/``cuda``), or None to follow
            ``train.device`` (``auto`` picks CUDA when there is one).
    """

    data: Splits
    report: Report
    restore: dict[str, Any] | None = None
    new_config: bool = False
    num_threads: int | None = None
    device: str | None = None


def aggregate(per_run: list[dict[str, float]]) -> dict[str, float]:
    """Mean over runs; ``<key>_std`` (population std) beside each when there are several."""
    out: dict[str, float] = {}
    for key in per_run[0]:
        values = np.array([r.get(key, np.nan) for r in per_run], dtype=float)
        out[key] = float(np.nanmean(values)) if not np.isnan(values).all() else float("nan")
        if len(per_run) > 1:
            out[f"{key}_std"] = (
                float(np.nanstd(values)) if not np.isnan(values).all() else float("nan")
            )
    return out


def train_trial(cfg: TrialConfig, ctx: TrialContext) -> dict[str, Any]:
    """Train ``cfg`` for its epochs (continuing from ``ctx.restore``) and report each epoch.

    Per epoch: ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc`` (segmentation adds
    ``val_iou``, ``val_dice``), ``lr``, ``epoch_s``, ``epoch``, ``params``; after the last
    epoch also the test metrics (and per-class test accuracy). A non-finite training loss
    ends the trial with ``diverged = 1``: a normal stop, recorded like any other.

    Returns:
        The last metrics reported.
    """
    if ctx.num_threads:
        torch.set_num_threads(max(1, int(ctx.num_threads)))
    device = resolve_device(ctx.device or cfg.device)
    fast.configure_backends(device)
    data = DeviceData(ctx.data, device)
    task = task_for(data.info.task, data.info.num_classes)
    runs = make_runs(cfg, data, device)
    units = make_units(cfg, runs, task)
    start_epoch = 0
    if ctx.restore is not None:
        start_epoch = int(ctx.restore["epoch"])
        states = ctx.restore["runs"]
        if len(states) != len(runs):
            raise ValueError(f"checkpoint holds {len(states)} runs; this config has {len(runs)}")
        for unit in units:
            kept = [_hyperparams(o) for o in _optimizers(unit)]
            unit.load([states[i] for i in unit.indices])
            if ctx.new_config:  # another config's state (PBT): this config's lr etc. hold
                for optimizer, groups in zip(_optimizers(unit), kept, strict=True):
                    for group, values in zip(optimizer.param_groups, groups, strict=True):
                        group.update(values)
    n_params = count_params(runs[0].model)
    per_class = cfg.per_class and data.info.task == "classification"
    metrics: dict[str, Any] = {}
    # seconds spent training (epochs, evaluation, checkpoints), carried over a restore
    train_s = float(((ctx.restore or {}).get("metrics") or {}).get("train_s", 0.0))
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        results = _per_run(units, lambda u: u.train_epoch(cfg, data, task))
        val = _per_run(units, lambda u: u.evaluate(None, cfg.eval_batch_size, task, "val"))
        for res, v in zip(results, val, strict=True):
            res.update(v)
        diverged = any(not math.isfinite(r["train_loss"]) for r in results)
        last = epoch + 1 == cfg.epochs or diverged
        if last:
            test = _per_run(
                units, lambda u: u.evaluate(data.test, cfg.eval_batch_size, task, "test", per_class)
            )
            for res, t in zip(results, test, strict=True):
                res.update(t)
        metrics = aggregate(results)
        if last and len(runs) > 1:
            for i, res in enumerate(results):
                metrics.update({f"{k}_r{i}": v for k, v in res.items() if k in PER_RUN_KEYS})
        epoch_s = time.perf_counter() - t0
        train_s += epoch_s
        metrics.update(
            epoch=epoch + 1,
            epoch_s=epoch_s,
            train_s=train_s,
            params=n_params,
            diverged=int(diverged),
        )

        def state_fn(done: int = epoch + 1) -> dict[str, Any]:
            return {"epoch": done, "runs": _per_run(units, lambda u: u.state())}

        ctx.report(metrics, state_fn if cfg.checkpoint else None)
        if diverged:
            break
    return metrics


def _optimizers(unit: Any) -> list[Any]:
    """The torch optimizers of a unit: a fused group's one, or each run's."""
    if hasattr(unit, "optimizer"):
        return [unit.optimizer]
    return [run.optimizer for run in unit.runs]


def _hyperparams(optimizer: Any) -> list[dict[str, Any]]:
    """Each param group's swept hyperparameters (the keys a sweep may set)."""
    return [{k: g[k] for k in OPTIMIZER_KEYS if k in g} for g in optimizer.param_groups]


def _per_run(units: list[Any], fn: Callable[[Any], list[Any]]) -> list[Any]:
    """``fn(unit)`` for every unit, its per-run answers put back in the trial's run order."""
    out: list[Any] = [None] * sum(len(u.indices) for u in units)
    for unit in units:
        for i, value in zip(unit.indices, fn(unit), strict=True):
            out[i] = value
    return out
