"""Search spaces: grid sizes, distributions, samplers, trial counts."""

from __future__ import annotations

import optuna

from sweeper.search.space import (
    distributions,
    finite_values,
    grid,
    planned_trials,
    space_size,
)
from sweeper.spec import load_spec, spec_from_dict


def spec_with(params, **extra):
    return spec_from_dict(
        {"name": "s", "model": {"name": "mlp"}, "parameters": params, **extra}, "t"
    )


def test_mlp_grid_is_the_seed_grid():
    spec = load_spec("sweeps/mlp_grid.yaml")
    assert space_size(spec) == 96
    assert grid(spec) == {
        "depth": [2, 5, 10],
        "width": [32, 64, 128, 256],
        "batch_size": [256, 512, 1024, 2048],
        "optimizer": ["adam", "sgd"],
    }
    assert planned_trials(spec) == 96
    assert planned_trials(spec, max_trials=4) == 4
    assert spec.train.epochs == 100


def test_finite_distributions_enumerate():
    spec = spec_with(
        {
            "depth": {"min": 1, "max": 3},
            "dropout": {"min": 0.0, "max": 0.5, "distribution": "q_uniform", "q": 0.25},
            "width": {"value": 64},
        }
    )
    assert finite_values(spec.parameters["depth"]) == [1, 2, 3]
    assert finite_values(spec.parameters["dropout"]) == [0.0, 0.25, 0.5]
    assert space_size(spec) == 9
    assert "width" not in grid(spec)  # constants are not searched


def test_continuous_space_needs_a_budget():
    spec = spec_with(
        {"lr": {"min": 1e-4, "max": 1e-1, "distribution": "log_uniform_values"}}, method="random"
    )
    assert space_size(spec) is None
    assert planned_trials(spec) is None
    assert planned_trials(spec, max_trials=7) == 7
    dist = distributions(spec)["lr"]
    assert isinstance(dist, optuna.distributions.FloatDistribution) and dist.log


def test_bayes_method_means_tpe():
    assert spec_with({"lr": {"min": 0.1, "max": 1.0}}, method="bayes").sampler_name == "tpe"
    assert (
        spec_with({"lr": {"min": 0.1, "max": 1.0}}, method="bayes", sampler="gp").sampler_name
        == "gp"
    )
