"""Each epoch's data order: one helper, so a hosted trial and a process trial draw alike.

A run's order is a permutation of its training examples, drawn once per epoch from the
run's own generator. On the CPU that is the run's generator (the one augmentation draws
from too, so the draws interleave exactly as they always have). On CUDA it is a generator
of its own on the device, so the permutation is drawn there (no host-side draw and copy,
nothing that waits on the device); its state is part of the run's checkpoint.
"""

from __future__ import annotations

import torch


def order_generator(seed: int, device: torch.device, cpu: torch.Generator) -> torch.Generator:
    """The generator a run's data order comes from: ``cpu`` on the CPU, else one on
    ``device`` seeded with ``seed``."""
    if device.type == "cpu":
        return cpu
    return torch.Generator(device=device).manual_seed(seed)


def epoch_order(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """A permutation of ``range(n)`` ``(n,)`` on ``device``, drawn with ``generator`` on the
    generator's own device."""
    return torch.randperm(n, generator=generator, device=generator.device).to(device)
