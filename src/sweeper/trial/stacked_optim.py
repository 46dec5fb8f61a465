"""Adam, AdamW and SGD over stacked parameters, each member with its own hyperparameters.

A cross-trial fused group (``trial/host_fusion.py``) trains R hosted trials' models as one
stacked model ``(R, *shape)``; unlike the runs of one config (``trial/fused.py``, one torch
optimizer for all), each member keeps its own optimizer kind, lr, momentum, betas, eps and
weight decay. :class:`StackedOptimizer` does torch.optim's single-tensor update (the CPU
path; ``amsgrad``, ``maximize``, ``nesterov`` and ``dampening`` aside) with every
hyperparameter a ``(R, 1, ..., 1)`` tensor, so one update serves members of every kind:

* Adam: ``g += wd * p``; ``m.lerp_(g, 1 - b1)``; ``v = b2 * v + (1 - b2) * g * g``;
  ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.
* AdamW: as Adam without the L2 term, after ``p *= 1 - lr * wd``.
* SGD: ``g += wd * p``; ``buf = g`` at the first step, else ``buf = momentum * buf + g``;
  ``p -= lr * buf`` (``p -= lr * g`` without momentum).

Members of both families in one group: both updates are computed and each member takes
its own by ``torch.where`` (only the families present are computed). Scalars that torch
computes in Python (bias corrections, ``lr * wd``) are computed in float64 on the device
and rounded to float32 where torch rounds them; the step counts are device tensors, so a
step reads nothing back to the host (static shapes, no ``.item()``: capturable in
principle). Against torch.optim on the CPU the parameters agree to about 1e-7 (float32
roundings of fused multiply-adds differ: ``tests/test_host_fusion.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

KINDS = ("adam", "adamw", "sgd")
ADAM_LIKE = ("adam", "adamw")


class StackedOptimizer:
    """The members' optimizers over stacked parameters ``params`` (each ``(R, *shape)``).

    Args:
        params: the stacked parameters (leaves; updated in place under ``no_grad``).
        kinds: each member's optimizer kind (``adam``, ``adamw`` or ``sgd``).
        groups: each member's hyperparameters (its torch optimizer's ``param_groups[0]``:
            ``lr``, ``weight_decay``, ``betas``/``eps`` or ``momentum``).
    """

    def __init__(
        self, params: Sequence[torch.Tensor], kinds: Sequence[str], groups: Sequence[dict]
    ) -> None:
        self.params = list(params)
        self.kinds = list(kinds)
        device = self.params[0].device
        self.adam = any(k in ADAM_LIKE for k in kinds)
        self.sgd = any(k == "sgd" for k in kinds)

        def col(values: Sequence[float], dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.tensor(list(values), dtype=dtype, device=device)

        is_sgd = [k == "sgd" for k in kinds]
        self.is_sgd = col(is_sgd, torch.bool)
        self.has_momentum = col([k == "sgd" and g.get("momentum", 0) != 0 for k, g in zip(kinds, groups, strict=True)], torch.bool)  # fmt: skip
        self.lr = col([g["lr"] for g in groups], torch.float64)
        wd = [float(g.get("weight_decay", 0.0)) for g in groups]
        self.wd_l2 = col([w if k != "adamw" else 0.0 for k, w in zip(kinds, wd, strict=True)])
        self.wd_decoupled = col([w if k == "adamw" else 0.0 for k, w in zip(kinds, wd, strict=True)], torch.float64)  # fmt: skip
        betas = [tuple(g.get("betas", (0.9, 0.999))) for g in groups]
        self.beta1 = col([b[0] for b in betas], torch.float64)
        self.beta2 = col([b[1] for b in betas], torch.float64)
        self.one_minus_b1 = (1 - self.beta1).float()
        self.b2 = self.beta2.float()
        self.one_minus_b2 = (1 - self.beta2).float()
        self.eps = col([g.get("eps", 1e-8) for g in groups])
        self.momentum = col([g.get("momentum", 0.0) if k == "sgd" else 0.0 for k, g in zip(kinds, groups, strict=True)])  # fmt: skip
        self.step_count = torch.zeros(len(kinds), dtype=torch.float64, device=device)
        self.exp_avg = [torch.zeros_like(p) for p in self.params] if self.adam else []
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params] if self.adam else []
        self.buf = [torch.zeros_like(p) for p in self.params] if self.sgd else []
        self.has_buf = torch.zeros(len(kinds), dtype=torch.bool, device=device)

    def set_lr(self, lrs: Sequence[float]) -> None:
        """Each member's lr for the next steps (its schedule's, read once per epoch)."""
        self.lr.copy_(torch.tensor(list(lrs), dtype=torch.float64))

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor]) -> None:
        """One update of every member from ``grads`` (each ``(R, *shape)``)."""
        self.step_count += 1
        if self.adam:
            t = self.step_count
            neg_step = (-(self.lr / (1 - self.beta1**t))).float()
            bc2_sqrt = (1 - self.beta2**t).sqrt().float()
            decay = (1 - self.lr * self.wd_decoupled).float()
        neg_lr = (-self.lr).float()
        for i, (p, g) in enumerate(zip(self.params, grads, strict=True)):
            shape = (-1,) + (1,) * (p.dim() - 1)
            new_adam = new_sgd = None
            if self.adam:
                new_adam = self._adam(i, p, g, shape, neg_step, bc2_sqrt, decay)
            if self.sgd:
                new_sgd = self._sgd(i, p, g, shape, neg_lr)
            if new_adam is None:
                p.copy_(new_sgd)
            elif new_sgd is None:
                p.copy_(new_adam)
            else:
                p.copy_(torch.where(self.is_sgd.view(shape), new_sgd, new_adam))
        if self.sgd:
            self.has_buf.fill_(True)

    def _adam(self, i: int, p, g, shape, neg_step, bc2_sqrt, decay) -> torch.Tensor:
        g = g + self.wd_l2.view(shape) * p
        m, v = self.exp_avg[i], self.exp_avg_sq[i]
        m.lerp_(g, self.one_minus_b1.view(shape).expand_as(m))
        v.mul_(self.b2.view(shape)).add_(self.one_minus_b2.view(shape) * g * g)
        denom = (v.sqrt() / bc2_sqrt.view(shape)).add_(self.eps.view(shape))
        return p * decay.view(shape) + neg_step.view(shape) * m / denom

    def _sgd(self, i: int, p, g, shape, neg_lr) -> torch.Tensor:
        g = g + self.wd_l2.view(shape) * p
        buf = self.buf[i]
        moved = buf * self.momentum.view(shape) + g
        buf.copy_(torch.where(self.has_buf.view(shape), moved, g))
        d = torch.where(self.has_momentum.view(shape), buf, g)
        return p + neg_lr.view(shape) * d

    # -- torch.optim's state, member by member ------------------------------------------------
    def load_member(self, r: int, optimizer: torch.optim.Optimizer) -> None:
        """Member ``r``'s slices from its torch optimizer's state (empty: a fresh start)."""
        group = optimizer.param_groups[0]
        with torch.no_grad():
            for i, p in enumerate(group["params"]):
                state = optimizer.state.get(p, {})
                if self.kinds[r] in ADAM_LIKE and "exp_avg" in state:
                    self.exp_avg[i][r].copy_(state["exp_avg"])
                    self.exp_avg_sq[i][r].copy_(state["exp_avg_sq"])
                    self.step_count[r] = float(state["step"])
                elif self.kinds[r] == "sgd" and state.get("momentum_buffer") is not None:
                    self.buf[i][r].copy_(state["momentum_buffer"])
                    self.has_buf[r] = True

    def store_member(self, r: int, optimizer: torch.optim.Optimizer) -> None:
        """Write member ``r``'s state into its torch optimizer, in torch's own format."""
        group = optimizer.param_groups[0]
        capturable = bool(group.get("capturable", False))
        for i, p in enumerate(group["params"]):
            if self.kinds[r] in ADAM_LIKE:
                where = p.device if capturable else torch.device("cpu")
                optimizer.state[p] = {
                    "step": self.step_count[r].to(device=where, dtype=torch.float32).clone(),
                    "exp_avg": self.exp_avg[i][r].clone(),
                    "exp_avg_sq": self.exp_avg_sq[i][r].clone(),
                }
            elif group.get("momentum", 0) != 0:
                optimizer.state[p] = {"momentum_buffer": self.buf[i][r].clone()}


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
