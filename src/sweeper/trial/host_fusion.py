"""Same-shape fusion across hosted trials: one stacked step for trials of one architecture.

Inside one trial, ``trial/fused.py`` trains a config's runs as one stacked model with one
optimizer. Across trials (issue 24 point 3) a :class:`TrialGroup` trains whole hosted
trials (``trial/hosted.py``) that share the architecture (model name and arguments, so
parameter shapes; for a plain layer stack, the MLPs, only the width family: hidden widths
may differ, see below), the batch size and the training set, as one stacked model for one
epoch: each member keeps its own optimizer kind, lr, momentum, weight decay and LR
schedule (:class:`~sweeper.trial.stacked_optim.StackedOptimizer`), its own generator and
data order (its run's permutation; one index gather per step from the host's shared
data). The forward is :func:`~sweeper.trial.stacked.stacked_forward` (batched matmuls)
for a plain layer stack (the MLP families), else ``vmap`` of ``functional_call`` (convs,
batch norm: each member's statistics its own buffers).

The host (``Host(fuse=True)``) forms the groups each round from its running trials that
are at an epoch boundary (:func:`plan`): members join and leave at epoch boundaries, as
their schedulers pause, stop or resume them. A group stacks its members' parameters and
optimizer state from their own torch models and optimizers, trains the epoch, and writes
everything back into them (torch's own state format); each member then evaluates and
reports alone (``HostedTrial.finish_epoch``; the validation pass is one stacked forward
for all members over the shared val set), so its metrics, events and checkpoints
(``{"epoch", "runs": [Run.state()]}``) are those of an unfused trial. Stacking anew each
epoch costs a copy of the parameters and optimizer state per member and epoch.

Different widths (``trial/padding.py``): MLPs that differ only in hidden widths (same
layers, activations, input and output sizes) share a key; :func:`plan` splits a key's
trials into groups whose zero-padded parameter count stays within ``padding.MAX_PAD_COST``
times the members' own (per device type: 1.5 on CUDA; 1.0 on the CPU, where padding did not
pay, so there only exact shapes fuse by default; trials of one exact shape are never split). A padded group holds
each member's parameters in the top-left block of the widest member's shapes, zero
elsewhere; padded hidden units have zero incoming weights and bias and zero outgoing
weights, so they add nothing to the real outputs (whatever ``act(0)``), and their
gradients are zeroed before every step, so the padding stays exactly zero through Adam,
AdamW and SGD (zero gradient, zero state: zero update, weight decay of zero included). Each
member's real block (parameters and optimizer state) goes back into its own model and
optimizer after the epoch: it trains as the narrower model alone would, up to the order
in which batched matmuls sum. Convolutional models fuse by exact shape only.

What fuses (:func:`fusion_key`): single-run trials (no repeats, no folds) without dropout
(its draws would differ from the trial's own) or tied weights, fp32, no augmentation, no
``log_grad_mean``, no channels-last, optimizers Adam/AdamW/SGD without amsgrad, nesterov,
dampening. Anything else trains unfused, as it would without fusion; a model ``vmap``
cannot take fails its group's first epoch, and its members train unfused from then on.
"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from sweeper.trial.fused import _has_tied_tensors, _metrics_per_run, unstack_into
from sweeper.trial.padding import (
    Padding,
    group_by_cost,
    pad_limit,
    param_shapes,
    width_family,
)
from sweeper.trial.run import add_stats
from sweeper.trial.stacked import shared, stacked_forward
from sweeper.trial.stacked_optim import StackedOptimizer, family_order, supported

if TYPE_CHECKING:
    from sweeper.trial.hosted import HostedTrial

LOG = logging.getLogger(__name__)
MIN_MEMBERS = 2  # a group of one trains unfused (the same numbers, no stacking copies)


def why_not(trial: HostedTrial) -> str | None:
    """Why ``trial`` cannot join a cross-trial group (one line), or None."""
    cfg = trial.cfg
    if len(trial.runs) != 1:
        return "several runs (repeats or folds)"
    if cfg.precision != "fp32" or cfg.augment != "none" or cfg.log_grad_mean:
        return "bf16, augmentation or log_grad_mean"
    run = trial.runs[0]
    if run.channels_last:
        return "channels_last"
    reason = supported(cfg.optimizer, run.optimizer.param_groups[0])
    if reason is not None or len(run.optimizer.param_groups) != 1:
        return reason or "several param groups"
    if any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in run.model.modules()):
        return "dropout"
    if _has_tied_tensors(run.model):
        return "tied weights"
    return None


def fusion_key(trial: HostedTrial) -> tuple | None:
    """What members of one group share, or None when ``trial`` cannot fuse: the width
    family (``padding.width_family``) for a plain layer stack, else the model name,
    arguments and parameter shapes; and the batch size, data, device."""
    if why_not(trial) is not None:
        return None
    cfg, run = trial.cfg, trial.runs[0]
    x, _, idx = run.train_set
    family = width_family(run.model)
    if family is not None:  # widths may differ: plan pads them, where it pays
        arch: tuple = ("widths", family)
    else:
        shapes = tuple((n, tuple(p.shape)) for n, p in run.model.named_parameters())
        arch = (cfg.model, repr(sorted(cfg.model_args.items())), shapes)
    n = len(idx) if idx is not None else len(x)
    val = (id(run.val_set[0]), cfg.eval_batch_size)  # the group evaluates them together
    return (*arch, cfg.batch_size, id(x), n, val, str(run.device))


def plan(trials: Iterable[HostedTrial], keys: dict[str, tuple | None]) -> list[list[HostedTrial]]:
    """Groups of at least :data:`MIN_MEMBERS` trials at an epoch boundary with one key
    (``keys``: each trial's :func:`fusion_key`, cached by the caller), in the trials' order;
    one key's trials of different widths split where padding them together would cost
    more than ``padding.MAX_PAD_COST`` allows on their device (``padding.group_by_cost``)."""
    buckets: dict[tuple, list[HostedTrial]] = {}
    for trial in trials:
        key = keys.get(trial.trial_id)
        if key is not None and trial.at_boundary and not trial.finished:
            buckets.setdefault(key, []).append(trial)
    return [
        group
        for bucket in buckets.values()
        for group in group_by_cost(bucket, _shapes, pad_limit(bucket[0].runs[0].device))
        if len(group) >= MIN_MEMBERS
    ]


def _shapes(trial: HostedTrial) -> list[tuple[int, ...]]:
    return param_shapes(trial.runs[0].model)


class TrialGroup:
    """Hosted trials of one :func:`fusion_key` trained for one epoch as one stacked model."""

    def __init__(self, members: Sequence[HostedTrial]) -> None:
        order = family_order([m.cfg.optimizer for m in members])  # Adam-like, then SGD
        self.members = [members[i] for i in order]
        self.runs = [m.runs[0] for m in self.members]
        first = self.runs[0]
        self.names = [n for n, _ in first.model.named_parameters()]
        self.forward, self.forward_shared, self.base = _forwards(first.model)
        with torch.no_grad():  # batch-norm statistics, each member's own: (R, *shape)
            self.buffers = {
                n: torch.stack([r.model.get_buffer(n) for r in self.runs])
                for n, _ in first.model.named_buffers()
            }
        # zero padding (trial/padding.py) when widths differ: each member's parameters in
        # the top-left block of the widest member's shapes, zero elsewhere
        self.padding = Padding([_shapes(m) for m in self.members])
        if self.padding.padded and (self.buffers or stacked_forward(first.model) is None):
            raise ValueError("members of different shapes need a plain layer stack to pad")
        with torch.no_grad():  # one (R, P) tensor; each stacked parameter a leaf view of it
            self.flat = self.padding.stack(
                [[r.model.get_parameter(n).detach() for n in self.names] for r in self.runs]
            )
        # True on the padding: its gradients are zeroed before every step (padding.py)
        self.pad_mask = self.padding.mask(self.flat.device) if self.padding.padded else None
        shapes = self.padding.shapes
        self.params, offset = {}, 0
        for name, shape in zip(self.names, shapes, strict=True):
            size = math.prod(shape)
            view = self.flat[:, offset : offset + size].view(len(self.runs), *shape)
            self.params[name] = view.requires_grad_(True)
            offset += size
        groups = [r.optimizer.param_groups[0] for r in self.runs]
        kinds = [m.cfg.optimizer for m in self.members]
        blocks = self.padding.blocks if self.padding.padded else None
        self.optimizer = StackedOptimizer(self.flat, shapes, kinds, groups, blocks)
        for r, run in enumerate(self.runs):
            self.optimizer.load_member(r, run.optimizer)

    def train_epoch(self, data: Any, task: Any, batch_size: int) -> list[dict[str, float]]:
        """One epoch of every member: ``{"lr", train metrics}`` each, as ``RunEpoch`` has
        them; the parameters and optimizer state written back into each member's run, its
        schedule stepped."""
        lrs = [run.lr() for run in self.runs]
        self.optimizer.set_lr(lrs)
        orders = torch.stack([run.order() for run in self.runs])  # (R, n), each its own
        x, y, _ = self.runs[0].train_set
        plist = [self.params[n] for n in self.names]
        sums: dict[str, torch.Tensor] = {}
        self.base.train()
        for start in range(0, orders.shape[1], batch_size):
            sel = orders[:, start : start + batch_size]  # (R, B)
            logits = self.forward(self.params, self.buffers, x[sel])  # (R, B, C)
            losses, stats = task.stacked_loss_and_stats(logits, y[sel])
            # the sum of each member's mean loss: member r's slice gets exactly its gradient
            grads = torch.autograd.grad(losses.sum(), plist)
            grad = torch.cat([g.flatten(1) for g in grads], dim=1)  # (R, P)
            if self.pad_mask is not None:  # exactly zero (a NaN too), so the padding stays 0
                grad.masked_fill_(self.pad_mask, 0.0)
            self.optimizer.step(grad)
            add_stats(sums, stats)
        self._write_back()
        out = [
            {"lr": lr, **m}
            for lr, m in zip(
                lrs, _metrics_per_run(task, sums, "train", len(self.runs)), strict=True
            )
        ]
        return out

    @torch.inference_mode()
    def evaluate_val(self, task: Any, batch_size: int) -> list[dict[str, float]]:
        """Every member's ``val_*`` metrics in one stacked pass over the shared val set
        (``Run.evaluate``'s sums, per member)."""
        x, y, idx = self.runs[0].val_set
        n = len(idx) if idx is not None else len(x)
        sums: dict[str, torch.Tensor] = {}
        self.base.eval()
        for start in range(0, n, batch_size):
            sel = (
                slice(start, start + batch_size) if idx is None else idx[start : start + batch_size]
            )
            logits = self.forward_shared(self.params, self.buffers, x[sel])  # (R, B, C)
            yb = y[sel].expand(len(self.runs), *y[sel].shape)
            add_stats(sums, task.stacked_stats(logits, yb))
        return _metrics_per_run(task, sums, "val", len(self.runs))

    def _write_back(self) -> None:
        """Parameters and optimizer state into each member's model and optimizer; the
        schedules' step (on the members' own optimizers, which hold their lrs)."""
        with torch.no_grad():
            for r, run in enumerate(self.runs):
                if self.padding.padded:  # no buffers (a plain layer stack)
                    self.padding.unpad_into(run.model, self.params, r)
                else:
                    unstack_into(run.model, self.params, self.buffers, r)
                self.optimizer.store_member(r, run.optimizer)
                run.step = None  # a captured step would hold the old state tensors
        with warnings.catch_warnings():  # the members' optimizers did not step themselves
            warnings.filterwarnings("ignore", message=".*lr_scheduler.step.*")
            for run in self.runs:
                if run.scheduler is not None:
                    run.scheduler.step()


def _forwards(model: nn.Module) -> tuple[Any, Any, nn.Module]:
    """``(forward, forward_shared, base)``: the stacked forward of ``model``'s members for
    inputs ``(R, B, ...)`` and for one shared input ``(B, ...)``, and the module whose
    train/eval mode they follow. A plain layer stack gets batched matmuls
    (:func:`stacked_forward`); any other model ``vmap`` of ``functional_call`` over a
    structure-only copy (batch-norm statistics updated per member through the buffers)."""
    from torch.func import functional_call, vmap

    direct = stacked_forward(model)
    if direct is not None:
        return direct, shared(direct), model
    base = copy.deepcopy(model).to("meta")

    def forward(params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (params, buffers), (x,))

    return vmap(forward), vmap(forward, in_dims=(0, 0, None)), base


def train_group(
    members: Sequence[HostedTrial], data: Any, task: Any
) -> list[tuple[HostedTrial, Callable[[], dict[str, Any]]]]:
    """Train one epoch of ``members`` as a :class:`TrialGroup`; per member (Adam-like
    first, then SGD), the member and what ends its epoch (``HostedTrial.finish_epoch``: its own evaluation and metrics; what raises there
    fails that member alone).

    Raises what the stacked epoch raised, with every member's generators put back as they
    were (its runs untouched: the caller may train them unfused instead).
    """
    t0 = time.perf_counter()
    members = [members[i] for i in family_order([m.cfg.optimizer for m in members])]
    saved = [_generator_states(m.runs[0]) for m in members]
    lanes = [m.lane for m in members]
    try:
        with lanes[0].active():
            _wait(lanes[0], lanes[1:])
            group = TrialGroup(members)
            results = group.train_epoch(data, task, members[0].cfg.batch_size)
            vals = group.evaluate_val(task, members[0].cfg.eval_batch_size)
        for lane in lanes[1:]:
            _wait(lane, [lanes[0]])
    except Exception:
        for member, states in zip(members, saved, strict=True):
            _set_generator_states(member.runs[0], states)
        raise
    return [
        (m, partial(m.finish_epoch, res, t0, val))
        for m, res, val in zip(members, results, vals, strict=True)
    ]


def _wait(lane: Any, others: Sequence[Any]) -> None:
    """``lane``'s stream waits for the others' queued work (CUDA; nothing on the CPU)."""
    if lane.stream is None:
        return
    for other in others:
        lane.stream.wait_stream(other.stream)


def _generator_states(run: Any) -> list[torch.Tensor]:
    gens = [run.generator] + ([run.order_generator] if run.order_generator is not run.generator else [])  # fmt: skip
    return [g.get_state() for g in gens]


def _set_generator_states(run: Any, states: list[torch.Tensor]) -> None:
    gens = [run.generator] + ([run.order_generator] if run.order_generator is not run.generator else [])  # fmt: skip
    for g, s in zip(gens, states, strict=True):
        g.set_state(s)
