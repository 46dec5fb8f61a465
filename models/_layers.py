"""Small pieces the convolutional families share: shape inference and weight init."""

from __future__ import annotations

import torch
from torch import nn


def output_shape(module: nn.Module, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of one example after ``module``, found by a dummy forward pass.

    Runs in eval mode without gradients, so batch-norm running statistics are untouched;
    the module's training flag is restored afterwards.
    """
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(torch.zeros(1, *in_shape))
    finally:
        module.train(was_training)
    return tuple(out.shape[1:])


def kaiming_uniform_init(module: nn.Module) -> None:
    """Kaiming-uniform weights (fan in, ReLU gain) and zero biases for every conv and linear."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
