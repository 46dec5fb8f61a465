"""Multi-layer perceptrons: ``depth`` hidden layers of ``width`` units."""

from __future__ import annotations

import math

from torch import nn

from sweeper.models._api import register_model

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}


@register_model(
    "mlp",
    presets={
        "mlp_base": dict(depth=2, width=512),
        "mlp_wide": dict(depth=2, width=1024),
        "mlp_deep": dict(depth=3, width=512),
    },
    doc={
        "mlp": "MLP: depth hidden layers of width units, ReLU",
        "mlp_base": "784-512-512-10 MLP (fashion-mnist-lr-depth-width seed)",
        "mlp_wide": "wider base MLP: 2 hidden layers of 1024",
        "mlp_deep": "deeper base MLP: 3 hidden layers of 512 (932,362 params, as in the seed)",
    },
    bounds={"depth": (0, None), "width": (1, None), "dropout": (0.0, 1.0)},
    choices={"activation": tuple(ACTIVATIONS)},
)
def mlp(
    *,
    in_shape: tuple[int, ...] = (1, 28, 28),
    num_classes: int = 10,
    depth: int = 2,
    width: int = 64,
    activation: str = "relu",
    dropout: float = 0.0,
) -> nn.Module:
    """MLP: flatten, ``depth`` x (Linear(width), activation), Linear(num_classes).

    ``depth=0`` is a linear classifier. Outputs logits (no softmax: the loss applies it).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {list(ACTIVATIONS)}")
    layers: list[nn.Module] = [nn.Flatten()]
    features = math.prod(in_shape)
    for _ in range(depth):
        layers += [nn.Linear(features, width), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        features = width
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)
