"""Zero padding: hosted trials whose MLPs differ only in hidden widths train as one stack.

A cross-trial group (``trial/host_fusion.py``) stacks its members' parameters into one
``(R, P)`` tensor. Members of one *width family* (:func:`width_family`: the same plain
layer stack, the same input and output sizes, hidden widths free) are padded to the widest
member per layer: member r's ``Linear`` weight ``(out_r, in_r)`` is the top-left block of
the padded ``(max out, max in)``, its bias the first ``out_r`` entries, every other entry
zero. That leaves each member's outputs exactly its own:

* a padded hidden unit's incoming weights and bias are zero, so its pre-activation is 0;
  its activation may not be (``sigmoid(0) = 0.5``), but its outgoing weights (the next
  layer's padded columns) are zero, so it adds nothing to any real unit;
* the gradients of the padded entries are zeroed before each optimizer step (the group's
  :meth:`Padding.mask`; the outgoing ones are not zero by themselves when ``act(0) != 0``),
  and an update of a zero entry with a zero gradient and zero optimizer state is zero in
  every family :class:`~sweeper.trial.stacked_optim.StackedOptimizer` runs: Adam/AdamW's
  moments stay ``b1 * 0 + (1 - b1) * 0 = 0`` and ``b2 * 0 + (1 - b2) * 0 = 0``, so the step
  ``lr * 0 / (sqrt(0) + eps)`` is 0; L2 weight decay adds ``wd * 0``; AdamW's decoupled
  decay scales 0 by ``1 - lr * wd``; SGD's momentum buffer stays ``momentum * 0 + 0``.
  So padded entries stay exactly zero, step after step (``tests/test_host_padding.py``
  asserts it), and the real block trains as the narrower model alone would (up to the
  order in which the batched matmuls sum: 1e-5 in the tests, not bit for bit).

Padding costs arithmetic: :data:`MAX_PAD_COST` bounds it per device type
(:func:`group_by_cost`; on the CPU, where it did not pay, it pads nothing by default).
Normalization layers and dropout never get here: :func:`width_family` takes only what
``stacked_forward`` runs (``Linear``, ``Flatten``, dropout, element-wise activations; no
buffers), and ``host_fusion.why_not`` keeps dropout out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from torch import nn

from sweeper.trial.stacked import stacked_forward

# A padded group forms only where R x (padded parameters) <= MAX_PAD_COST[device type] x
# (the members' own parameters, summed); a device type not listed pads nothing (1.0: exact
# shapes only). The CPU: 1.0, measured (benchmarks/RESULTS.md, host_cpu.py --configs-from
# widths): its stacked step is matmul-bound, so padding costs its share of arithmetic, and
# padded groups took 1.06x the unfused host's CPU time at widths 16..72 (groups padded 1.20x
# and 1.41x), 1.47x at widths 32..256 (1.22x, 1.40x) and 2.15x with all eight at 1.91x.
# CUDA: 1.5, not measured yet; there a small MLP's step is a few dozen launch-bound kernels
# (issue 24), so the padded arithmetic costs far less than its share, and 1.5 bounds the
# waste to half the members' own work.
MAX_PAD_COST = {"cpu": 1.0, "cuda": 1.5}
Shape = tuple[int, ...]
T = TypeVar("T")


def width_family(model: nn.Module) -> tuple | None:
    """``model``'s layer stack with its hidden widths left out, or None when zero padding
    cannot fuse it (not a plain layer stack, or a ``Flatten`` between two ``Linear``
    layers: there the padded units would interleave with the real ones).

    Two models of one family differ at most in the sizes of their hidden ``Linear`` layers:
    the same layers in the same order, the same activations (their settings included), the
    same input and output sizes, biases alike.
    """
    if stacked_forward(model) is None:
        return None
    leaves = [m for m in model.modules() if not isinstance(m, nn.Sequential)]
    at = [i for i, m in enumerate(leaves) if type(m) is nn.Linear]
    family: list[object] = []
    for i, m in enumerate(leaves):
        if type(m) is nn.Linear:
            d_in = m.in_features if i == at[0] else None
            d_out = m.out_features if i == at[-1] else None
            family.append(("Linear", d_in, d_out, m.bias is not None))
        elif isinstance(m, nn.Flatten) and at[0] < i < at[-1]:
            return None
        else:
            family.append(repr(m))  # e.g. LeakyReLU(negative_slope=0.01), Flatten(...)
    return tuple(family)


def param_shapes(model: nn.Module) -> list[Shape]:
    """``model``'s parameter shapes, in parameter order."""
    return [tuple(p.shape) for p in model.parameters()]


