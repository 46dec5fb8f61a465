"""The typed sweep spec: W&B's sweep vocabulary plus sweeper's own keys.

A sweep file is validated once, at the edge, into a frozen :class:`Spec`. Everything
after that (search space, engine, trial, store, report) reads the spec, never the YAML.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from sweeper.errors import describe_value
from sweeper.optimizers import OPTIMIZERS
from sweeper.suggest import did_you_mean

Scalar = Union[StrictBool, StrictInt, StrictFloat, StrictStr]  # noqa: UP007 (a runtime alias)
Number = Union[StrictInt, StrictFloat]  # noqa: UP007 (a runtime alias)

METHODS = ("grid", "random", "bayes")
SAMPLERS = ("grid", "random", "tpe", "gp", "cmaes")
# W&B's `method` mapped to the Optuna sampler that implements it.
METHOD_SAMPLER = {"grid": "grid", "random": "random", "bayes": "tpe"}
DISTRIBUTIONS = (
    "constant",
    "categorical",
    "uniform",
    "int_uniform",
    "log_uniform_values",
    "q_uniform",
)
DEFAULT_METRIC = "val_acc"
FINITE_DISTRIBUTIONS = ("constant", "categorical", "int_uniform", "q_uniform")


class _Strict(BaseModel):
    """Base: unknown keys are errors, no silent type coercion, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Param(_Strict):
    """One swept parameter, in W&B's sweep-config vocabulary.

    Exactly one of ``value`` (a constant), ``values`` (a categorical list) or
    ``min``/``max`` (a range with a ``distribution``) must be given.
    """

    value: Scalar | None = None
    values: list[Scalar] | None = None
    min: Number | None = None
    max: Number | None = None
    distribution: Literal[DISTRIBUTIONS] | None = None  # type: ignore[valid-type]
    q: Annotated[Number, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Param:
        given = self.model_fields_set
        forms = [f for f in ("value", "values") if f in given]
        if "min" in given or "max" in given:
            forms.append("min/max")
        if len(forms) != 1:
            got = ", ".join(forms) if forms else "none of them"
            raise ValueError(f"expected exactly one of value, values, or min and max; got {got}")
        dist = self.kind
        if forms[0] == "value" and dist != "constant":
            raise ValueError(f"distribution {dist} does not take value; use min and max")
        if forms[0] == "values":
            self._check_values(dist)
        if forms[0] == "min/max":
            self._check_range(dist)
        if self.q is not None and dist != "q_uniform":
            raise ValueError(f"q is only used with distribution q_uniform, got distribution {dist}")
        return self

    def _check_values(self, dist: str) -> None:
        if dist != "categorical":
            raise ValueError(f"distribution {dist} does not take values; use min and max")
        if not self.values:
            raise ValueError("@values: must not be empty")
        seen = [repr(v) for v in self.values]
        dups = sorted({s for s in seen if seen.count(s) > 1})
        if dups:
            raise ValueError(f"@values: must be distinct, got {', '.join(dups)} more than once")

    def _check_range(self, dist: str) -> None:
        lo, hi = self.min, self.max
        if lo is None or hi is None:
            missing = "min" if lo is None else "max"
            raise ValueError(f"{missing} is missing: a range needs both min and max")
        if dist in ("constant", "categorical"):
            raise ValueError(f"distribution {dist} does not take min/max")
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"min and max must be finite, got min={lo}, max={hi}")
        if lo >= hi:
            raise ValueError(f"min < max must hold, got min={lo}, max={hi}")
        if dist == "int_uniform" and not (isinstance(lo, int) and isinstance(hi, int)):
            raise ValueError(f"int_uniform needs integer min and max, got min={lo}, max={hi}")
        if dist == "log_uniform_values" and lo <= 0:
            raise ValueError(f"log_uniform_values needs min > 0, got min={lo}")
        if dist == "q_uniform":
            if self.q is None:
                raise ValueError("q_uniform needs q (the step)")
            if self.q > hi - lo:
                raise ValueError(f"q must be <= max - min, got q={self.q}, max - min={hi - lo}")

    @property
    def kind(self) -> str:
        """The distribution, inferred as W&B does when the file names none."""
        if self.distribution is not None:
            return self.distribution
        given = self.model_fields_set
        if "value" in given:
            return "constant"
        if "values" in given:
            return "categorical"
        both_int = isinstance(self.min, int) and isinstance(self.max, int)
        return "int_uniform" if both_int else "uniform"

    @property
    def is_finite(self) -> bool:
        return self.kind in FINITE_DISTRIBUTIONS


