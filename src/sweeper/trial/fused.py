"""Fused runs: the runs of one config trained as one stacked model (``torch.func``).

A trial's runs (``repeats`` seeds x ``cv_folds`` folds) share the architecture, so their
parameters and buffers stack into tensors ``(R, *shape)`` (``stack_module_state``) and one
``vmap`` of ``functional_call`` trains all R per batch: R times the work in one call, not R
calls (a plain layer stack, the MLPs, skips ``vmap``: one ``baddbmm`` per ``Linear``, see
:mod:`sweeper.trial.stacked`). Each run keeps its own data order and augmentation (its generator), optimizer state,
learning-rate schedule and batch-norm statistics (stacked buffers, updated in place through
``functional_call``); dropout draws differently per run (``randomness="different"``).

:func:`make_units` decides: one unit for a single run or ``train.fuse: false``; otherwise a
:class:`FusedGroup` per set of runs whose train and val sets have equal lengths (k-fold
chunks may differ by one), so every batch stacks exactly. A model ``vmap`` cannot take, or an
optimizer that is not element-wise, sends the whole config back to the loop, logged once.

Checkpoints keep the loop's format: :meth:`FusedGroup.state` writes the stacked tensors back
into each run's own model and optimizer and returns their :meth:`Run.state`;
:meth:`FusedGroup.load` loads those and stacks them again, so either path resumes the other.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from sweeper.registry.optimizers import OPTIMIZERS, build_optimizer
from sweeper.trial.config import TrialConfig
from sweeper.trial.run import GRAD_STEPS, Run, RunList, add_stats, make_scheduler
from sweeper.trial.stacked import shared, stacked_forward

if TYPE_CHECKING:
    from sweeper.trial.device_data import DeviceData

logger = logging.getLogger(__name__)
PROBE_EXAMPLES = 2  # examples per run the vmap probe trains on


class FusedGroup:
    """Runs of one config with equal train and val lengths, trained as one stacked model.

    The same unit interface as :class:`RunList`. The runs' own modules and optimizers stay
    as the checkpoint format's shadow copies: they are written only by :meth:`state`.
    """

    def __init__(self, runs: Sequence[Run], indices: Sequence[int], cfg: TrialConfig, task: Any):
        from torch.func import functional_call, stack_module_state, vmap

        self.runs, self.indices, self.task = list(runs), list(indices), task
        models = [run.model for run in self.runs]
        self.params, self.buffers = stack_module_state(models)  # name -> (R, *shape)
        self.names = [name for name, _ in models[0].named_parameters()]  # optimizer order
        self.shapes = [tuple(self.params[n].shape[1:]) for n in self.names]
        self.base = copy.deepcopy(models[0]).to("meta")  # structure only; tensors come in
        stacked = [self.params[n] for n in self.names]
        self.optimizer = build_optimizer(cfg.optimizer, stacked, cfg.optimizer_kwargs)
        self.scheduler = make_scheduler(cfg, self.optimizer)

        tied = _has_tied_tensors(models[0])  # untying costs a module walk per call
        direct = None if tied else stacked_forward(self.base)
        if direct is not None:  # a plain layer stack: batched matmuls, no vmap (stacked.py)
            self.how = "stacked"
            self._forward, self._forward_shared = direct, shared(direct)
            return

        def forward(params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
            return functional_call(self.base, (params, buffers), (x,), tie_weights=tied)

        # Only the model runs under vmap; losses and statistics take the stacked logits
        # (R, B, C, ...) directly (task.stacked_*): less vmap dispatch per step.
        self.how = "vmap"
        self._forward = vmap(forward, randomness="different")  # x (R, B, ...)
        self._forward_shared = vmap(forward, in_dims=(0, 0, None), randomness="different")

    def probe(self) -> str | None:
        """Why ``vmap`` cannot train this model (one line), or None; changes no state.

        Tries a train step's forward and backward, the statistics and an eval forward on the
        first examples of each run's training set, on copies of the stacked tensors.
        """
        params = {
            k: v.detach().clone().requires_grad_(v.requires_grad) for k, v in self.params.items()
        }
        buffers = {k: v.clone() for k, v in self.buffers.items()}
        sets = [run.train_set for run in self.runs]
        sel = torch.stack([_first(idx, x, PROBE_EXAMPLES) for x, _, idx in sets])
        xb, yb = _gather([s[:2] for s in sets], sel)  # (R, 2, ...)
        devices = [self.runs[0].device] if self.runs[0].device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):  # dropout here must not shift later draws
                self.base.train()
                logits = self._forward(params, buffers, xb)
                self.task.stacked_loss_and_stats(logits, yb)[0].sum().backward()
                self.base.eval()
                with torch.inference_mode():
                    self._forward(params, buffers, xb)
        except Exception as err:  # noqa: BLE001 - any failure: the loop can still train it
            first = (str(err).strip().splitlines() or [""])[0]
            return f"{type(err).__name__}: {first.split('. ')[0][:160]}"
        return None

    def train_epoch(self, cfg: TrialConfig, data: DeviceData, task: Any) -> list[dict[str, float]]:
        """One epoch of every run at once: ``{"lr", train metrics}`` per run."""
        self.base.train()
        lr = self.lr()
        orders = torch.stack([run.order() for run in self.runs])  # (R, n)
        pairs = [run.train_set[:2] for run in self.runs]
        sums: dict[str, torch.Tensor] = {}
        for start in range(0, orders.shape[1], cfg.batch_size):
            xb, yb = _gather(pairs, orders[:, start : start + cfg.batch_size])  # (R, B, ...)
            xb, yb = self._augment(data, cfg.augment, xb, yb)
            logits = self._forward(self.params, self.buffers, xb)  # (R, B, C)
            losses, stats = task.stacked_loss_and_stats(logits, yb)  # (R,): each run's mean
            self.optimizer.zero_grad(set_to_none=True)
            # Backprop the SUM over runs of each run's mean loss: run r's slice of a stacked
            # parameter reaches only run r's term, so its gradient is exactly run r's own
            # gradient. The registry's optimizers are element-wise (Adam, AdamW, SGD with
            # momentum and weight decay: every state entry and update is per element; the
            # step count is shared, as the runs step together), so one optimizer over the
            # stacked tensors is R independent optimizers. A mean over runs would scale
            # each run's gradient by 1/R (SGD's steps would shrink; Adam's change via eps).
            losses.sum().backward()
            if cfg.log_grad_mean and self.runs[0].grad_steps < GRAD_STEPS:
                self._log_grad()
            self.optimizer.step()
            add_stats(sums, stats)  # each (R, ...)
        if self.scheduler is not None:
            self.scheduler.step()
        out = [{"lr": lr, **m} for m in _metrics_per_run(task, sums, "train", len(self.runs))]
        for res, run in zip(out, self.runs, strict=True):
            if cfg.log_grad_mean and run.grad_steps:
                res["grad_mean"] = run.grad_sum / run.grad_steps
        return out

    def _augment(
        self, data: DeviceData, kind: str, xb: torch.Tensor, yb: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each run's batch augmented with its own generator, as the loop does; ``(R, B, ...)``."""
        if kind == "none":
            return xb, yb
        pairs = [
            data.augment(x, y, kind, run.generator)
            for run, x, y in zip(self.runs, xb, yb, strict=True)
        ]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])

    def _log_grad(self) -> None:
        """Per run: the mean over parameters of the mean |gradient| (the loop's figure)."""
        grads = [
            p.grad.abs().reshape(len(p), -1).mean(1)  # (R,)
            for p in (self.params[n] for n in self.names)
            if p.grad is not None
        ]
        for run, g in zip(self.runs, torch.stack(grads).mean(0).tolist(), strict=True):
            run.grad_sum += g
            run.grad_steps += 1

    @torch.inference_mode()
    def evaluate(
        self, split: tuple | None, batch_size: int, task: Any, prefix: str, per_class: bool = False
    ) -> list[dict[str, float]]:
        """Metrics per run on ``split`` (None: each run's own validation set), in eval mode."""
        self.base.eval()
        splits = [run.val_set for run in self.runs] if split is None else [split] * len(self.runs)
        sets = [s if len(s) == 3 else (*s, None) for s in splits]
        x0, y0, idx0 = sets[0]
        shared = all(s[0] is x0 and s[1] is y0 and s[2] is idx0 for s in sets)
        n = len(idx0) if idx0 is not None else len(x0)
        sums: dict[str, torch.Tensor] = {}
        for start in range(0, n, batch_size):
            if shared:
                sel = (
                    slice(start, start + batch_size)
                    if idx0 is None
                    else idx0[start : start + batch_size]
                )
                xb, yb = x0[sel], y0[sel]  # (B, ...): the same batch for every run
                logits = self._forward_shared(self.params, self.buffers, xb)  # (R, B, C)
                yb = yb.expand(len(self.runs), *yb.shape)
            else:
                sel = torch.stack([_window(i, x, start, batch_size) for x, _, i in sets])
                xb, yb = _gather([s[:2] for s in sets], sel)  # (R, B, ...)
                logits = self._forward(self.params, self.buffers, xb)  # (R, B, C)
            add_stats(sums, task.stacked_stats(logits, yb, per_class))
        return _metrics_per_run(task, sums, prefix, len(self.runs))

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def state(self) -> list[dict[str, Any]]:
        """Each run's :meth:`Run.state`, the stacked tensors written back into its run first."""
        with torch.no_grad():
            for r, run in enumerate(self.runs):
                unstack_into(run.model, self.params, self.buffers, r)
        stacked = self.optimizer.state_dict()
        shapes = [(len(self.runs), *shape) for shape in self.shapes]
        for r, run in enumerate(self.runs):
            run.optimizer.load_state_dict(unstack_optimizer_state(stacked, r, shapes))
            if run.scheduler is not None:
                run.scheduler.load_state_dict(self.scheduler.state_dict())
        return [run.state() for run in self.runs]

    def load(self, states: Sequence[dict[str, Any]]) -> None:
        """Load per-run states (either path's :meth:`state`), then stack them again."""
        from torch.func import stack_module_state

        for run, state in zip(self.runs, states, strict=True):
            run.load(state)
        params, buffers = stack_module_state([run.model for run in self.runs])
        with torch.no_grad():
            for name, t in self.params.items():
                t.copy_(params[name])
            for name, t in self.buffers.items():
                t.copy_(buffers[name])
        per_run = [run.optimizer.state_dict() for run in self.runs]
        self.optimizer.load_state_dict(stack_optimizer_state(per_run, self.shapes))
        if self.scheduler is not None and self.runs[0].scheduler is not None:
            self.scheduler.load_state_dict(self.runs[0].scheduler.state_dict())


