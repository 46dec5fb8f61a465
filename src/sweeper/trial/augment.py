"""Batch augmentation on the device (no per-sample Python): images in [0, 1], ``(B, C, H, W)``.

``seed`` is the LeNet seed's choice 4: horizontal flip (p 0.25), brightness/contrast jitter
(0.2), autocontrast (p 0.2), solarize (p 0.2, threshold 15/255). ``flip`` is a horizontal
flip (p 0.5) for classification; for segmentation it is a random flip/rotation (the same one
applied to the image and its mask).
"""

from __future__ import annotations

import torch


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, *([1] * (a.dim() - 1))), a, b)


def _coin(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    return (torch.rand(len(x), generator=g) < p).to(x.device)


def hflip(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    return _where(_coin(x, p, g), x.flip(-1), x)


def jitter(x: torch.Tensor, brightness: float, contrast: float, g: torch.Generator) -> torch.Tensor:
    shape = (len(x), *([1] * (x.dim() - 1)))
    b = (1 + (torch.rand(shape, generator=g) * 2 - 1) * brightness).to(x.device)
    c = (1 + (torch.rand(shape, generator=g) * 2 - 1) * contrast).to(x.device)
    x = (x * b).clamp(0, 1)
    mean = x.mean(dim=tuple(range(1, x.dim())), keepdim=True)
    return ((x - mean) * c + mean).clamp(0, 1)


def autocontrast(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    dims = tuple(range(1, x.dim()))
    lo, hi = x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)
    stretched = torch.where(hi > lo, (x - lo) / (hi - lo).clamp_min(1e-6), x)
    return _where(_coin(x, p, g), stretched, x)


def solarize(x: torch.Tensor, p: float, threshold: float, g: torch.Generator) -> torch.Tensor:
    return _where(_coin(x, p, g), torch.where(x >= threshold, 1 - x, x), x)


def augment_images(x: torch.Tensor, kind: str, g: torch.Generator) -> torch.Tensor:
    """Augment a classification batch of [0, 1] images."""
    if kind == "flip":
        return hflip(x, 0.5, g)
    if kind == "seed":
        x = hflip(x, 0.25, g)
        x = jitter(x, 0.2, 0.2, g)
        x = autocontrast(x, 0.2, g)
        return solarize(x, 0.2, 15 / 255, g)
    return x


def augment_pairs(
    x: torch.Tensor, y: torch.Tensor, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips and quarter turns, the same for each image and its mask (square images)."""
    for dim in (-1, -2):
        flip = _coin(x, 0.5, g)
        x, y = _where(flip, x.flip(dim), x), _where(flip, y.flip(dim), y)
    turns = int(torch.randint(0, 4, (1,), generator=g))
    if turns and x.shape[-1] == x.shape[-2]:
        x, y = x.rot90(turns, dims=(-2, -1)), y.rot90(turns, dims=(-2, -1))
    return x, y
