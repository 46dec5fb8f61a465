"""The typed sweep spec: W&B's sweep vocabulary plus sweeper's own keys.

A sweep file is validated once, at the edge, into a frozen :class:`Spec`. Everything
after that (search space, engine, trial, store, report) reads the spec, never the YAML.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
    model_serializer,
    model_validator,
)

from sweeper.errors import describe_value
from sweeper.mirror.storage import check_syntax
from sweeper.registry.optimizers import OPTIMIZERS
from sweeper.registry.samplers import SAMPLERS
from sweeper.registry.schedulers import POPULATION
from sweeper.spec.code import DataSpec, ModelSpec
from sweeper.spec.distributions import FINITE, MACRO_NAMES
from sweeper.spec.metric import Metric, metric_list
from sweeper.spec.objectives import Objectives
from sweeper.spec.params import (
    Number,
    Param,
    _Strict,
    flatten_params,
    nest_params,
    nested_names,
)
from sweeper.spec.sampler import SamplerSpec
from sweeper.spec.stopping import EarlyTerminate, PrunerSpec, SchedulerSpec

METHODS = ("grid", "random", "bayes")
# W&B's `method` mapped to the Optuna sampler that implements it (``SAMPLERS``' names).
METHOD_SAMPLER = {"grid": "grid", "random": "random", "bayes": "tpe"}
DEFAULT_METRIC = "val_acc"
FINITE_DISTRIBUTIONS = FINITE
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


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
    # hosted trials of one shape as one stacked step (trial/host_fusion.py; a host's setting)
    fuse_trials: StrictBool = False

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, name: str) -> str:
        if name not in OPTIMIZERS:
            raise ValueError(OPTIMIZERS.unknown(name))
        return name

    @field_validator("optimizer_args")
    @classmethod
    def _known_optimizer_args(cls, table: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        # "@key: message" puts the offending key on the error's key path (see loader).
        for name, args in table.items():
            if name not in OPTIMIZERS:
                raise ValueError(f"@{name}: {OPTIMIZERS.unknown(name)}")
            accepts = OPTIMIZERS.get(name).accepts
            bad = sorted(set(args) - set(accepts))
            if bad:
                raise ValueError(
                    f"@{name}.{bad[0]}: {name} does not take {', '.join(bad)}; "
                    f"expected some of {', '.join(accepts)}"
                )
        return table


class Resources(_Strict):
    """What one trial gets, and how many CPUs Ray may use in all.

    ``gpus: auto`` (the default) gives each trial a share of a GPU where Ray sees GPUs,
    sized by a probe of the first config (at most ``max_trials_per_gpu`` trials per GPU),
    and none where there is none; a number is each trial's share as it is.
    ``executor``: ``process`` runs each trial in a process of its own; ``host`` runs many
    trials in one long-lived process per GPU (or per few CPU cores) over one copy of the
    data; ``auto`` picks the host where it applies (see ``engine/executor.py``).
    """

    cpus: Annotated[Number, Field(gt=0)] = 1
    gpus: Literal["auto"] | Number = "auto"
    max_trials_per_gpu: Annotated[StrictInt, Field(ge=1)] = 8
    max_concurrent: Annotated[StrictInt, Field(ge=1)] | None = None
    num_cpus: Annotated[StrictInt, Field(ge=1)] | None = None
    max_failures: Annotated[StrictInt, Field(ge=0)] = 0
    executor: Literal["auto", "host", "process"] = "auto"
    # An existing Ray cluster to join ("auto", or the head's HOST:PORT); None starts one here.
    address: StrictStr | None = None

    @field_validator("address")
    @classmethod
    def _cluster_address(cls, value: str | None) -> str | None:
        if value is None or value == "auto" or _HOST_PORT.match(value):
            return value
        if value.startswith("ray://"):
            raise ValueError(
                f"expected auto or the head's HOST:PORT, got {value!r}: Ray Client (ray://) "
                "is not supported; run sweeper on a node of the cluster"
            )
        raise ValueError(
            f"expected auto or the head's HOST:PORT (e.g. 10.0.0.5:6379), got {value!r}"
        )

    @model_validator(mode="after")
    def _cpus_of_a_cluster(self) -> Resources:
        if self.address is not None and self.num_cpus is not None:
            raise ValueError(
                "@num_cpus: sets the CPUs of a Ray started here; with resources.address the "
                "cluster's nodes have their own (ray start --num-cpus): drop one of the two"
            )
        return self

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpu_share(cls, value: Any) -> Any:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if value == "auto" or (number and math.isfinite(value) and value >= 0):
            return value
        raise ValueError(
            f"expected auto or a number >= 0 (each trial's share of a GPU), got {value!r}"
        )


# The keys that stop trials early (``scheduler`` and ``pruner`` where the spec has them).
_EARLY_STOPPING = ("early_terminate", "scheduler", "pruner")
_HOST_PORT = re.compile(r"^[A-Za-z0-9_.-]+:[0-9]{1,5}$")


class WandbSpec(_Strict):
    """Weights & Biases logging; offline by default, so nothing needs a network."""

    mode: Literal["offline", "online", "disabled"] = "offline"
    project: StrictStr = "sweeper"
    entity: StrictStr | None = None
    tags: list[StrictStr] = Field(default_factory=list)


# W&B keys sweeper does not run, and why (each is a one-line error, never ignored).
UNSUPPORTED = {
    "controller": "only type local (sweeper is W&B's local controller: Ray Tune schedules "
    "every trial); give controller: {type: local} or remove the key",
    "job": "Launch jobs do not run here; give program (your script) or model",
    "image_uri": "Launch images do not run here; give program (your script) or model",
    "scheduler": "W&B Launch schedulers do not run here; for early stopping give sweeper's "
    "own scheduler: {name: asha, ...} or pruner: {name: median, ...}",
}
_MACRO = re.compile(r"\$\{([^}]*)\}")
_ENVVAR = re.compile(r"^envvar:[A-Za-z_][A-Za-z0-9_]*$")


def _wandb_top_level(raw: dict[str, Any]) -> dict[str, Any]:
    """Refuse W&B keys sweeper does not run; W&B's ``project``/``entity`` go to ``wandb``."""
    if raw.get("controller") == {"type": "local"}:  # W&B's local controller: what sweeper is
        raw = {k: v for k, v in raw.items() if k != "controller"}
    for key, why in UNSUPPORTED.items():
        if key == "scheduler" and (raw.get(key) is None or _sweepers_scheduler(raw[key])):
            continue
        if key in raw:
            raise ValueError(f"@{key}: W&B's `{key}` is not supported by sweeper: {why}")
    if raw.get("method") == "custom":
        raise ValueError("@method: W&B's `method: custom` is not supported by sweeper: "
                         "it needs a custom scheduler; use grid, random or bayes")  # fmt: skip
    raw = metric_list(dict(raw))
    moved = {k: raw.pop(k) for k in ("project", "entity") if k in raw}
    if moved:
        wandb = raw["wandb"] if isinstance(raw.get("wandb"), dict) else {}
        for key, value in moved.items():
            if key in wandb and wandb[key] != value:
                raise ValueError(f"@{key}: {value!r} differs from wandb.{key} {wandb[key]!r}")
        raw["wandb"] = {**wandb, **moved}
    if "nested_params" in raw:  # sweeper's own record of the file's nesting, not a key
        raise ValueError("@nested_params: unknown key; nest parameters with parameters:")
    if "parameters" in raw:
        if raw["parameters"] == {} and raw.get("model") is None:  # W&B: minProperties 1
            raise ValueError("@parameters: must name at least one parameter")
        nested = nested_names(raw["parameters"])
        raw["parameters"] = flatten_params(raw["parameters"])
        if nested:
            raw["nested_params"] = nested
    return raw