def padded_shapes(members: Sequence[Sequence[Shape]]) -> list[Shape]:
    """Each parameter's shape padded to the widest member: its largest size per dimension
    (``members``: each member's parameter shapes, in one order)."""
    return [
        tuple(max(dims) for dims in zip(*shapes, strict=True))
        for shapes in zip(*members, strict=True)
    ]


def pad_cost(members: Sequence[Sequence[Shape]]) -> float:
    """The padded group's parameter count over the members' own, summed (1.0: no padding)."""
    padded = len(members) * sum(math.prod(s) for s in padded_shapes(members))
    return padded / sum(math.prod(s) for shapes in members for s in shapes)


def pad_limit(device: torch.device | str) -> float:
    """The :func:`pad_cost` a padded group on ``device`` may have (:data:`MAX_PAD_COST`)."""
    return MAX_PAD_COST.get(torch.device(device).type, 1.0)


def group_by_cost(
    items: Sequence[T], shapes_of: Callable[[T], Sequence[Shape]], limit: float
) -> list[list[T]]:
    """``items`` (one width family) split into groups whose :func:`pad_cost` is at most
    ``limit`` (:func:`pad_limit`), each group in ``items``' order.

    The items of one exact shape stay together (a same-shape group is never split to pad
    another); the shapes go largest first (own parameter count) into the first group they
    fit, else start one. Groups of one item are returned too (the caller trains them alone).
    """
    classes: dict[tuple[Shape, ...], list[int]] = {}
    for pos, item in enumerate(items):
        classes.setdefault(tuple(tuple(s) for s in shapes_of(item)), []).append(pos)
    order = sorted(classes, key=lambda s: -sum(math.prod(d) for d in s))
    groups: list[tuple[list[tuple[Shape, ...]], list[int]]] = []
    for shape in order:
        members = classes[shape]
        for group_shapes, positions in groups:
            if pad_cost(group_shapes + [shape] * len(members)) <= limit:
                group_shapes.extend([shape] * len(members))
                positions.extend(members)
                break
        else:
            groups.append(([shape] * len(members), list(members)))
    return [[items[p] for p in sorted(positions)] for _, positions in groups]


class Padding:
    """Where R members' parameters lie inside the padded shapes of their group.

    Args:
        members: each member's parameter shapes, in parameter order.
    """

    def __init__(self, members: Sequence[Sequence[Shape]]) -> None:
        self.shapes = padded_shapes(members)
        self.sizes = [math.prod(s) for s in self.shapes]
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        # member r's parameter i: the top-left block of the padded tensor
        self.blocks = [[tuple(slice(0, d) for d in s) for s in shapes] for shapes in members]
        self.padded = any([tuple(s) for s in shapes] != self.shapes for shapes in members)

    def view(self, row: torch.Tensor, i: int) -> torch.Tensor:
        """Parameter ``i`` of one flat row ``(P,)`` in its padded shape (a view)."""
        return row[self.offsets[i] : self.offsets[i] + self.sizes[i]].view(self.shapes[i])

    def stack(self, tensors: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
        """``(R, P)``: row r holds member r's tensors (parameter order), each in the
        top-left block of its padded shape, zero elsewhere, flattened and concatenated."""
        first = tensors[0][0]
        flat = first.new_zeros(len(tensors), sum(self.sizes))
        for r, member in enumerate(tensors):
            for i, t in enumerate(member):
                self.view(flat[r], i)[self.blocks[r][i]].copy_(t)
        return flat

    def mask(self, device: torch.device | str) -> torch.Tensor:
        """``(R, P)`` bool, True on the padding (the entries that must stay zero)."""
        real = [
            [torch.ones([s.stop for s in block], dtype=torch.bool) for block in member]
            for member in self.blocks
        ]
        return (~self.stack(real)).to(device)

    def unpad_into(self, model: nn.Module, params: dict[str, torch.Tensor], r: int) -> None:
        """Member ``r``'s real blocks of the stacked ``params`` (``name -> (R, *padded)``)
        copied into ``model``'s own parameters (call under ``torch.no_grad()``)."""
        for (name, t), block in zip(model.named_parameters(), self.blocks[r], strict=True):
            t.copy_(params[name][r][block])
