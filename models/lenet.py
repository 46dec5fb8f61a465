"""LeNet-5 with ReLU and max pooling, and the four variants of the lenet-variants seed.

One builder, :func:`lenet`; the seed's models are rows of :data:`LENET_PRESETS`. Each
conv stage is conv -> (batch norm) -> ReLU -> 2x2 max pool; the first conv is padded by
``kernel_size // 2`` (28x28 stays 28x28, as LeCun's 32x32 input), later ones are not. The
classifier is ``fc`` x (Linear -> (batch norm) -> ReLU) and a final Linear to the classes.

With ``aux_heads`` a linear head reads each stage's flattened output (the seed's
``aux_output1``/``aux_output2``, its "choice 3"). ``forward`` still returns the main
logits only; the auxiliary logits of the last call are left in ``model.aux_logits``
for a trainer that wants an auxiliary loss. The seed counts their parameters, so the
presets keep them on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from sweeper.models._api import register_model
from sweeper.models._layers import kaiming_uniform_init, output_shape

_WIDE = dict(channels=(32, 64))
_WIDE_FC = dict(_WIDE, fc=(200, 140))
LENET_PRESETS: dict[str, dict] = {
    "lenet5": dict(aux_heads=True),
    "lenet5_v1": dict(aux_heads=True),
    "lenet5_v2": dict(_WIDE, aux_heads=True),
    "lenet5_v3": dict(_WIDE_FC, aux_heads=True),
    "lenet5_v4": dict(_WIDE_FC, batch_norm=True, aux_heads=True),
}
# The seed halves the learning rate every 5 epochs "for the first model variant onwards".
STEP_LR = {"lr_schedule": "step", "lr_step_size": 5, "lr_gamma": 0.5}
LENET_TRAIN = {name: STEP_LR for name in LENET_PRESETS if name != "lenet5"}
LENET_DOCS = {
    "lenet": "LeNet: conv stages (conv, BN?, ReLU, maxpool) + FC layers, Kaiming init",
    "lenet5": "LeNet-5, ReLU + max pool, 6/16 filters, 120/84 units, aux heads (77,486)",
    "lenet5_v1": "lenet5 + StepLR (halve lr every 5 epochs)",
    "lenet5_v2": "lenet5_v1 with 32/64 filters",
    "lenet5_v3": "lenet5_v2 with 200/140 hidden units",
    "lenet5_v4": "lenet5_v3 with batch norm (the seed's best, ~92% test)",
}


class LeNet(nn.Module):
    """Conv stages, then a classifier; optional auxiliary heads after every stage."""

    def __init__(self, stages: nn.ModuleList, classifier: nn.Sequential, aux: nn.ModuleList | None):
        super().__init__()
        self.stages = stages
        self.classifier = classifier
        self.aux_heads = aux
        self.aux_logits: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        aux_logits = []
        for i, stage in enumerate(self.stages):
            x = stage(x)  # (B, C_i, H_i, W_i)
            if self.aux_heads is not None:
                aux_logits.append(self.aux_heads[i](x.flatten(1)))  # (B, classes)
        self.aux_logits = aux_logits
        return self.classifier(x)  # (B, classes)


def _stage(
    c_in: int, c_out: int, kernel_size: int, padding: int, batch_norm: bool
) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel_size, padding=padding)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(c_out))
    layers += [nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers)


def _classifier(
    features: int, fc: Sequence[int], num_classes: int, batch_norm: bool
) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for width in fc:
        layers.append(nn.Linear(features, width))
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(nn.ReLU())
        features = width
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)


# Per element for channels and fc: filters and units are counts, at least one.
LENET_BOUNDS = {"channels": (1, None), "fc": (1, None), "kernel_size": (1, None)}


@register_model(
    "lenet", presets=LENET_PRESETS, train=LENET_TRAIN, doc=LENET_DOCS, bounds=LENET_BOUNDS
)
def lenet(
    *,
    in_shape: tuple[int, ...] = (1, 28, 28),
    num_classes: int = 10,
    channels: Sequence[int] = (6, 16),
    fc: Sequence[int] = (120, 84),
    kernel_size: int = 5,
    batch_norm: bool = False,
    aux_heads: bool = False,
) -> nn.Module:
    """LeNet: conv stages (conv, BN?, ReLU, maxpool), FC layers, logits; Kaiming-uniform init.

    Raises:
        ValueError: no channels, or an input too small for the stages.
    """
    if len(in_shape) != 3:
        raise ValueError(f"lenet needs an image in_shape (C, H, W), got {tuple(in_shape)}")
    if not channels:
        raise ValueError("lenet needs at least one conv stage; channels is empty")
    stages = nn.ModuleList()
    c_in = in_shape[0]
    for i, c_out in enumerate(channels):
        padding = kernel_size // 2 if i == 0 else 0
        stages.append(_stage(c_in, c_out, kernel_size, padding, batch_norm))
        c_in = c_out
    shapes = _stage_shapes(stages, in_shape, kernel_size)
    flat = [math.prod(s) for s in shapes]
    classifier = _classifier(flat[-1], fc, num_classes, batch_norm)
    aux = nn.ModuleList(nn.Linear(n, num_classes) for n in flat) if aux_heads else None
    model = LeNet(stages, classifier, aux)
    kaiming_uniform_init(model)
    return model


def _stage_shapes(
    stages: nn.ModuleList, in_shape: tuple[int, ...], kernel_size: int
) -> list[tuple[int, ...]]:
    """Each stage's output shape for one example (a dummy forward, not hard-coded sizes)."""
    shapes, shape = [], tuple(in_shape)
    for i, stage in enumerate(stages):
        try:
            shape = output_shape(stage, shape)
        except RuntimeError:
            raise ValueError(
                f"lenet: in_shape {tuple(in_shape)} is too small for {len(stages)} stages of "
                f"kernel_size {kernel_size} and 2x2 pooling (stage {i + 1} gets {shape})"
            ) from None
        shapes.append(shape)
    return shapes