class Metric(_Strict):
    """The metric the sampler optimises (W&B: ``metric: {name, goal}``).

    A ``metric`` block must name its metric, as W&B requires; a file with no block at all
    optimises :data:`DEFAULT_METRIC`.
    """

    name: StrictStr
    goal: Literal["maximize", "minimize"] = "maximize"

    @property
    def mode(self) -> str:
        """Ray Tune's word for the goal."""
        return "max" if self.goal == "maximize" else "min"


class EarlyTerminate(_Strict):
    """W&B's ``early_terminate`` block; runs as Ray Tune's ASHA scheduler."""

    type: Literal["hyperband"] = "hyperband"
    min_iter: Annotated[StrictInt, Field(ge=1)] = 1
    max_iter: Annotated[StrictInt, Field(ge=1)] | None = None
    eta: Annotated[StrictInt, Field(ge=2)] = 3


class ModelSpec(_Strict):
    """A registered model (``sweeper models`` lists them) and its fixed arguments."""

    name: StrictStr
    args: dict[str, Any] = Field(default_factory=dict)


class DataSpec(_Strict):
    """A registered dataset, where its files are, and how the training set is split."""

    name: StrictStr = "fashion_mnist"
    root: StrictStr | None = None
    val_size: Annotated[StrictInt, Field(ge=1)] = 10_000
    train_size: Annotated[StrictInt, Field(ge=1)] | None = None
    test_size: Annotated[StrictInt, Field(ge=1)] | None = None
    split_seed: StrictInt = 0
    image_size: Annotated[StrictInt, Field(ge=8)] | None = None


AUGMENTS = ("none", "flip", "seed")
LR_SCHEDULES = ("none", "step", "exponential")
PRECISIONS = ("fp32", "bf16")


class TrainSpec(_Strict):
    """Training settings; any of them may also be swept under ``parameters``."""

    epochs: Annotated[StrictInt, Field(ge=1)] = 10
    seed: StrictInt = 0
    repeats: Annotated[StrictInt, Field(ge=1)] = 1
    batch_size: Annotated[StrictInt, Field(ge=1)] = 256
    optimizer: StrictStr = "adam"
    lr: Annotated[Number, Field(gt=0)] | None = None
    momentum: Annotated[Number, Field(ge=0, lt=1)] | None = None
    weight_decay: Annotated[Number, Field(ge=0)] | None = None
    optimizer_args: dict[str, dict[str, Number]] = Field(default_factory=dict)
    eval_batch_size: Annotated[StrictInt, Field(ge=1)] = 4096
    checkpoint: StrictBool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    lr_schedule: Literal[LR_SCHEDULES] = "none"  # type: ignore[valid-type]
    lr_step_size: Annotated[StrictInt, Field(ge=1)] = 5
    lr_gamma: Annotated[Number, Field(gt=0, le=1)] = 0.5
    augment: Literal[AUGMENTS] = "none"  # type: ignore[valid-type]
    cv_folds: Annotated[StrictInt, Field(ge=2)] | None = None
    log_grad_mean: StrictBool = False
    per_class: StrictBool = True
    # The fast train step (trial/step.py): on CUDA one captured CUDA graph per step.
    compile: StrictBool = True
    precision: Literal[PRECISIONS] = "fp32"  # type: ignore[valid-type]
    channels_last: StrictBool | Literal["auto"] = "auto"

    @field_validator("channels_last", mode="before")
    @classmethod
    def _bool_or_auto(cls, value: Any) -> Any:
        if isinstance(value, bool) or value == "auto":
            return value
        raise ValueError(f"expected true, false or 'auto', got {describe_value(value)}")

    fuse: StrictBool = True  # train repeats/folds as one vmapped stack (trial/fused.py)

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, name: str) -> str:
        if name not in OPTIMIZERS:
            raise ValueError(_unknown_optimizer(name))
        return name

    @field_validator("optimizer_args")
    @classmethod
    def _known_optimizer_args(cls, table: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        # "@key: message" puts the offending key on the error's key path (see loader).
        for name, args in table.items():
            if name not in OPTIMIZERS:
                raise ValueError(f"@{name}: {_unknown_optimizer(name)}")
            bad = sorted(set(args) - set(OPTIMIZERS[name].accepts))
            if bad:
                raise ValueError(
                    f"@{name}.{bad[0]}: {name} does not take {', '.join(bad)}; "
                    f"expected some of {', '.join(OPTIMIZERS[name].accepts)}"
                )
        return table


def _unknown_optimizer(name: str) -> str:
    hint = did_you_mean(name.lower(), OPTIMIZERS)
    return f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}{hint}"


