"""Small plain CNNs: conv stages with 2x2 max pooling, then fully connected layers.

Each stage is conv -> ReLU -> (batch norm) -> 2x2 max pool, each hidden FC layer
Linear -> ReLU -> (batch norm). Batch norm comes *after* the ReLU because that is what the
fashion-mnist-lr-depth-width-cnn seed's ``ConvNeuralNetwork`` does (LeNet's variant 4 puts
it before; see ``lenet.py``). ``padding="same"`` pads by ``kernel_size // 2`` as that seed
does; ``"valid"`` does not pad, as the MNIST CNN of the deep-vs-wide seed.
PyTorch's default initialisation, as in both seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from sweeper.models._api import register_model
from sweeper.models._layers import output_shape

CNN_PRESETS: dict[str, dict] = {
    # fashion-mnist-lr-depth-width-cnn seed, Q1.7 "SimpleCNN": 421,642 parameters.
    "cnn_small": dict(channels=(32, 64), fc=(128,)),
    # The same seed's "more complex" ConvNeuralNetwork: 858,506 parameters.
    "cnn_bn": dict(channels=(32, 64, 128), fc=(512, 256, 128, 64), batch_norm=True),
    # deep-vs-wide-cnn-unet seed, section 2: unpadded 16/32 filters, Linear(800, 10): 12,810.
    "cnn_mnist": dict(channels=(16, 32), fc=(), padding="valid"),
}
CNN_DOCS = {
    "cnn": "CNN: conv stages (conv, ReLU, BN?, maxpool) + FC layers",
    "cnn_small": "2 conv (32/64, 3x3) + FC 128 (the lr-depth-width seed's small CNN)",
    "cnn_bn": "3 conv (32/64/128) + FC 512/256/128/64, batch norm (that seed's complex CNN)",
    "cnn_mnist": "2 unpadded conv (16/32) + one linear layer (the deep-vs-wide seed's CNN)",
}
PADDINGS = ("same", "valid")


def _stage(
    c_in: int, c_out: int, kernel_size: int, padding: str, batch_norm: bool
) -> list[nn.Module]:
    pad = kernel_size // 2 if padding == "same" else 0
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel_size, padding=pad), nn.ReLU()]
    if batch_norm:
        layers.append(nn.BatchNorm2d(c_out))
    return [*layers, nn.MaxPool2d(2)]


def _hidden(features: int, width: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(features, width), nn.ReLU()]
    return [*layers, nn.BatchNorm1d(width)] if batch_norm else layers


# The seed trained its small CNN with SGD at lr 0.001 (its MLPs at 0.01).
CNN_TRAIN = {"cnn_small": {"lr": 0.001}}


# Per element for channels and fc: filters and units are counts, at least one.
CNN_BOUNDS = {"channels": (1, None), "fc": (1, None), "kernel_size": (1, None)}


@register_model(
    "cnn",
    presets=CNN_PRESETS,
    train=CNN_TRAIN,
    doc=CNN_DOCS,
    bounds=CNN_BOUNDS,
    choices={"padding": PADDINGS},
)
def cnn(
    *,
    in_shape: tuple[int, ...] = (1, 28, 28),
    num_classes: int = 10,
    channels: Sequence[int] = (32, 64),
    kernel_size: int = 3,
    fc: Sequence[int] = (128,),
    batch_norm: bool = False,
    padding: str = "same",
) -> nn.Module:
    """CNN: conv stages (conv, ReLU, BN?, maxpool), FC layers (Linear, ReLU, BN?), logits.

    Raises:
        ValueError: an unknown padding, no channels, or an input too small for the stages.
    """
    if len(in_shape) != 3:
        raise ValueError(f"cnn needs an image in_shape (C, H, W), got {tuple(in_shape)}")
    if padding not in PADDINGS:
        raise ValueError(f"cnn: unknown padding {padding!r}; expected one of {list(PADDINGS)}")
    if not channels:
        raise ValueError("cnn needs at least one conv stage; channels is empty")
    convs: list[nn.Module] = []
    c_in = in_shape[0]
    for c_out in channels:
        convs += _stage(c_in, c_out, kernel_size, padding, batch_norm)
        c_in = c_out
    features = nn.Sequential(*convs)
    try:
        flat = math.prod(output_shape(features, tuple(in_shape)))
    except RuntimeError:
        raise ValueError(
            f"cnn: in_shape {tuple(in_shape)} is too small for {len(channels)} stages of "
            f"kernel_size {kernel_size} ({padding}) and 2x2 pooling"
        ) from None
    head: list[nn.Module] = [nn.Flatten()]
    for width in fc:
        head += _hidden(flat, width, batch_norm)
        flat = width
    head.append(nn.Linear(flat, num_classes))
    return nn.Sequential(features, *head)
