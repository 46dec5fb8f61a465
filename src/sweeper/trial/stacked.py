"""Stacked forwards: a plain layer stack run for R runs at once without ``vmap``.

``vmap`` of ``functional_call`` trains any model, but every operation pays its dispatch
and its batching rule (a stacked ``Linear`` becomes views, expands and a ``bmm``, forward
and backward). A model made only of layers this module knows (``Sequential`` of ``Linear``,
``Flatten``, ``Dropout`` and element-wise activations: the MLP families) runs instead as
one ``baddbmm`` per ``Linear`` on the stacked weights ``(R, out, in)``: the same arithmetic
per run, a third of the time per step on small models. Anything else (convolutions, batch
norm, user modules) returns None and keeps ``vmap``.

:data:`STACKABLE` is the registry: module type -> a builder of the layer's stacked
function ``f(params, h) -> h``, where ``h`` is ``(R, B, ...)``, or ``(1, B, ...)`` for an
input every run shares (evaluation), broadcast to ``(R, B, ...)`` by the first ``Linear``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

Layer = Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]
Forward = Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor], torch.Tensor]


def _linear(module: nn.Linear, prefix: str) -> Layer:
    weight, bias = f"{prefix}weight", f"{prefix}bias"
    has_bias = module.bias is not None

    def run(params: dict[str, torch.Tensor], h: torch.Tensor) -> torch.Tensor:
        w = params[weight].transpose(1, 2)  # (R, in, out)
        lead = h.shape[:-1]
        flat = h.reshape(h.shape[0], -1, h.shape[-1])  # (R or 1, B*..., in)
        if has_bias and flat.shape[0] == w.shape[0]:
            out = torch.baddbmm(params[bias].unsqueeze(1), flat, w)
        else:  # a shared input (1, B, in) broadcasts over the runs
            out = torch.matmul(flat, w)
            if has_bias:
                out = out + params[bias].unsqueeze(1)
        return out.reshape(out.shape[0], *lead[1:], out.shape[-1])

    return run


def _flatten(module: nn.Flatten, prefix: str) -> Layer:
    # The module's dims count from the batch dimension; the stacked tensor has one more.
    start = module.start_dim + 1 if module.start_dim >= 0 else module.start_dim
    end = module.end_dim + 1 if module.end_dim >= 0 else module.end_dim
    return lambda params, h: h.flatten(start, end)


def _dropout(module: nn.Dropout, prefix: str) -> Layer:
    # Each element draws on its own: every run gets its own mask, as vmap's "different".
    return lambda params, h: F.dropout(h, module.p, module.training, module.inplace)


def _elementwise(module: nn.Module, prefix: str) -> Layer:
    # Parameter-free and element-wise: the stacked tensor goes through the module as it is.
    return lambda params, h: module(h)


def _sequential(module: nn.Sequential, prefix: str) -> Layer | None:
    layers = [layer_of(child, f"{prefix}{name}.") for name, child in module.named_children()]
    if any(layer is None for layer in layers):
        return None

    def run(params: dict[str, torch.Tensor], h: torch.Tensor) -> torch.Tensor:
        for layer in layers:
            h = layer(params, h)  # type: ignore[misc]  # no layer is None (checked above)
        return h

    return run


ELEMENTWISE = (
    nn.Identity,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softplus,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
)
STACKABLE: dict[type, Callable[[Any, str], Layer | None]] = {
    nn.Sequential: _sequential,
    nn.Linear: _linear,
    nn.Flatten: _flatten,
    nn.Dropout: _dropout,
    **{kind: _elementwise for kind in ELEMENTWISE},
}


def layer_of(module: nn.Module, prefix: str = "") -> Layer | None:
    """The stacked function of ``module`` (its parameters under ``prefix``), or None.

    Exact types only: a subclass may change ``forward``.
    """
    build = STACKABLE.get(type(module))
    return build(module, prefix) if build is not None else None


def stacked_forward(model: nn.Module) -> Forward | None:
    """``f(params, buffers, x)`` for the stacked ``params`` of ``model``'s runs, or None.

    ``x`` is ``(R, B, ...)`` (each run its own batch) or ``(B, ...)`` with ``shared=True``
    through :func:`shared`. None when a module is not in :data:`STACKABLE`, or the model has
    buffers (batch norm statistics: ``vmap`` updates those per run) or no parameters.
    """
    if any(True for _ in model.buffers()) or not any(True for _ in model.parameters()):
        return None
    layer = layer_of(model)
    if layer is None:
        return None
    return lambda params, buffers, x: layer(params, x)


def shared(forward: Forward) -> Forward:
    """``forward`` for one input ``(B, ...)`` that every run sees: ``(R, B, ...)`` out."""
    return lambda params, buffers, x: forward(params, buffers, x.unsqueeze(0))