def unstack_into(model: torch.nn.Module, params: dict, buffers: dict, r: int) -> None:
    """Member ``r`` of stacked parameters and buffers (``name -> (R, *shape)``) copied into
    ``model``'s own tensors (call under ``torch.no_grad()``)."""
    for name, t in model.named_parameters():
        t.copy_(params[name][r])
    for name, b in model.named_buffers():
        b.copy_(buffers[name][r])


def _per_element(key: str, value: Any, shape: tuple[int, ...]) -> bool:
    """Whether an optimizer state entry holds one value per parameter element.

    ``exp_avg``, ``exp_avg_sq``, ``momentum_buffer`` do (one slice per run); ``step`` is one
    count for the tensor, shared by runs that step together.
    """
    return torch.is_tensor(value) and key != "step" and tuple(value.shape) == shape


def unstack_optimizer_state(
    stacked: dict[str, Any], r: int, shapes: Sequence[tuple[int, ...]]
) -> dict[str, Any]:
    """Run ``r``'s optimizer state dict from the stacked one's (``shapes``: stacked, ``(R, ...)``)."""

    def take(key: str, value: Any, shape: tuple[int, ...]) -> Any:
        if _per_element(key, value, shape):
            return value[r].clone()
        return value.clone() if torch.is_tensor(value) else copy.deepcopy(value)

    state = {
        i: {k: take(k, v, shapes[i]) for k, v in entry.items()}
        for i, entry in stacked["state"].items()
    }
    return {"state": state, "param_groups": copy.deepcopy(stacked["param_groups"])}


