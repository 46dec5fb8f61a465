"""One trial's full configuration: the spec's defaults overlaid with the swept values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sweeper.registry.optimizers import OPTIMIZER_KEYS, optimizer_kwargs
from sweeper.spec.schema import Spec, TrainSpec

# Training keys a sweep may vary under ``parameters``; ``model`` picks a registered model
# (a preset); every other name is an argument of the model.
SWEEPABLE_TRAIN_KEYS = (
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "seed",
    "lr_schedule",
    "lr_step_size",
    "lr_gamma",
    "augment",
)
MODEL_KEY = "model"


@dataclass(frozen=True)
class TrialConfig:
    """Everything ``train_trial`` needs, resolved from the spec and the swept values.

    Attributes:
        params: the swept values as the sampler chose them (what tables and W&B show).
        model: registry name; ``model_args`` its arguments (fixed + swept).
        train: the training settings (a :class:`TrainSpec`) after every layer was applied.
        optimizer_kwargs: the kwargs the chosen optimizer accepts, defaults filled in.
    """

    params: dict[str, Any]
    model: str
    model_args: dict[str, Any]
    train: TrainSpec
    optimizer_kwargs: dict[str, Any]

    # The training settings the trial code reads, named here so readers and type checkers
    # see them (each is ``train``'s field of the same name).
    @property
    def epochs(self) -> int:
        return self.train.epochs

    @property
    def batch_size(self) -> int:
        return self.train.batch_size

    @property
    def eval_batch_size(self) -> int:
        return self.train.eval_batch_size

    @property
    def seed(self) -> int:
        return self.train.seed

    @property
    def repeats(self) -> int:
        return self.train.repeats

    @property
    def cv_folds(self) -> int | None:
        return self.train.cv_folds

    @property
    def optimizer(self) -> str:
        return self.train.optimizer

    @property
    def lr_schedule(self) -> str:
        return self.train.lr_schedule

    @property
    def lr_step_size(self) -> int:
        return self.train.lr_step_size

    @property
    def lr_gamma(self) -> float:
        return self.train.lr_gamma

    @property
    def augment(self) -> str:
        return self.train.augment

    @property
    def device(self) -> str:
        return self.train.device

    @property
    def precision(self) -> str:
        return self.train.precision

    @property
    def channels_last(self) -> bool | str:
        return self.train.channels_last

    @property
    def compile(self) -> bool:
        return self.train.compile

    @property
    def fuse(self) -> bool:
        return self.train.fuse

    @property
    def checkpoint(self) -> bool:
        return self.train.checkpoint

    @property
    def log_grad_mean(self) -> bool:
        return self.train.log_grad_mean

    @property
    def per_class(self) -> bool:
        return self.train.per_class


def preset_train_defaults(model: str) -> dict[str, Any]:
    """Training defaults a registered preset implies (e.g. LeNet v1's StepLR)."""
    from sweeper.models import get_entry

    return dict(get_entry(model).train)


def _apply_indexed(model: str, args: dict[str, Any], indexed: dict[str, Any]) -> None:
    """Set elements of sequence arguments: ``channels.1: 64`` sets ``channels[1]``.

    Optuna samples scalars only; this is how a sweep varies one filter count or layer width.
    """
    if not indexed:
        return
    from sweeper.models import get_entry

    defaults = get_entry(model).defaults()
    for key, value in sorted(indexed.items()):
        base, _, index = key.rpartition(".")
        seq = list(args.get(base, defaults.get(base, ())))
        i = int(index)
        if not 0 <= i < len(seq):
            raise ValueError(f"{key}: {base} of {model} has {len(seq)} elements, no index {i}")
        seq[i] = value
        args[base] = tuple(seq)


def resolve_trial(spec: Spec, params: dict[str, Any]) -> TrialConfig:
    """Overlay the swept ``params`` (and constants) on the spec's model and train blocks.

    Training settings take, in order (later wins): TrainSpec defaults, the chosen model
    preset's training defaults, keys the sweep file sets in ``train``, swept values.
    Optimizer settings: registry defaults, ``train.lr``/``momentum``/``weight_decay``,
    ``train.optimizer_args[optimizer]``, swept values.
    """
    from sweeper.models import ensure_model
    from sweeper.search.space import constants

    params = {**constants(spec), **params}
    model = str(params.get(MODEL_KEY) or ensure_model(spec.model))
    explicit = spec.train.model_dump(include=spec.train.model_fields_set)
    swept_train = {k: v for k, v in params.items() if k in SWEEPABLE_TRAIN_KEYS}
    layers = {**preset_train_defaults(model), **explicit, **swept_train}
    train = TrainSpec.model_validate({**spec.train.model_dump(), **layers})
    assert spec.model is not None  # ensure_model above refuses a spec without a model
    model_args = dict(spec.model.args)
    swept_args = {
        k: v for k, v in params.items() if k not in SWEEPABLE_TRAIN_KEYS and k != MODEL_KEY
    }
    model_args.update({k: v for k, v in swept_args.items() if "." not in k})
    _apply_indexed(model, model_args, {k: v for k, v in swept_args.items() if "." in k})
    global_opt = {k: getattr(spec.train, k) for k in OPTIMIZER_KEYS}
    swept_opt = {k: v for k, v in params.items() if k in OPTIMIZER_KEYS}
    preset_opt = {k: v for k, v in preset_train_defaults(model).items() if k in OPTIMIZER_KEYS}
    kwargs = optimizer_kwargs(
        train.optimizer,
        preset_opt,
        global_opt,
        spec.train.optimizer_args.get(train.optimizer, {}),
        swept_opt,
    )
    return TrialConfig(params, model, model_args, train, kwargs)
