"""One trial's full configuration: the spec's defaults overlaid with the swept values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sweeper.optimizers import optimizer_kwargs
from sweeper.spec.schema import Spec

# Training keys a sweep may vary under ``parameters``; every other name is a model argument.
SWEEPABLE_TRAIN_KEYS = (
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "seed",
)


@dataclass(frozen=True)
class TrialConfig:
    """Everything ``train_trial`` needs, resolved once on the driver.

    Attributes:
        params: the swept values as the sampler chose them (what tables and W&B show).
        model: registry name; ``model_args`` its arguments (fixed + swept).
        optimizer_kwargs: the kwargs the chosen optimizer accepts, defaults filled in.
    """

    params: dict[str, Any]
    model: str
    model_args: dict[str, Any]
    epochs: int
    seed: int
    repeats: int
    batch_size: int
    optimizer: str
    optimizer_kwargs: dict[str, Any]
    eval_batch_size: int
    checkpoint: bool
    device: str
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_trial(spec: Spec, params: dict[str, Any]) -> TrialConfig:
    """Overlay the swept ``params`` (and constants) on the spec's model and train blocks.

    Optimizer settings take, in order (later wins): the registry's defaults, ``train.lr`` /
    ``momentum`` / ``weight_decay``, ``train.optimizer_args[optimizer]``, swept values.
    """
    from sweeper.space import constants

    params = {**constants(spec), **params}
    train = spec.train.model_dump()
    model_args = dict(spec.model.args)
    for key, value in params.items():
        if key in SWEEPABLE_TRAIN_KEYS:
            train[key] = value
        else:
            model_args[key] = value
    opt = train["optimizer"]
    global_opt = {k: spec.train.model_dump()[k] for k in ("lr", "momentum", "weight_decay")}
    swept_opt = {k: v for k, v in params.items() if k in ("lr", "momentum", "weight_decay")}
    kwargs = optimizer_kwargs(opt, global_opt, spec.train.optimizer_args.get(opt, {}), swept_opt)
    return TrialConfig(
        params=params,
        model=spec.model.name,
        model_args=model_args,
        epochs=int(train["epochs"]),
        seed=int(train["seed"]),
        repeats=int(train["repeats"]),
        batch_size=int(train["batch_size"]),
        optimizer=opt,
        optimizer_kwargs=kwargs,
        eval_batch_size=int(train["eval_batch_size"]),
        checkpoint=bool(train["checkpoint"]),
        device=str(train["device"]),
    )
