"""Spec.parameters -> Optuna distributions, grid cells and the sampler (no ray, no torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sweeper.registry.samplers import SAMPLERS
from sweeper.spec.distributions import REGISTRY
from sweeper.spec.schema import Param, Spec
from sweeper.spec.values import as_value, choices, from_choice, to_choice

if TYPE_CHECKING:
    import optuna


def constants(spec: Spec) -> dict[str, Any]:
    """Parameters fixed with ``value``: part of every config, not of the search space."""
    return {k: p.value for k, p in spec.parameters.items() if p.kind == "constant"}


def finite_values(param: Param) -> list[Any]:
    """Every value a finite parameter can take, in order."""
    dist = REGISTRY[param.kind]
    if dist.values is None:
        raise ValueError(f"distribution {param.kind} has no finite set of values")
    return dist.values(param)


def grid(spec: Spec) -> dict[str, list[Any]]:
    """The grid a GridSampler walks: every swept (non-constant) parameter's values (a list
    or mapping as its JSON text: :mod:`sweeper.spec.values`), each distinct value once."""
    return {
        k: choices(finite_values(p)) for k, p in spec.parameters.items() if p.kind != "constant"
    }


def space_size(spec: Spec) -> int | None:
    """Number of distinct configs, or None when a parameter is continuous."""
    size = 1
    for param in spec.parameters.values():
        if not param.is_finite:
            return None
        size *= len(finite_values(param))
    return size


def planned_trials(spec: Spec, max_trials: int | None = None) -> int | None:
    """How many trials a run makes: grid size (capped), else ``run_cap``/``--max-trials``.

    A grid visits each cell at most once, so its trial count never exceeds the grid size.
    Returns None when nothing bounds the count (a random/bayes sweep with no cap).
    """
    caps = [c for c in (max_trials, spec.run_cap) if c is not None]
    if SAMPLERS.get(spec.sampler_name).walks_grid:
        size = space_size(spec) or 1
        return min([size, *caps])
    return min(caps) if caps else None


def _drawn_as_values(spec: Spec, param: Param) -> bool:
    """A grid walks a finite parameter's values themselves (no quantile to decode)."""
    return SAMPLERS.get(spec.sampler_name).walks_grid and param.is_finite


def distributions(spec: Spec) -> dict[str, optuna.distributions.BaseDistribution]:
    """The Optuna distributions the sampler draws the swept (non-constant) parameters from.

    A shaped prior is drawn as a quantile (see :mod:`sweeper.spec.distributions`);
    :func:`decode` turns a draw into the config a trial receives.
    """
    from optuna.distributions import CategoricalDistribution

    out: dict[str, Any] = {}
    for name, p in spec.parameters.items():
        dist = REGISTRY[p.kind]
        if p.kind == "constant":
            continue
        if _drawn_as_values(spec, p) and dist.decode is not None:
            out[name] = CategoricalDistribution(choices(finite_values(p)))
        else:
            out[name] = dist.draw(p)
    return out


def recorded_distributions(spec: Spec) -> dict[str, optuna.distributions.BaseDistribution]:
    """Optuna distributions holding the values trials receive (``optuna.db``'s params)."""
    out = distributions(spec)
    for name in out:
        p = spec.parameters[name]
        if not _drawn_as_values(spec, p):
            out[name] = REGISTRY[p.kind].recorded(p)
    return out


def decode(spec: Spec, drawn: dict[str, Any]) -> dict[str, Any]:
    """The sampler's draws as the values a trial receives (quantiles through their CDF)."""
    out = dict(drawn)
    for name, value in drawn.items():
        p = spec.parameters.get(name)
        if p is None:
            continue
        if _drawn_as_values(spec, p):  # a list or mapping was drawn as its JSON text
            out[name] = from_choice(p.values, value) if p.values is not None else value
            continue
        dist = REGISTRY[p.kind]
        if dist.decode is not None:
            out[name] = dist.decode(p, value)
    return out


