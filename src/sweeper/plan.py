"""From a validated spec to a runnable plan: names checked against the registries.

The spec's own schema knows nothing of models or datasets; this step checks the sweep
file's names against the model, dataset and optimizer registries (importing torch), checks
every model argument, fixed or swept, against what its registry entry accepts (before any
model is built), fixes the data root, and counts the trials. Every failure is a one-line
:class:`SpecError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeper.errors import SpecError
from sweeper.spec import Spec, TrainSpec, validate_part
from sweeper.spec.code import code_paths
from sweeper.suggest import did_you_mean
from sweeper.trial.config import MODEL_KEY, SWEEPABLE_TRAIN_KEYS

DEFAULT_DATA_ROOT = "data"
ENV_DATA_DIR = "SWEEPER_DATA_DIR"
# Distributions whose values are the file's own (an integer argument takes these).
_INT_KINDS = ("constant", "categorical", "categorical_w_probabilities", "int_uniform")


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


def resolve_data_root(
    spec: Spec, data_dir: str | None, folder: str | Path = "."
) -> tuple[str, str | None]:
    """The absolute data root and where it came from (None: the default, ./data).

    ``--data-dir``, else the file's ``data.root``, else ``$SWEEPER_DATA_DIR``, else ./data.
    A relative flag, variable or default is taken from the folder the command runs in; a
    relative ``data.root`` from the sweep file's ``folder``, as its code files are.
    Resolved once here: the study saves the absolute root, so trials, script trials and
    ``resume`` never read it relative to another folder.
    """
    env = os.environ.get(ENV_DATA_DIR)
    given = [(data_dir, "--data-dir", "."), (spec.data.root, "data.root", folder),
             (env, f"${ENV_DATA_DIR}", ".")]  # fmt: skip
    for root, origin, base in given:
        if root:
            return str((Path(base) / Path(root).expanduser()).resolve()), origin
    return str(Path(DEFAULT_DATA_ROOT).resolve()), None


def make_plan(
    spec: Spec, source: str, *, data_dir: str | None = None, max_trials: int | None = None
) -> Plan:
    """Check ``spec`` against the registries and fix its data root."""
    from sweeper.search.space import planned_trials, space_size

    if max_trials is not None and max_trials < 1:
        raise SpecError("--max-trials", "", f"must be >= 1, got {max_trials}")
    folder = Path(source).parent
    root, origin = resolve_data_root(spec, data_dir, folder)
    data = spec.data.model_copy(update={"root": root})
    spec = code_paths(spec.model_copy(update={"data": data}), folder)
    if spec.model is None:  # a program's trials, or a search space only: no registry to check
        if spec.runs != "nothing":
            from sweeper.spec.program import check_program

            spec = check_program(spec, source)  # the program made absolute
        return Plan(spec, source, space_size(spec), planned_trials(spec, max_trials), 0)
    info = _check_dataset(spec, source)
    _check_root(spec, source, origin)
    entries = _check_models(spec, source)
    _check_parameters(spec, source, entries)
    if spec.train.augment != "none" and len(info.in_shape) != 3:
        raise SpecError(
            source,
            "train.augment",
            f"{spec.data.name} is not an image dataset; "
            f"expected augment: none, got {spec.train.augment!r}",
        )
    _check_objectives(spec, source, info.metrics)
    n_params = _smoke_build(spec, source, info)
    return Plan(spec, source, space_size(spec), planned_trials(spec, max_trials), n_params)


# Reported by every built-in trial besides its task's metrics: an objective of a
# multi-objective study (accuracy against size), never a single study's metric.
SIZE_METRICS = ("params",)


def _check_objectives(spec: Spec, source: str, reported: tuple[str, ...]) -> None:
    """Every objective must be a metric the trials report (``params`` too, with several)."""
    objectives = spec.objectives
    if objectives.multi:
        reported = (*reported, *SIZE_METRICS)
    for i, name in enumerate(objectives.names):
        if name in reported:
            continue
        key = f"metrics[{i}].name" if objectives.multi else "metric.name"
        raise SpecError(
            source,
            key,
            f"{spec.data.name} trials report {', '.join(reported)}; got {name!r}"
            f"{_did_you_mean(name, reported)}"
            + (" (test metrics are never used to choose a config)" if "test" in name else ""),
        )


def _check_dataset(spec: Spec, source: str) -> Any:
    from sweeper.data import DataError, dataset_info
    from sweeper.usercode import UserCodeError

    try:
        return dataset_info(spec.data)
    except UserCodeError as exc:
        key = "data.path" if spec.data.path is not None else "data.import"
        raise SpecError(source, key, str(exc)) from None
    except DataError as exc:
        message = str(exc)
        if message.startswith("args."):  # "args.split: expected one of ..."
            key, _, message = message.partition(": ")
            raise SpecError(source, f"data.{key}", message) from None
        raise SpecError(source, "data.name", message) from None


def _check_root(spec: Spec, source: str, origin: str | None) -> None:
    """A data root that was given (flag, file or variable) must exist: a typo there would
    otherwise pass ``check`` and fail, or download into a new folder, at ``run``."""
    from sweeper.data import reads_files

    root = Path(spec.data.root or DEFAULT_DATA_ROOT)
    if origin is None or root.is_dir() or not reads_files(spec.data):
        return
    key = "data.root" if origin == "data.root" else ""
    where = source if key else origin
    raise SpecError(
        where,
        key,
        f"{root} does not exist; expected the folder that holds {spec.data.name}'s files "
        f"(give it as --data-dir, data.root or ${ENV_DATA_DIR})",
    )


def _model_names(spec: Spec, source: str) -> list[str]:
    """The model the spec names, or every model a swept ``model`` parameter can pick."""
    param = spec.parameters.get(MODEL_KEY)
    if param is None:
        assert spec.model is not None  # make_plan checks models only for a model's sweep
        return [_own_model(spec, source)]
    if param.kind not in _INT_KINDS[:-1]:
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
    return [v for v in values if isinstance(v, str)]  # every one (checked above)


def _own_model(spec: Spec, source: str) -> str:
    """The model's registry key; a user's builder loaded (failures name its file and line)."""
    from sweeper.models import ensure_model
    from sweeper.usercode import UserCodeError

    assert spec.model is not None
    try:
        return ensure_model(spec.model)
    except UserCodeError as exc:
        key = "model.path" if spec.model.path is not None else "model.import"
        raise SpecError(source, key, str(exc)) from None


def _check_models(spec: Spec, source: str) -> list[Any]:
    """Check every model the sweep can build and its fixed arguments; returns their entries."""
    from sweeper.models import UnknownModelError, check_model_args, get_entry

    assert spec.model is not None  # make_plan checks models only for a model's sweep
    names = _model_names(spec, source)
    key = "model.name" if MODEL_KEY not in spec.parameters else f"parameters.{MODEL_KEY}.values"
    entries = []
    for name in names:
        try:
            entry = get_entry(name)
        except UnknownModelError as exc:
            raise SpecError(source, key, str(exc)) from None
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
        for arg, value in spec.model.args.items():
            _raise_problem(source, f"model.args.{arg}", entry.arg_problem(arg, value))
        entries.append(entry)
    return entries


def _raise_problem(source: str, key: str, problem: tuple[str, str] | None) -> None:
    """Raise ``problem`` (``(where, message)`` from :meth:`ArgSpec.problem`) at ``key``."""
    if problem is not None:
        where, message = problem
        raise SpecError(source, f"{key}{where}", message)


def _check_parameters(spec: Spec, source: str, entries: list[Any]) -> None:
    model_args = tuple(a for a in entries[0].arg_names if all(a in e.arg_names for e in entries))
    valid = (*SWEEPABLE_TRAIN_KEYS, MODEL_KEY, *model_args)
    for name, param in spec.parameters.items():
        base, dot, index = name.rpartition(".")
        if name == MODEL_KEY:
            continue
        if dot and index.isdigit() and base in model_args:  # one element: channels.1
            _check_element_values(spec, source, name, param, entries)
            continue
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
        else:
            for entry in entries:
                _check_arg_values(source, name, param, entry.arg_specs[name])


def _candidates(param: Any) -> list[tuple[str, Any]]:
    """The values a parameter names, by where they stand: ``value``, ``values[i]``, ``min``."""
    from sweeper.search.space import extremes

    kind = param.kind
    if kind == "constant":
        return [("value", param.value)]
    if kind.startswith("categorical"):
        return [(f"values[{i}]", v) for i, v in enumerate(param.values)]
    if param.min is None:  # a shaped prior: its extremes, named by its distribution key
        low, high = extremes(param)
        return [("distribution", low), ("distribution", high)]
    return [("min", param.min), ("max", param.max)]


def _check_arg_values(source: str, name: str, param: Any, arg: Any, element: bool = False) -> None:
    """Each value a swept model argument can take (a range: both ends) must pass ``arg``."""
    check = arg.element() if element else arg
    for where, value in _candidates(param):
        problem = check.problem(value)
        if problem and where in ("min", "max") and isinstance(value, float) and arg.kind == "int":
            problem = (problem[0], f"{problem[1]} (an int_uniform range needs integer min and max)")
        _raise_problem(source, f"parameters.{name}.{where}", problem)
    if arg.kind == "int" and param.kind not in _INT_KINDS:
        raise SpecError(
            source,
            f"parameters.{name}.distribution",
            f"{name} takes integers; expected values or int_uniform, got {param.kind}",
        )


def _check_element_values(
    spec: Spec, source: str, name: str, param: Any, entries: list[Any]
) -> None:
    """``channels.1``: the argument must be a list with that index, each value an element."""
    assert spec.model is not None  # make_plan checks models only for a model's sweep
    base, _, index = name.rpartition(".")
    for entry in entries:
        arg = entry.arg_specs[base]
        if not arg.sequence:
            raise SpecError(
                source,
                f"parameters.{name}",
                f"{base} of {entry.name} is not a list (it takes {arg.describe()}); "
                f"expected parameter {base}, got {name}",
            )
        length = len(spec.model.args.get(base, entry.defaults().get(base, ())))
        if int(index) >= length:
            raise SpecError(
                source,
                f"parameters.{name}",
                f"{base} of {entry.name} has {length} elements; "
                f"expected an index below {length}, got {index}",
            )
        _check_arg_values(source, name, param, arg, element=True)


def _check_train_values(source: str, name: str, param: Any) -> None:
    """Each value a swept training key can take must be valid as that key."""
    kind = param.kind
    for where, value in _candidates(param):
        try:
            validate_part(TrainSpec, {name: value}, source, "")
        except SpecError as exc:
            raise SpecError(source, f"parameters.{name}.{where}", exc.message) from None
    if name in ("epochs", "batch_size", "seed") and kind not in _INT_KINDS:
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
    from sweeper.search.space import extremes as candidates
    from sweeper.trial.config import SWEEPABLE_TRAIN_KEYS, resolve_trial

    assert spec.model is not None  # make_plan builds models only for a model's sweep
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
        except Exception as exc:  # noqa: BLE001 - a builder's own checks (user code: any error)
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
    return did_you_mean(name.lower(), options, cutoff=0.65)
