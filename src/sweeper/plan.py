"""From a validated spec to a runnable plan: names checked against the registries.

The spec's own schema knows nothing of models or datasets; this step checks the sweep
file's names against the model, dataset and optimizer registries (importing torch), fixes
the data root, and counts the trials. Every failure is a one-line :class:`SpecError`.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeper.errors import SpecError
from sweeper.spec import Spec, TrainSpec, validate_part
from sweeper.trial.config import MODEL_KEY, SWEEPABLE_TRAIN_KEYS

DEFAULT_DATA_ROOT = "data"


@dataclass(frozen=True)
class Plan:
    """A checked spec and what running it means.

    Attributes:
        spec: the spec with ``data.root`` made absolute (this is what the study saves).
        source: where the spec came from (for messages).
        space_size: distinct configs, or None for a continuous space.
        n_trials: trials the run will make, or None when nothing bounds it.
        first_params: parameter count of the first config (a smoke build).
    """

    spec: Spec
    source: str
    space_size: int | None
    n_trials: int | None
    first_params: int

    def trial_budget(self) -> int:
        """The trials a run makes; a one-line :class:`SpecError` when nothing bounds them."""
        if self.n_trials is None:
            raise SpecError(
                self.source,
                "run_cap",
                f"a {self.spec.sampler_name} sweep needs a trial budget; "
                "set run_cap in the file or pass --max-trials",
            )
        return self.n_trials


def resolve_data_root(spec: Spec, data_dir: str | None) -> str:
    """``--data-dir``, else the file's ``data.root``, else ``$SWEEPER_DATA_DIR``, else ./data."""
    root = data_dir or spec.data.root or os.environ.get("SWEEPER_DATA_DIR") or DEFAULT_DATA_ROOT
    return str(Path(root).expanduser().resolve())


def make_plan(
    spec: Spec, source: str, *, data_dir: str | None = None, max_trials: int | None = None
) -> Plan:
    """Check ``spec`` against the registries and fix its data root."""
    from sweeper.space import planned_trials, space_size

    if max_trials is not None and max_trials < 1:
        raise SpecError("--max-trials", "", f"must be >= 1, got {max_trials}")
    data = spec.data.model_copy(update={"root": resolve_data_root(spec, data_dir)})
    spec = spec.model_copy(update={"data": data})
    info = _check_dataset(spec, source)
    model_args = _check_models(spec, source)
    _check_parameters(spec, source, model_args)
    if spec.train.augment != "none" and len(info.in_shape) != 3:
        raise SpecError(
            source,
            "train.augment",
            f"{spec.data.name} is not an image dataset; "
            f"expected augment: none, got {spec.train.augment!r}",
        )
    if spec.metric.name not in info.metrics:
        raise SpecError(
            source,
            "metric.name",
            f"{spec.data.name} trials report {', '.join(info.metrics)}; got {spec.metric.name!r}"
            f"{_did_you_mean(spec.metric.name, info.metrics)}"
            + (
                " (test metrics are never used to choose a config)"
                if "test" in spec.metric.name
                else ""
            ),
        )
    n_params = _smoke_build(spec, source, info)
    return Plan(spec, source, space_size(spec), planned_trials(spec, max_trials), n_params)


def _check_dataset(spec: Spec, source: str) -> Any:
    from sweeper.data import DataError, dataset_info, list_datasets

    try:
        return dataset_info(spec.data)
    except DataError as exc:
        hint = _did_you_mean(spec.data.name, list_datasets())
        raise SpecError(source, "data.name", f"{exc}{hint}") from None


def _model_names(spec: Spec, source: str) -> list[str]:
    """The model the spec names, or every model a swept ``model`` parameter can pick."""
    param = spec.parameters.get(MODEL_KEY)
    if param is None:
        return [spec.model.name]
    if param.kind not in ("constant", "categorical"):
        raise SpecError(
            source,
            f"parameters.{MODEL_KEY}",
            f"model takes registered names; expected value or values, got {param.kind}",
        )
    values = [param.value] if param.kind == "constant" else list(param.values or [])
    bad = [v for v in values if not isinstance(v, str)]
    if bad:
        raise SpecError(
            source,
            f"parameters.{MODEL_KEY}.values",
            f"expected registered model names, got {bad[0]!r}",
        )
    return values