class Resources(_Strict):
    """What one trial gets, and how many CPUs Ray may use in all.

    ``gpus: auto`` (the default) gives each trial a share of a GPU where Ray sees GPUs,
    sized by a probe of the first config (at most ``max_trials_per_gpu`` trials per GPU),
    and none where there is none; a number is each trial's share as it is.
    """

    cpus: Annotated[Number, Field(gt=0)] = 1
    gpus: Literal["auto"] | Number = "auto"
    max_trials_per_gpu: Annotated[StrictInt, Field(ge=1)] = 8
    max_concurrent: Annotated[StrictInt, Field(ge=1)] | None = None
    num_cpus: Annotated[StrictInt, Field(ge=1)] | None = None
    max_failures: Annotated[StrictInt, Field(ge=0)] = 0

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpu_share(cls, value: Any) -> Any:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if value == "auto" or (number and math.isfinite(value) and value >= 0):
            return value
        raise ValueError(
            f"expected auto or a number >= 0 (each trial's share of a GPU), got {value!r}"
        )


class WandbSpec(_Strict):
    """Weights & Biases logging; offline by default, so nothing needs a network."""

    mode: Literal["offline", "online", "disabled"] = "offline"
    project: StrictStr = "sweeper"
    entity: StrictStr | None = None
    tags: list[StrictStr] = Field(default_factory=list)


class Spec(_Strict):
    """A whole sweep: search block (W&B vocabulary) plus model, data, training, resources."""

    name: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)]
    description: StrictStr = ""
    method: Literal[METHODS] = "grid"  # type: ignore[valid-type]
    sampler: Literal[SAMPLERS] | None = None  # type: ignore[valid-type]
    metric: Metric = Field(default_factory=lambda: Metric(name=DEFAULT_METRIC))
    parameters: dict[str, Param] = Field(default_factory=dict)
    run_cap: Annotated[StrictInt, Field(ge=1)] | None = None
    early_terminate: EarlyTerminate | None = None
    program: StrictStr | None = None
    command: list[StrictStr] | None = None
    model: ModelSpec | None = None
    data: DataSpec = Field(default_factory=DataSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    resources: Resources = Field(default_factory=Resources)
    wandb: WandbSpec = Field(default_factory=WandbSpec)

    @property
    def sampler_name(self) -> str:
        """The Optuna sampler to use: ``sampler`` if given, else the one for ``method``."""
        return self.sampler or METHOD_SAMPLER[self.method]

    @model_validator(mode="after")
    def _program_or_model(self) -> Spec:
        # A trial is a registered model (train_trial) or the user's own script (program).
        if self.program is None and self.model is None:
            raise ValueError("@model: missing required key (or program: your own script)")
        if self.program is not None and self.model is not None:
            raise ValueError("@program: expected one of model or program, got both")
        if self.command is not None and self.program is None:
            raise ValueError("@command: command runs a program; add program: <your script>")
        return self

    @model_validator(mode="after")
    def _grid_is_finite(self) -> Spec:
        if self.sampler_name != "grid":
            return self
        for name, param in self.parameters.items():
            if not param.is_finite:
                raise ValueError(
                    f"@parameters.{name}: a grid needs a finite set of values "
                    f"(values, int_uniform or q_uniform), got distribution {param.kind}"
                )
        return self
