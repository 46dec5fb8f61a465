"""Every registered sampler passes one contract: the registry against its class, built from
a sweep file over a small space, asked and told a few trials through Optuna, pickled and
loaded as Ray Tune does; the sweep file's ``sampler:`` block and the docs table read the
same registry."""

from __future__ import annotations

import inspect

import optuna
import pytest
import yaml

from sweeper.errors import SweeperError
from sweeper.registry.blocks import entry_class
from sweeper.registry.samplers import SAMPLERS, markdown_table
from sweeper.search.space import distributions, make_sampler
from sweeper.spec import spec_from_dict
from sweeper.store.study import dump_spec
from tests.support import REPO

SMALL = {"width": {"values": [16, 32]}, "depth": {"min": 1, "max": 3}}
CONTINUOUS = {"lr": {"min": 1e-4, "max": 1e-1, "distribution": "log_uniform_values"}}
TWO = [{"name": "val_acc", "goal": "maximize"}, {"name": "val_loss", "goal": "minimize"}]


def spec_with(params, **extra):
    return spec_from_dict(
        {"name": "s", "model": {"name": "mlp"}, "parameters": params, **extra}, "f.yaml"
    )


def _small(name: str) -> dict:
    return SMALL if SAMPLERS.get(name).walks_grid else {**SMALL, **CONTINUOUS}


def _ask_tell(study: optuna.Study, spec, n: int, objectives: int = 1) -> None:
    for _ in range(n):
        trial = study.ask(distributions(spec))
        value = float(trial.params["depth"])
        study.tell(trial, value if objectives == 1 else [value, -value])


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_every_entry_names_arguments_its_class_takes(name):
    entry = SAMPLERS.get(name)
    takes = set(inspect.signature(entry_class(entry).__init__).parameters)
    assert "seed" in takes
    assert set(entry.accepts) <= takes, set(entry.accepts) - takes
    assert set(entry.defaults) <= takes, set(entry.defaults) - takes
    assert entry.doc and "seed" not in entry.accepts


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_every_sampler_builds_asks_tells_and_pickles_as_ray_does(name):
    spec = spec_with(_small(name), sampler=name, run_cap=3)
    sampler = make_sampler(spec)
    assert isinstance(sampler, entry_class(SAMPLERS.get(name)))
    assert isinstance(sampler, optuna.samplers.BaseSampler)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    _ask_tell(study, spec, 3)
    assert len(study.trials) == 3
    # Ray Tune pickles the sampler (tuner.pkl, the searcher's snapshots) and resume loads it
    from ray import cloudpickle

    again = cloudpickle.loads(cloudpickle.dumps(study))
    _ask_tell(again, spec, 1)
    assert len(again.trials) == 4


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_every_sampler_takes_the_objective_counts_it_says(name):
    entry = SAMPLERS.get(name)
    params = _small(name)
    if not entry.several_objectives:
        with pytest.raises(SweeperError, match=f"sampler: {name} optimises one objective"):
            spec_with(params, sampler=name, run_cap=2, metric=TWO)
        return
    spec = spec_with(params, sampler=name, run_cap=2, metric=TWO)
    study = optuna.create_study(sampler=make_sampler(spec), directions=["maximize", "minimize"])
    _ask_tell(study, spec, 2, objectives=2)
    assert len(study.best_trials) >= 1


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_a_grid_walker_refuses_continuous_parameters(name):
    if not SAMPLERS.get(name).walks_grid:
        assert spec_with({**SMALL, **CONTINUOUS}, sampler=name).sampler_name == name
        return
    with pytest.raises(SweeperError, match="parameters.lr: a grid needs a finite set of values"):
        spec_with({**SMALL, **CONTINUOUS}, sampler=name)


def test_a_sampler_block_passes_its_arguments_and_saves_as_written():
    spec = spec_with(_small("tpe"), sampler={"name": "tpe", "n_startup_trials": 2}, run_cap=3)
    assert spec.sampler_name == "tpe" and spec.sampler_args == {"n_startup_trials": 2}
    assert make_sampler(spec)._n_startup_trials == 2
    saved = yaml.safe_load(dump_spec(spec))  # the study folder's spec.yaml
    assert saved["sampler"] == {"name": "tpe", "args": {"n_startup_trials": 2}}
    assert spec_from_dict(saved, "saved") == spec
    bare = spec_with(_small("tpe"), sampler="tpe")
    assert yaml.safe_load(dump_spec(bare))["sampler"] == "tpe" and bare.sampler_args == {}
    under_args = spec_with(
        _small("nsga2"), sampler={"name": "nsga2", "args": {"population_size": 4}}
    )
    assert make_sampler(under_args)._population_size == 4
    cma = make_sampler(spec_with(_small("cmaes"), sampler="cmaes"))
    assert cma._warn_independent_sampling is False  # the entry's default


@pytest.mark.parametrize(
    ("sampler", "message"),
    [
        ("cma-es", "f.yaml: sampler: unknown sampler 'cma-es'; expected one of grid, random, "
         "tpe, gp, cmaes, nsga2, nsga3; did you mean 'cmaes'?"),
        ({"name": "tpee"}, "f.yaml: sampler.name: unknown sampler 'tpee'; expected one of"),
        ({"name": "tpe", "n_startup": 2}, "f.yaml: sampler.n_startup: sampler tpe does not take "
         "n_startup; expected some of n_startup_trials, "),
        ({"name": "random", "n_startup_trials": 2}, "sampler.n_startup_trials: sampler random "
         "does not take n_startup_trials; it takes none"),
        ({"name": "nsga2", "population_size": 1}, "f.yaml: sampler: nsga2: "),
        ({"name": "tpe", "seed": 3}, "sampler.seed: sampler tpe does not take seed"),
    ],
)  # fmt: skip
def test_bad_sampler_blocks_are_one_line_errors(sampler, message):
    with pytest.raises(SweeperError) as err:
        spec_with(_small("tpe"), sampler=sampler)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_the_docs_table_is_the_registry():
    text = (REPO / "docs" / "sweep-file.md").read_text(encoding="utf-8")
    begin = "<!-- samplers: generated from sweeper/registry/samplers.py -->\n"
    assert begin in text
    table = text.split(begin, 1)[1].split("<!-- /samplers -->", 1)[0]
    assert table == markdown_table(), (
        "docs/sweep-file.md: paste python -m sweeper.registry.samplers"
    )