def _check_models(spec: Spec, source: str) -> tuple[str, ...]:
    """Check every model the sweep can build; returns the arguments all of them take."""
    from sweeper.models import UnknownModelError, check_model_args, get_entry, list_models

    names = _model_names(spec, source)
    key = "model.name" if MODEL_KEY not in spec.parameters else f"parameters.{MODEL_KEY}.values"
    common: list[str] | None = None
    for name in names:
        try:
            entry = get_entry(name)
        except UnknownModelError as exc:
            raise SpecError(source, key, f"{exc}{_did_you_mean(name, list_models())}") from None
        bad_keys = [k for k in entry.train if k not in TrainSpec.model_fields]
        if bad_keys:
            raise SpecError(source, key, f"preset {name} sets unknown training keys {bad_keys}")
        try:
            check_model_args(name, spec.model.args)
        except UnknownModelError as exc:
            bad = sorted(set(spec.model.args) - set(entry.arg_names))[0]
            raise SpecError(
                source, f"model.args.{bad}", f"{exc}{_did_you_mean(bad, entry.arg_names)}"
            ) from None
        common = [a for a in entry.arg_names if common is None or a in common]
    return tuple(common or ())


def _check_parameters(spec: Spec, source: str, model_args: tuple[str, ...]) -> None:
    valid = (*SWEEPABLE_TRAIN_KEYS, MODEL_KEY, *model_args)
    for name, param in spec.parameters.items():
        base, dot, index = name.rpartition(".")
        if name == MODEL_KEY or (dot and index.isdigit() and base in model_args):
            continue  # a model name, or one element of a sequence argument (channels.1)
        if name not in valid:
            raise SpecError(
                source,
                f"parameters.{name}",
                f"unknown parameter {name!r}; expected an argument of model "
                f"{' / '.join(_model_names(spec, source))} "
                f"({', '.join(model_args)}) or a training key ({', '.join(SWEEPABLE_TRAIN_KEYS)})"
                f"{_did_you_mean(name, valid)}",
            )
        if name in SWEEPABLE_TRAIN_KEYS:
            _check_train_values(source, name, param)


def _check_train_values(source: str, name: str, param: Any) -> None:
    """Each value a swept training key can take must be valid as that key."""
    kind = param.kind
    if kind == "constant":
        candidates = {"value": param.value}
    elif kind == "categorical":
        candidates = {f"values[{i}]": v for i, v in enumerate(param.values)}
    else:
        candidates = {"min": param.min, "max": param.max}
    for where, value in candidates.items():
        try:
            validate_part(TrainSpec, {name: value}, source, "")
        except SpecError as exc:
            raise SpecError(source, f"parameters.{name}.{where}", exc.message) from None
    if name in ("epochs", "batch_size", "seed") and kind not in (
        "constant",
        "categorical",
        "int_uniform",
    ):
        raise SpecError(
            source,
            f"parameters.{name}.distribution",
            f"{name} takes integers; expected values or int_uniform, got {kind}",
        )


def _smoke_build(spec: Spec, source: str, info: Any) -> int:
    """Build the model of the first config, and of each value of each model parameter.

    Bad model arguments (a builder's own checks) then fail at ``check``, naming the
    parameter, not in a trial. Returns the first config's parameter count.
    """
    from sweeper.models import count_params, get_model
    from sweeper.space import finite_values
    from sweeper.trial.config import SWEEPABLE_TRAIN_KEYS, resolve_trial

    def candidates(p: Any) -> list[Any]:
        return finite_values(p) if p.is_finite else [p.min, p.max]

    first = {k: candidates(p)[0] for k, p in spec.parameters.items()}
    trials: list[tuple[str, dict[str, Any]]] = [("model", first)]
    for name, param in spec.parameters.items():
        if name not in SWEEPABLE_TRAIN_KEYS:
            trials += [(f"parameters.{name}", {**first, name: v}) for v in candidates(param)[1:]]
    counts = []
    for key, params in trials:
        try:
            cfg = resolve_trial(spec, params)
            model = get_model(
                cfg.model, in_shape=info.in_shape, num_classes=info.num_classes, **cfg.model_args
            )
        except Exception as exc:  # a builder's own argument checks
            swept = {k: v for k, v in params.items() if k not in SWEEPABLE_TRAIN_KEYS}
            raise SpecError(
                source,
                key,
                f"cannot build {params.get('model', spec.model.name)} "
                f"with {swept or spec.model.args}: {exc}",
            ) from None
        counts.append(count_params(model))
    return counts[0]


def _did_you_mean(name: str, options: Any) -> str:
    # 0.65, not difflib's 0.6: with many registered models, 0.6 offers lenet for resnet18.
    close = difflib.get_close_matches(name.lower(), list(options), n=1, cutoff=0.65)
    return f"; did you mean {close[0]!r}?" if close else ""
