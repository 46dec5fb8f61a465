"""Spec.parameters -> Optuna distributions, grid cells and the sampler (no ray, no torch)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from sweeper.spec.schema import Param, Spec

if TYPE_CHECKING:
    import optuna


def constants(spec: Spec) -> dict[str, Any]:
    """Parameters fixed with ``value``: part of every config, not of the search space."""
    return {k: p.value for k, p in spec.parameters.items() if p.kind == "constant"}


def finite_values(param: Param) -> list[Any]:
    """Every value a finite parameter can take, in order."""
    kind = param.kind
    if kind == "constant":
        return [param.value]
    if kind == "categorical":
        return list(param.values or [])
    if kind == "int_uniform":
        return list(range(int(param.min), int(param.max) + 1))  # type: ignore[arg-type]
    if kind == "q_uniform":
        lo, hi, q = float(param.min), float(param.max), float(param.q)  # type: ignore[arg-type]
        n = int(math.floor((hi - lo) / q + 1e-9)) + 1
        return [round(lo + i * q, 12) for i in range(n)]
    raise ValueError(f"distribution {kind} has no finite set of values")


def grid(spec: Spec) -> dict[str, list[Any]]:
    """The grid a GridSampler walks: every swept (non-constant) parameter's values."""
    return {k: finite_values(p) for k, p in spec.parameters.items() if p.kind != "constant"}


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
    if spec.sampler_name == "grid":
        size = space_size(spec) or 1
        return min([size, *caps])
    return min(caps) if caps else None


def distributions(spec: Spec) -> dict[str, optuna.distributions.BaseDistribution]:
    """Optuna distributions for the swept (non-constant) parameters."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for name, p in spec.parameters.items():
        kind = p.kind
        if kind == "constant":
            continue
        if kind == "categorical":
            out[name] = CategoricalDistribution(list(p.values or []))
        elif kind == "int_uniform":
            out[name] = IntDistribution(int(p.min), int(p.max))  # type: ignore[arg-type]
        elif kind == "uniform":
            out[name] = FloatDistribution(float(p.min), float(p.max))  # type: ignore[arg-type]
        elif kind == "log_uniform_values":
            out[name] = FloatDistribution(float(p.min), float(p.max), log=True)  # type: ignore[arg-type]
        elif kind == "q_uniform":
            values = finite_values(p)
            out[name] = FloatDistribution(values[0], values[-1], step=float(p.q))  # type: ignore[arg-type]
    return out


SAMPLER_DOCS = {
    "grid": "every cell of the grid once (optuna GridSampler)",
    "random": "independent random draws (optuna RandomSampler)",
    "tpe": "Tree-structured Parzen Estimator (optuna TPESampler)",
    "gp": "Gaussian-process Bayesian optimisation (optuna GPSampler)",
    "cmaes": "CMA evolution strategy (optuna CmaEsSampler; categoricals sampled independently)",
}


def make_sampler(spec: Spec, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The Optuna sampler the spec names, seeded (``train.seed`` unless ``seed`` is given)."""
    import optuna

    seed = spec.train.seed if seed is None else seed
    name = spec.sampler_name
    if name == "grid":
        return optuna.samplers.GridSampler(grid(spec), seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    raise ValueError(f"unknown sampler {name!r}; expected one of {', '.join(SAMPLER_DOCS)}")