def recorded_params(spec: Spec, params: dict[str, Any]) -> dict[str, Any]:
    """A trial's values as :func:`recorded_distributions` holds them (a list or mapping as
    its JSON text); a value read back from the trial table's CSV is mapped to the spec's."""
    out = dict(params)
    for name, value in params.items():
        p = spec.parameters.get(name)
        if p is not None and p.kind != "constant" and p.values is not None:
            out[name] = to_choice(p.values, value)
    return out


def received(param: Param, read: Any) -> Any:
    """A value read back from the trial table as the value the trial received
    (``"[1, 2]"`` -> ``[1, 2]``; a continuous parameter's value as it is)."""
    if param.values is not None:
        return as_value(param.values, read)
    return as_value([param.value], read) if param.kind == "constant" else read


def extremes(param: Param) -> list[Any]:
    """The values a trial can receive, or for a continuous parameter the lowest and highest
    (a shaped prior's at its quantile bounds)."""
    if param.is_finite:
        return finite_values(param)
    if param.min is not None and REGISTRY[param.kind].decode is None:
        return [param.min, param.max]
    drawn = REGISTRY[param.kind].recorded(param)
    return [drawn.low, drawn.high]


def describe(param: Param) -> str:
    """One parameter in words: ``normal (mu 0, sigma 1)``, ``int_uniform [1, 8]``."""
    kind = param.kind
    if kind == "constant":
        return f"constant {param.value!r}"
    if kind.startswith("categorical"):
        probs = f" with probabilities {param.probabilities}" if param.probabilities else ""
        return f"{kind} {list(param.values or [])}{probs}"
    keys = [k for k in REGISTRY[kind].keys if k not in ("min", "max")]
    args = ", ".join(f"{k} {param.arg(k):g}" for k in keys)
    bounds = f" [{param.min:g}, {param.max:g}]" if param.min is not None else ""
    return f"{kind}{bounds}" + (f" ({args})" if args else "")


def flatten(nested: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted names: ``{"optimizer": {"lr": 1}}`` -> ``{"optimizer.lr": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """A config of dotted names as the nested mapping W&B gives a script (inverse of
    :func:`flatten`): ``{"optimizer.lr": 1}`` -> ``{"optimizer": {"lr": 1}}``.

    Raises ``ValueError`` where a name is both a value and a group (``a`` and ``a.b``).
    """
    out: dict[str, Any] = {}
    for name in sorted(flat, key=lambda n: n.count(".")):
        *groups, leaf = name.split(".")
        node = out
        for i, group in enumerate(groups):
            node = node.setdefault(group, {})
            if not isinstance(node, dict):
                raise ValueError(f"{name}: {'.'.join(groups[: i + 1])} is a value, not a group")
        if isinstance(node.get(leaf), dict):
            raise ValueError(f"{name}: is a group of parameters and a value")
        node[leaf] = flat[name]
    return out


def script_config(spec: Spec, values: dict[str, Any]) -> dict[str, Any]:
    """A trial's values as W&B's agent gives a script its arguments, in the file's order:
    a nested parameter inside its top-level group's mapping (``opt={'lr': 0.1}``), a name
    written with dots as one flat argument (Hydra's ``optimizer.config.learning_rate=0.01``).
    """
    out: dict[str, Any] = {}
    for name in spec.parameters:
        if name not in values:
            continue
        if name not in spec.nested_params:
            out[name] = values[name]
            continue
        *groups, leaf = name.split(".")
        node = out
        for group in groups:
            node = node.setdefault(group, {})
        node[leaf] = values[name]
    return out


def make_sampler(spec: Spec, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The Optuna sampler the spec names (:data:`sweeper.registry.samplers.SAMPLERS`), with
    the file's arguments, seeded (``train.seed`` unless ``seed`` is given)."""
    entry = SAMPLERS.get(spec.sampler_name)
    seed = spec.train.seed if seed is None else seed
    return entry.build(seed, spec.sampler_args, grid(spec) if entry.walks_grid else None)
