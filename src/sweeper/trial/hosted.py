"""One trial inside a host: ``train_trial``'s epoch, cut into steps a host can interleave.

A :class:`HostedTrial` holds what a process trial holds (the config's runs: model,
optimizer, LR schedule, generators; the units of :func:`~sweeper.trial.fused.make_units`)
over the host's shared :class:`~sweeper.trial.loop.DeviceData`, and its :class:`Lane`
(stream and random state). :meth:`HostedTrial.advance` does one step: one batch of one run
of a plain unit, or, for a fused group (``trial/fused.py``), its whole epoch at once. When
the epoch's last step is done it evaluates, and returns the epoch's metrics exactly as
``train_trial`` reports them (the same keys and values, computed by the same code in the
same order: a hosted trial's metrics equal a process trial's, the data order included,
which both draw with ``trial/order.py``). ``epoch_s`` is the epoch's wall time inside the
host, other trials' steps included.

Checkpoints are ``train_trial``'s: ``{"epoch", "runs": [Run.state() per run]}``, so a
process trial resumes from a hosted trial's checkpoint and the other way round.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import torch

from sweeper.models import count_params
from sweeper.trial import step as fast
from sweeper.trial.config import TrialConfig
from sweeper.trial.fused import make_units
from sweeper.trial.lanes import Lane
from sweeper.trial.loop import (
    PER_RUN_KEYS,
    DeviceData,
    _hyperparams,
    _optimizers,
    _per_run,
    aggregate,
    make_runs,
)
from sweeper.trial.run import Run, RunList, add_stats


class RunEpoch:
    """One run's epoch of a plain unit, a batch per :meth:`step` (``Run.train_epoch`` cut up).

    The step path keeps :class:`~sweeper.trial.step.TrainStep` (captured on the lane's
    stream on CUDA), the eager path ``Run``'s own eager step; either sums the same
    statistics in the same order as ``Run.train_epoch``.
    """

    def __init__(
        self, run: Run, cfg: TrialConfig, data: DeviceData, task: Any, lane: Lane, name: str
    ) -> None:
        self.run, self.cfg, self.task = run, cfg, task
        run.model.train()
        self.lr = run.lr()  # before the schedule's step, as RunList reports it
        self.batches: Iterator[tuple[torch.Tensor, torch.Tensor]] = run._batches(cfg, data)
        self.sums: dict[str, torch.Tensor] = {}
        if fast.uses_step(cfg):
            if run.step is None:
                graphs = lane.graphs() if fast.wants_graph(cfg, run.device) else None
                run.step = fast.TrainStep(
                    run.model,
                    run.optimizer,
                    task,
                    cfg.batch_size,
                    graphs=graphs,
                    precision=cfg.precision,
                    channels_last=run.channels_last,
                    name=f"trial {name}",
                )
            for value in run.step.sums.values():
                value.zero_()

    def step(self) -> bool:
        """Train on the next batch; False when the epoch has none left."""
        batch = next(self.batches, None)
        if batch is None:
            return False
        if fast.uses_step(self.cfg):
            self.run.step(*batch)  # type: ignore[misc]
        else:
            add_stats(self.sums, self.run._eager_epoch(self.cfg, self.task, iter([batch])))
        return True

    def finish(self) -> dict[str, float]:
        """The schedule's step and the epoch's train metrics: ``{"lr", train_*}``."""
        run = self.run
        if fast.uses_step(self.cfg):
            self.sums = {k: v.clone() for k, v in run.step.sums.items()}  # type: ignore[union-attr]
        if run.scheduler is not None:
            run.scheduler.step()
        out = self.task.metrics(self.sums, "train")
        if self.cfg.log_grad_mean and run.grad_steps:
            out["grad_mean"] = run.grad_sum / run.grad_steps
        return {"lr": self.lr, **out}


class HostedTrial:
    """A config's runs trained step by step inside a host; built at an epoch boundary.

    Args:
        trial_id: the caller's name for the trial.
        cfg: the resolved config.
        data: the host's device data (shared, read only).
        task: the data set's task.
        lane: the trial's stream and random state.
        restore: a checkpoint (``{"epoch", "runs", "metrics"?}``) to continue from.
        new_config: ``restore`` is another config's state (PBT): this config's
            optimizer hyperparameters win over the restored ones.
    """

    def __init__(
        self,
        trial_id: str,
        cfg: TrialConfig,
        data: DeviceData,
        task: Any,
        lane: Lane,
        restore: dict[str, Any] | None = None,
        new_config: bool = False,
    ) -> None:
        self.trial_id, self.cfg, self.data, self.task, self.lane = trial_id, cfg, data, task, lane
        with lane.active():
            self.runs = make_runs(cfg, data, lane.device)
            self.units = make_units(cfg, self.runs, task)
            self.epoch = _load(self.units, len(self.runs), restore, new_config)
        lane.synchronize()  # what it made (a fold pool, say) is ready for every lane
        self.params = count_params(self.runs[0].model)
        self.train_s = float(((restore or {}).get("metrics") or {}).get("train_s", 0.0))
        diverged = int(((restore or {}).get("metrics") or {}).get("diverged", 0))
        self.finished = self.epoch >= cfg.epochs or bool(diverged)  # nothing left to train
        self._pieces: Iterator[Any] | None = None  # the epoch's steps; None at a boundary
        self._results: list[dict[str, float] | None] = []
        self._t0 = 0.0

    @property
    def at_boundary(self) -> bool:
        """Between epochs: no epoch is under way (a checkpoint may be taken)."""
        return self._pieces is None

    def advance(self) -> dict[str, Any] | None:
        """One step of the current epoch (starting one at a boundary); the epoch's metrics
        when that step ended it, else None."""
        with self.lane.active():
            if self._pieces is None:
                self._t0 = time.perf_counter()
                self._results = [None] * len(self.runs)
                self._pieces = self._epoch()
            if next(self._pieces, None) is not None:
                return None
            self._pieces = None
            return self._end_epoch()

    def finish_epoch(
        self, result: dict[str, float], t0: float, val: dict[str, float] | None = None
    ) -> dict[str, Any]:
        """End an epoch that a cross-trial group trained (``trial/host_fusion.py``) from its
        train results ``{"lr", train_*}`` (this trial's one run) and, when the group
        evaluated it, its ``val_*`` metrics: evaluate (what is left) and report as
        :meth:`advance` does. ``t0``: when the epoch began."""
        if not self.at_boundary or len(self.runs) != 1:
            raise RuntimeError(f"trial {self.trial_id}: no fused epoch to finish here")
        with self.lane.active():
            self._results, self._t0 = [dict(result)], t0
            return self._end_epoch(None if val is None else [val])

    def _epoch(self) -> Iterator[bool]:
        """The epoch's steps, in ``train_trial``'s order: units in turn, a plain unit's runs
        in turn (a batch per step), a fused group's whole epoch as one step."""
        for unit in self.units:
            if not isinstance(unit, RunList):
                results = unit.train_epoch(self.cfg, self.data, self.task)
                for i, res in zip(unit.indices, results, strict=True):
                    self._results[i] = res
                yield True
                continue
            for i, run in zip(unit.indices, unit.runs, strict=True):
                epoch = RunEpoch(run, self.cfg, self.data, self.task, self.lane, self.trial_id)
                while epoch.step():
                    yield True
                self._results[i] = epoch.finish()

    def _end_epoch(self, val: list[dict[str, float]] | None = None) -> dict[str, Any]:
        """Evaluate and put together the epoch's metrics, as ``train_trial`` does."""
        cfg, data, task, units = self.cfg, self.data, self.task, self.units
        results = list(self._results)
        if val is None:  # else evaluated already (a fused group's, one per run)
            val = _per_run(units, lambda u: u.evaluate(None, cfg.eval_batch_size, task, "val"))
        for res, v in zip(results, val, strict=True):
            res.update(v)  # type: ignore[union-attr]
        diverged = any(not math.isfinite(r["train_loss"]) for r in results)  # type: ignore[index]
        last = self.epoch + 1 == cfg.epochs or diverged
        if last:
            per_class = cfg.per_class and data.info.task == "classification"
            test = _per_run(
                units, lambda u: u.evaluate(data.test, cfg.eval_batch_size, task, "test", per_class)
            )
            for res, t in zip(results, test, strict=True):
                res.update(t)  # type: ignore[union-attr]
        metrics = aggregate(results)  # type: ignore[arg-type]
        if last and len(self.runs) > 1:
            for i, res in enumerate(results):
                metrics.update({f"{k}_r{i}": v for k, v in res.items() if k in PER_RUN_KEYS})  # type: ignore[union-attr]
        epoch_s = time.perf_counter() - self._t0
        self.train_s += epoch_s
        self.epoch += 1
        self.finished = last
        metrics.update(
            epoch=self.epoch,
            epoch_s=epoch_s,
            train_s=self.train_s,
            params=self.params,
            diverged=int(diverged),
        )
        return metrics

    def state(self) -> dict[str, Any]:
        """The checkpoint at this epoch boundary, as CPU copies (later epochs leave it be)."""
        if not self.at_boundary:
            raise RuntimeError(f"trial {self.trial_id} is inside an epoch: no checkpoint now")
        with self.lane.active():
            runs = _per_run(self.units, lambda u: u.state())
            return {"epoch": self.epoch, "runs": to_cpu(runs)}


def _load(units: list[Any], n_runs: int, restore: dict[str, Any] | None, new_config: bool) -> int:
    """Load ``restore`` into the units as ``train_trial`` does; the epoch it continues at."""
    if restore is None:
        return 0
    states = restore["runs"]
    if len(states) != n_runs:
        raise ValueError(f"checkpoint holds {len(states)} runs; this config has {n_runs}")
    for unit in units:
        kept = [_hyperparams(o) for o in _optimizers(unit)]
        unit.load([states[i] for i in unit.indices])
        if new_config:  # another config's state (PBT): this config's lr etc. hold
            for optimizer, groups in zip(_optimizers(unit), kept, strict=True):
                for group, values in zip(optimizer.param_groups, groups, strict=True):
                    group.update(values)
    return int(restore["epoch"])


def to_cpu(obj: Any) -> Any:
    """A copy of a nested state with every tensor on the CPU (detached, its own memory)."""
    if torch.is_tensor(obj):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj
