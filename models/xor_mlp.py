"""Tiny MLPs for the noisy-XOR depth-versus-width study (deep-vs-wide-cnn-unet seed, part 1).

The seed's ``SimpleClassifier`` is ``depth`` x (Linear(width), Tanh) and a Linear output,
swept over depth 0-3 and width 1-3; depth 0 is a single Linear layer (3 parameters in the
seed's own count). Two differences, both so that XOR trains like every other classifier
here: the output has ``num_classes`` logits for cross-entropy, where the seed had one logit
for ``BCEWithLogitsLoss``, so each net has ``width`` + 1 parameters more than the seed's
table; and the activation can be swept (the seed's Tanh is the default).
"""

from __future__ import annotations

from torch import nn

from sweeper.models._api import register_model
from sweeper.models.mlp import ACTIVATIONS, mlp


@register_model(
    "xor_mlp",
    doc={"xor_mlp": "XOR MLP: depth (0-3) hidden layers of width (1-3) units, Tanh"},
    bounds={"depth": (0, None), "width": (1, None)},
    choices={"activation": tuple(ACTIVATIONS)},
)
def xor_mlp(
    *,
    in_shape: tuple[int, ...] = (2,),
    num_classes: int = 2,
    depth: int = 1,
    width: int = 2,
    activation: str = "tanh",
) -> nn.Module:
    """XOR MLP: ``depth`` x (Linear(width), activation), Linear(num_classes); logits.

    Raises:
        ValueError: a negative depth, a width below 1 or an unknown activation.
    """
    if depth < 0:
        raise ValueError(f"xor_mlp: depth must be >= 0, got {depth}")
    if width < 1:
        raise ValueError(f"xor_mlp: width must be >= 1, got {width}")
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"xor_mlp: unknown activation {activation!r}; expected one of {list(ACTIVATIONS)}"
        )
    return mlp(
        in_shape=in_shape, num_classes=num_classes, depth=depth, width=width, activation=activation
    )