def stack_optimizer_state(
    per_run: Sequence[dict[str, Any]], shapes: Sequence[tuple[int, ...]]
) -> dict[str, Any]:
    """The stacked optimizer's state dict from each run's (the inverse of the above)."""
    first = per_run[0]

    def stack(i: int, key: str, value: Any) -> Any:
        if _per_element(key, value, shapes[i]):
            return torch.stack([sd["state"][i][key] for sd in per_run])  # (R, *shape)
        return value

    state = {
        i: {k: stack(i, k, v) for k, v in entry.items()} for i, entry in first["state"].items()
    }
    return {"state": state, "param_groups": copy.deepcopy(first["param_groups"])}


def _first(idx: torch.Tensor | None, x: torch.Tensor, k: int) -> torch.Tensor:
    """The first ``k`` indices of a run's set, unshuffled."""
    return idx[:k] if idx is not None else torch.arange(min(k, len(x)), device=x.device)


def _window(idx: torch.Tensor | None, x: torch.Tensor, start: int, size: int) -> torch.Tensor:
    """Indices ``start:start + size`` of a run's set (``idx``, or all of ``x``)."""
    if idx is not None:
        return idx[start : start + size]
    return torch.arange(start, min(start + size, len(x)), device=x.device)


def _gather(pairs: Sequence[tuple], sel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run r's examples ``sel[r]`` of its ``(x, y)``, stacked ``(R, B, ...)``.

    One indexing when the runs share their tensors (repeats, and folds of one pool).
    """
    x0, y0 = pairs[0]
    if all(x is x0 and y is y0 for x, y in pairs):
        return x0[sel], y0[sel]
    xs, ys = zip(*(p[:2] for p in pairs), strict=True)
    return (
        torch.stack([x[i] for x, i in zip(xs, sel, strict=True)]),
        torch.stack([y[i] for y, i in zip(ys, sel, strict=True)]),
    )


def _metrics_per_run(
    task: Any, sums: dict[str, torch.Tensor], prefix: str, n_runs: int
) -> list[dict[str, float]]:
    """``task.metrics`` of each run from stacked sums ``(R, ...)``: one host copy per key."""
    if not sums:
        return [{} for _ in range(n_runs)]
    host = {k: v.cpu().unbind(0) for k, v in sums.items()}
    return [task.metrics({k: v[r] for k, v in host.items()}, prefix) for r in range(n_runs)]


def _has_tied_tensors(model: torch.nn.Module) -> bool:
    """Whether one parameter or buffer appears under two names (tied weights)."""
    named = [
        *model.named_parameters(remove_duplicate=False),
        *model.named_buffers(remove_duplicate=False),
    ]
    return len({id(t) for _, t in named}) < len(named)


def _split_len(split: tuple) -> int:
    x, _, idx = split
    return len(idx) if idx is not None else len(x)


def equal_length_groups(runs: Sequence[Run]) -> list[list[int]]:
    """Run positions grouped by (train length, val length), in order of first appearance."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, run in enumerate(runs):
        key = (_split_len(run.train_set), _split_len(run.val_set))
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def make_units(cfg: TrialConfig, runs: Sequence[Run], task: Any) -> list[Any]:
    """The units that train ``runs``: fused groups where they can, else one :class:`RunList`.

    Falls back to the loop for the whole config, with one warning, when the optimizer is
    not element-wise or ``vmap`` cannot train the model (:meth:`FusedGroup.probe`).
    """
    if not cfg.fuse or len(runs) == 1:
        return [RunList(runs, range(len(runs)))]
    if not OPTIMIZERS[cfg.optimizer].elementwise:
        return _fallback(runs, f"optimizer {cfg.optimizer} is not element-wise")
    units: list[Any] = []
    for indices in equal_length_groups(runs):
        members = [runs[i] for i in indices]
        if len(members) == 1:
            units.append(RunList(members, indices))
            continue
        group = FusedGroup(members, indices, cfg, task)
        reason = group.probe()
        if reason is not None:
            return _fallback(runs, f"vmap cannot train model {cfg.model} ({reason})")
        units.append(group)
    return units


def _fallback(runs: Sequence[Run], why: str) -> list[Any]:
    logger.warning("fused runs off: %s; its %d runs train one after another", why, len(runs))
    return [RunList(runs, range(len(runs)))]
