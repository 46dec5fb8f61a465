"""U-Net for binary (or multi-class) segmentation, sized by ``depth`` and ``base_filters``.

Encoder level ``i`` (0 .. depth-1) is a double 3x3 conv block with ``base_filters * 2**i``
filters followed by 2x2 max pooling; the bottleneck has ``base_filters * 2**depth``. Each
decoder level upsamples by a 2x2 transposed conv that halves the filters, concatenates the
encoder's output at that scale (the skip) and applies a double conv block. A 1x1 conv gives
``num_classes`` logit channels: ``(B, num_classes, H, W)``, no sigmoid (the loss applies it).

H and W must be divisible by ``2**depth`` so every skip meets a decoder map of its size.
"""

from __future__ import annotations

import torch
from torch import nn

from sweeper.models._api import register_model


def _double_conv(c_in: int, c_out: int, batch_norm: bool) -> nn.Sequential:
    """(3x3 conv -> BN? -> ReLU) twice; convs before BN carry no bias."""
    layers: list[nn.Module] = []
    for c in (c_in, c_out):
        layers.append(nn.Conv2d(c, c_out, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """Encoder, bottleneck, decoder with skip connections, 1x1 head."""

    def __init__(self, in_channels: int, num_classes: int, depth: int, base: int, batch_norm: bool):
        super().__init__()
        widths = [base * 2**i for i in range(depth + 1)]  # per level; widths[depth]: bottleneck
        self.depth = depth
        self.down = nn.ModuleList()
        c = in_channels
        for w in widths[:-1]:
            self.down.append(_double_conv(c, w, batch_norm))
            c = w
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _double_conv(c, widths[-1], batch_norm)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
            for i in reversed(range(depth))
        )
        self.merge = nn.ModuleList(
            _double_conv(2 * widths[i], widths[i], batch_norm) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(tuple(x.shape[-2:]), self.depth)
        skips = []
        for block in self.down:
            x = block(x)  # (B, base*2**i, H/2**i, W/2**i)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)  # (B, base*2**depth, H/2**depth, W/2**depth)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips), strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))  # up(x) and skip: same shape
        return self.head(x)  # (B, num_classes, H, W)


def check_divisible(hw: tuple[int, ...], depth: int) -> None:
    """Raise ValueError unless both spatial sizes are multiples of ``2**depth``."""
    m = 2**depth
    if any(s % m for s in hw):
        raise ValueError(
            f"unet with depth {depth} needs H and W divisible by 2**{depth} = {m}, got "
            f"{'x'.join(map(str, hw))}; crop or pad the images, or lower depth"
        )


@register_model(
    "unet",
    doc={"unet": "U-Net: depth levels, filters doubling from base_filters, skip concat"},
    bounds={"depth": (1, None), "base_filters": (1, None)},
)
def unet(
    *,
    in_shape: tuple[int, ...] = (1, 64, 64),
    num_classes: int = 1,
    depth: int = 4,
    base_filters: int = 16,
    batch_norm: bool = True,
) -> nn.Module:
    """U-Net: ``depth`` pooling levels, filters doubling from ``base_filters``; logit maps.

    Raises:
        ValueError: in_shape not (C, H, W), depth or base_filters below 1, or H, W not
            divisible by ``2**depth``.
    """
    if len(in_shape) != 3:
        raise ValueError(f"unet needs an image in_shape (C, H, W), got {tuple(in_shape)}")
    if depth < 1:
        raise ValueError(f"unet: depth must be >= 1, got {depth}")
    if base_filters < 1:
        raise ValueError(f"unet: base_filters must be >= 1, got {base_filters}")
    check_divisible(tuple(in_shape[1:]), depth)
    return UNet(in_shape[0], num_classes, depth, base_filters, batch_norm)
