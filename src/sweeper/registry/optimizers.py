"""The optimizer registry: names a sweep file may use, as data (no torch at import).

Each entry names its ``torch.optim`` class, the flat config keys it accepts and the
defaults sweeper uses where the sweep file is silent. A sweep over ``optimizer: [adam,
sgd]`` passes each optimizer only the keys it accepts (``momentum`` reaches SGD only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sweeper.registry.base import Registry


@dataclass(frozen=True)
class OptimizerEntry:
    """One optimizer: its torch class name, accepted keys and defaults.

    ``elementwise``: every state entry and update is per parameter element (a step count
    aside), so one instance over the stacked parameters of R runs is R independent ones;
    fused runs (``trial/fused.py``) need it.
    """

    torch_class: str
    accepts: tuple[str, ...]
    defaults: dict[str, float] = field(default_factory=dict)
    elementwise: bool = True


OPTIMIZERS: Registry[OptimizerEntry] = Registry("optimizer")
OPTIMIZERS.register("adam", OptimizerEntry("Adam", ("lr", "weight_decay"), {"lr": 1e-3}))
OPTIMIZERS.register(
    "adamw", OptimizerEntry("AdamW", ("lr", "weight_decay"), {"lr": 1e-3, "weight_decay": 0.01})
)
OPTIMIZERS.register(
    "sgd", OptimizerEntry("SGD", ("lr", "momentum", "weight_decay"), {"lr": 0.01, "momentum": 0.0})
)

# Keys a sweep may set for any optimizer (in ``train`` or as swept parameters).
OPTIMIZER_KEYS = ("lr", "momentum", "weight_decay")


def optimizer_kwargs(name: str, *layers: dict[str, Any]) -> dict[str, Any]:
    """Merge defaults and the given layers (later wins), keeping the keys ``name`` accepts.

    ``None`` values in a layer mean "not set" and do not override.
    """
    entry = OPTIMIZERS.get(name)
    merged: dict[str, Any] = dict(entry.defaults)
    for layer in layers:
        merged.update({k: v for k, v in layer.items() if v is not None and k in OPTIMIZER_KEYS})
    return {k: v for k, v in merged.items() if k in entry.accepts}


def build_optimizer(name: str, params: Any, kwargs: dict[str, Any]) -> Any:
    """Instantiate the registered torch optimizer ``name`` over ``params``."""
    import torch

    return getattr(torch.optim, OPTIMIZERS.get(name).torch_class)(params, **kwargs)