# Keys of a W&B Launch scheduler block (``scheduler: {job, resource, num_workers, ...}``).
_LAUNCH_KEYS = {"job", "resource", "resource_args", "num_workers", "settings", "docker_image"}


def _sweepers_scheduler(block: Any) -> bool:
    """Whether a top-level ``scheduler`` is sweeper's own (``{name: asha, ...}``), not a
    W&B Launch scheduler."""
    return isinstance(block, dict) and "name" in block and not (set(block) & _LAUNCH_KEYS)


def check_command(command: list[str], has_program: bool) -> None:
    """Each ``${macro}`` of a W&B ``command`` must be one the W&B agent knows."""
    for i, part in enumerate(command):
        for macro in _MACRO.findall(part):
            if macro not in MACRO_NAMES and not _ENVVAR.match(macro):
                known = ", ".join(f"${{{m}}}" for m in MACRO_NAMES)
                raise ValueError(
                    f"@command[{i}]: unknown macro ${{{macro}}}; expected one of {known} "
                    "or ${envvar:NAME}"
                )
            if macro == "program" and not has_program:
                raise ValueError(f"@command[{i}]: ${{program}} needs program (the script)")


class Spec(_Strict):
    """A whole sweep: W&B's sweep format plus sweeper's model, data, training, resources.

    What trials run: a registered ``model`` (sweeper trains it), or W&B's ``program``/
    ``command`` (a script of your own); with neither the file is a search space only
    (``sweeper check`` validates and prints it, ``sweeper run`` refuses it).
    """

    name: Annotated[StrictStr, Field(pattern=NAME_PATTERN, max_length=100)]
    description: StrictStr = ""
    apiVersion: StrictStr | None = None  # noqa: N815 (W&B's key)
    kind: Literal["sweep"] | None = None
    program: StrictStr | None = None
    command: list[StrictStr] | None = None
    method: Literal[METHODS] = "grid"  # type: ignore[valid-type]
    sampler: SamplerSpec | None = None  # overrides method
    metric: Metric = Field(default_factory=lambda: Metric(name=DEFAULT_METRIC, goal="maximize"))
    # Several objectives (W&B's ``metrics``, or ``metric`` given a list); ``metric`` is then
    # the first of them. Use ``objectives`` for code that must handle both.
    metrics: Annotated[list[Metric], Field(min_length=1)] | None = None
    parameters: dict[str, Param] = Field(default_factory=dict)
    run_cap: Annotated[StrictInt, Field(ge=1)] | None = None
    early_terminate: EarlyTerminate | None = None
    scheduler: SchedulerSpec | None = None
    pruner: PrunerSpec | None = None
    model: ModelSpec | None = None
    data: DataSpec = Field(default_factory=DataSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    resources: Resources = Field(default_factory=Resources)
    wandb: WandbSpec = Field(default_factory=WandbSpec)
    # Where the Optuna mirror lives (sweeper.mirror.storage); None: optuna.db in the folder.
    storage: StrictStr | None = None
    # Per-trial TensorBoard logs under <study>/tensorboard/ (scalars per epoch, HParams).
    tensorboard: StrictBool = True
    # The flat names of parameters the file nests (W&B's ``parameters:`` in a parameter);
    # a dotted name written as it is stays one flat parameter. Read from the nesting, and
    # written back as nesting (never as a key of its own).
    nested_params: tuple[StrictStr, ...] = Field(default=(), exclude=True)

    @model_serializer(mode="wrap")
    def _nested_form(self, handler: Any) -> Any:
        data = handler(self)
        if isinstance(data, dict) and isinstance(data.get("parameters"), dict):
            data["parameters"] = nest_params(data["parameters"], self.nested_params)
        return data

    @field_validator("storage")
    @classmethod
    def _known_storage(cls, url: str | None) -> str | None:
        return None if url is None else check_syntax(url)

    @model_validator(mode="before")
    @classmethod
    def _wandb_format(cls, raw: Any) -> Any:
        return _wandb_top_level(raw) if isinstance(raw, dict) else raw

    @property
    def sampler_name(self) -> str:
        """The Optuna sampler to use: ``sampler`` if given, else the one for ``method``."""
        return self.sampler.name if self.sampler is not None else METHOD_SAMPLER[self.method]

    @property
    def sampler_args(self) -> dict[str, Any]:
        """The arguments the file gives its sampler (none for ``method``'s)."""
        return dict(self.sampler.args) if self.sampler is not None else {}

    @property
    def objectives(self) -> Objectives:
        """The metrics the sampler optimises: ``metrics``, else the one ``metric``."""
        return Objectives(tuple(self.metrics or [self.metric]))

    @property
    def runs(self) -> str:
        """What a trial runs, in words: ``model mlp``, ``program train.py`` or ``nothing``."""
        if self.model is not None:
            return f"model {self.model.label}"
        if self.program is not None or self.command is not None:
            return f"program {self.program or ' '.join(self.command or [])}"
        return "nothing"

    @model_validator(mode="after")
    def _one_kind_of_trial(self) -> Spec:
        if self.model is not None:
            for key in ("program", "command"):
                if getattr(self, key) is not None:
                    raise ValueError(
                        f"@{key}: a sweep runs a registered model or a program, not both; "
                        f"remove {key} or model"
                    )
        if self.command is not None:
            check_command(self.command, self.program is not None)
        return self

    @model_validator(mode="after")
    def _several_objectives(self) -> Spec:
        if self.metrics is None:
            return self
        names = [m.name for m in self.metrics]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"@metrics[{i}].name: {name!r} is named twice")
        object.__setattr__(self, "metric", self.metrics[0])  # the first leads (not "set")
        if len(self.metrics) == 1:
            return self
        for i, m in enumerate(self.metrics):
            if m.target is not None:
                raise ValueError(
                    f"@metrics[{i}].target: a target ends a study on one metric; with "
                    "several objectives there is no single value to reach: remove it"
                )
        for key in _EARLY_STOPPING:  # each compares one metric's intermediate values
            if getattr(self, key, None) is not None:
                raise ValueError(
                    f"@{key}: early stopping compares one metric across trials; with "
                    "several objectives it is not supported: remove it or give one metric"
                )
        if not SAMPLERS.get(self.sampler_name).several_objectives:
            several = [n for n, e in SAMPLERS.items() if e.several_objectives]
            raise ValueError(
                f"@sampler: {self.sampler_name} optimises one objective; with several use "
                f"{', '.join(several[:-1])} or {several[-1]}"
            )
        return self

    @model_validator(mode="after")
    def _one_way_to_stop_early(self) -> Spec:
        given = [k for k in ("early_terminate", "scheduler", "pruner") if getattr(self, k)]
        if len(given) > 1:
            raise ValueError(
                f"@{given[1]}: early_terminate, scheduler and pruner each stop trials early; "
                f"give one, got {' and '.join(given)}"
            )
        if self.scheduler is not None and self.scheduler.name in POPULATION:
            ranges = [
                p for p in self.parameters.values() if p.min is not None and p.max is not None
            ]
            lists = [p for p in self.parameters.values() if p.values is not None]
            if not ranges and (self.scheduler.name == "pb2" or not lists):
                what = "a min/max range" if self.scheduler.name == "pb2" else "values or min/max"
                raise ValueError(
                    f"@scheduler: {self.scheduler.name} perturbs the swept parameters; "
                    f"give one with {what}"
                )
        return self

    @model_validator(mode="after")
    def _grid_is_finite(self) -> Spec:
        if not SAMPLERS.get(self.sampler_name).walks_grid:
            return self
        for name, param in self.parameters.items():
            if not param.is_finite:
                raise ValueError(
                    f"@parameters.{name}: a grid needs a finite set of values "
                    f"(values, int_uniform or q_uniform), got distribution {param.kind}"
                )
        return self
