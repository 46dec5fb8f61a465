"""Adam, AdamW and SGD over stacked parameters, each member with its own hyperparameters.

A cross-trial fused group (``trial/host_fusion.py``) trains R hosted trials' models as one
stacked model ``(R, *shape)``; unlike the runs of one config (``trial/fused.py``, one torch
optimizer for all), each member keeps its own optimizer kind, lr, momentum, betas, eps and
weight decay. :class:`StackedOptimizer` does torch.optim's single-tensor update (the CPU
path; ``amsgrad``, ``maximize``, ``nesterov`` and ``dampening`` aside) with every
hyperparameter an ``(R, 1)`` tensor, so one update serves many members:

* Adam: ``g += wd * p``; ``m.lerp_(g, 1 - b1)``; ``v = b2 * v + (1 - b2) * g * g``;
  ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.
* AdamW: as Adam without the L2 term, after ``p *= 1 - lr * wd``.
* SGD: ``g += wd * p``; ``buf = g`` at the first step, else ``buf = momentum * buf + g``;
  ``p -= lr * buf`` (``p -= lr * g`` without momentum).

The members' parameters are one flat ``(R, P)`` tensor (every layer concatenated), the
Adam-like members' rows first: each family's update is a few dozen element-wise operations
on its rows, whatever the number of layers. Scalars that torch computes in Python (bias
corrections, ``lr * wd``) are computed in float64 on the device and rounded to the
parameters' dtype where torch rounds them; the step counts are device tensors, so a step
reads nothing back to the host (static shapes, no ``.item()``: capturable in principle).
Against torch.optim on the CPU the parameters agree to about 1e-7 in float32 (torch's
``add(alpha=)`` is a fused multiply-add, rounded once: ``tests/test_host_fusion.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

KINDS = ("adam", "adamw", "sgd")
ADAM_LIKE = ("adam", "adamw")


class StackedOptimizer:
    """The members' optimizers over one flat stacked parameter ``flat`` ``(R, P)``.

    Row r holds member r's parameters, flattened and concatenated in ``shapes``'s order
    (the stacked parameters a forward uses are views of it). The Adam-like members come
    first, the SGD members after them (:func:`family_order`), so each family's update runs
    once, on its rows (a view), over every parameter at once: a few dozen element-wise
    operations per step, whatever the number of layers and members.

    Args:
        flat: the stacked parameters ``(R, P)``, updated in place under ``no_grad``.
        shapes: each parameter's shape, in the order they are concatenated.
        kinds: each member's optimizer kind (``adam``, ``adamw`` or ``sgd``), Adam-like first.
        groups: each member's hyperparameters (its torch optimizer's ``param_groups[0]``:
            ``lr``, ``weight_decay``, ``betas``/``eps`` or ``momentum``).
        blocks: for a zero-padded group (``trial/padding.py``), where member r's parameter
            i lies in its padded shape (``blocks[r][i]``, slices); its torch state is that
            block. None: every member has ``shapes``.
    """

    def __init__(
        self,
        flat: torch.Tensor,
        shapes: Sequence[tuple[int, ...]],
        kinds: Sequence[str],
        groups: Sequence[dict],
        blocks: Sequence[Sequence[tuple[slice, ...]]] | None = None,
    ) -> None:
        self.flat, self.kinds, self.shapes, self.blocks = flat, list(kinds), list(shapes), blocks
        if list(kinds) != [kinds[i] for i in family_order(kinds)]:
            raise ValueError(f"members must come Adam-like first, then SGD: {list(kinds)}")
        self.sizes = [math.prod(s) for s in shapes]
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        device, n = flat.device, len(kinds)
        self.a = sum(k in ADAM_LIKE for k in kinds)  # rows [0, a): Adam-like; [a, R): SGD

        self.dtype = flat.dtype  # where torch rounds a Python scalar: the parameters' dtype

        def col(values: Sequence[float], dtype: torch.dtype = flat.dtype) -> torch.Tensor:
            return torch.tensor(list(values), dtype=dtype, device=device).view(-1, 1)

        wd = [float(g.get("weight_decay", 0.0)) for g in groups]
        self.lr = col([g["lr"] for g in groups], torch.float64)
        self.wd_l2 = col([w if k != "adamw" else 0.0 for k, w in zip(kinds, wd, strict=True)])
        decoupled = [w if k == "adamw" else 0.0 for k, w in zip(kinds, wd, strict=True)]
        self.wd_decoupled = col(decoupled, torch.float64)
        betas = [tuple(g.get("betas", (0.9, 0.999))) for g in groups]
        self.beta1 = col([b[0] for b in betas], torch.float64)
        self.beta2 = col([b[1] for b in betas], torch.float64)
        self.one_minus_b1 = (1 - self.beta1).to(self.dtype)
        self.b2, self.one_minus_b2 = self.beta2.to(self.dtype), (1 - self.beta2).to(self.dtype)
        self.eps = col([g.get("eps", 1e-8) for g in groups])
        self.momentum = col([g.get("momentum", 0.0) if k == "sgd" else 0.0 for k, g in zip(kinds, groups, strict=True)])  # fmt: skip
        self.has_momentum = self.momentum != 0
        self.step_count = torch.zeros(n, 1, dtype=torch.float64, device=device)
        self.exp_avg = torch.zeros_like(flat[: self.a])
        self.exp_avg_sq = torch.zeros_like(flat[: self.a])
        self.buf = torch.zeros_like(flat[self.a :])
        self.has_buf = torch.zeros(n - self.a, 1, dtype=torch.bool, device=device)

    def set_lr(self, lrs: Sequence[float]) -> None:
        """Each member's lr for the next steps (its schedule's, read once per epoch)."""
        self.lr.copy_(torch.tensor(list(lrs), dtype=torch.float64).view(-1, 1))

    @torch.no_grad()
    def step(self, grad: torch.Tensor) -> None:
        """One update of every member from ``grad`` ``(R, P)``."""
        self.step_count += 1
        a = self.a
        if a:
            self._adam(self.flat[:a], grad[:a], slice(0, a))
        if a < len(self.kinds):
            self._sgd(self.flat[a:], grad[a:], slice(a, None))

    def _adam(self, p: torch.Tensor, g: torch.Tensor, rows: slice) -> None:
        t, lr = self.step_count[rows], self.lr[rows]
        neg_step = (-(lr / (1 - self.beta1[rows] ** t))).to(self.dtype)
        bc2_sqrt = (1 - self.beta2[rows] ** t).sqrt().to(self.dtype)
        decay = (1 - lr * self.wd_decoupled[rows]).to(self.dtype)
        g = g + self.wd_l2[rows] * p
        m, v = self.exp_avg, self.exp_avg_sq
        m.lerp_(g, self.one_minus_b1[rows].expand_as(m))
        v.mul_(self.b2[rows]).add_(self.one_minus_b2[rows] * g * g)
        denom = (v.sqrt() / bc2_sqrt).add_(self.eps[rows])
        p.mul_(decay).add_(neg_step * m / denom)

    def _sgd(self, p: torch.Tensor, g: torch.Tensor, rows: slice) -> None:
        g = g + self.wd_l2[rows] * p
        buf = self.buf
        buf.copy_(torch.where(self.has_buf, buf * self.momentum[rows] + g, g))
        d = torch.where(self.has_momentum[rows], buf, g)
        p.add_((-self.lr[rows]).to(self.dtype) * d)
        self.has_buf.fill_(True)

    # -- torch.optim's state, member by member ------------------------------------------------
    def _part(self, state: torch.Tensor, row: int, r: int, i: int) -> torch.Tensor:
        """Member ``r``'s parameter ``i`` in ``state``'s row ``row``, in the member's own
        shape (a view: of its block when the group is padded)."""
        start = self.offsets[i]
        view = state[row, start : start + self.sizes[i]].view(self.shapes[i])
        return view if self.blocks is None else view[self.blocks[r][i]]

    def load_member(self, r: int, optimizer: torch.optim.Optimizer) -> None:
        """Member ``r``'s slices from its torch optimizer's state (empty: a fresh start)."""
        params = optimizer.param_groups[0]["params"]
        with torch.no_grad():
            for i, p in enumerate(params):
                state = optimizer.state.get(p, {})
                if r < self.a and "exp_avg" in state:
                    self._part(self.exp_avg, r, r, i).copy_(state["exp_avg"])
                    self._part(self.exp_avg_sq, r, r, i).copy_(state["exp_avg_sq"])
                    self.step_count[r] = float(state["step"])
                elif r >= self.a and state.get("momentum_buffer") is not None:
                    self._part(self.buf, r - self.a, r, i).copy_(state["momentum_buffer"])
                    self.has_buf[r - self.a] = True

    def store_member(self, r: int, optimizer: torch.optim.Optimizer) -> None:
        """Write member ``r``'s state into its torch optimizer, in torch's own format."""
        group = optimizer.param_groups[0]
        capturable = bool(group.get("capturable", False))
        dense = torch.contiguous_format  # a padded block is a strided view: its own copy
        for i, p in enumerate(group["params"]):
            if r < self.a:
                where = p.device if capturable else torch.device("cpu")
                optimizer.state[p] = {
                    "step": self.step_count[r, 0].to(device=where, dtype=torch.float32).clone(),
                    "exp_avg": self._part(self.exp_avg, r, r, i).clone(memory_format=dense),
                    "exp_avg_sq": self._part(self.exp_avg_sq, r, r, i).clone(memory_format=dense),
                }
            elif group.get("momentum", 0) != 0:
                buf = self._part(self.buf, r - self.a, r, i)
                optimizer.state[p] = {"momentum_buffer": buf.clone(memory_format=dense)}


def family_order(kinds: Sequence[str]) -> list[int]:
    """Member positions with the Adam-like first, then SGD (each in its given order)."""
    return sorted(range(len(kinds)), key=lambda i: kinds[i] not in ADAM_LIKE)


def supported(kind: str, group: dict[str, Any]) -> str | None:
    """Why a member's optimizer cannot join a stacked update (one line), or None."""
    if kind not in KINDS:
        return f"optimizer {kind}"
    for flag in ("amsgrad", "maximize", "nesterov", "differentiable", "fused"):
        if group.get(flag):
            return f"{kind} with {flag}"
    if group.get("dampening", 0) != 0:
        return f"{kind} with dampening"
    if torch.is_tensor(group["lr"]):
        return f"{kind} with a tensor lr"
    return None
