"""W&B's own sweep format: its example files pass ``check``, what its validator rejects fails
with one line naming the key, every distribution samples what it says, nesting round-trips.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import optuna
import pytest
import yaml

from sweeper.cli import main
from sweeper.search.space import (
    decode,
    distributions,
    flatten,
    grid,
    make_sampler,
    nest,
    recorded_distributions,
    recorded_params,
    space_size,
)
from sweeper.spec import spec_from_dict
from sweeper.spec.schema import EarlyTerminate
from sweeper.spec.values import identity
from tests.support import REPO

WANDB = REPO / "tests" / "specs" / "wandb_format"
GOOD = sorted((WANDB / "good").glob("*.yaml"))
UNSUPPORTED = sorted((WANDB / "unsupported").glob("*.yaml"))


def _check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(code: int, err: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err.rstrip("\n")


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_wandb_examples_pass_check(
    path: Path, capsys: pytest.CaptureFixture[str], tmp_path, monkeypatch
) -> None:
    raw = yaml.safe_load(path.read_text())
    if raw.get("program"):  # check finds the program from the folder it runs in, as W&B does
        (tmp_path / raw["program"]).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / raw["program"]).write_text("")
    monkeypatch.chdir(tmp_path)
    code, out, err = _check(capsys, str(path))
    assert code == 0, err
    assert f"{path}: ok" in out
    assert f"study        {raw.get('name', path.stem)}" in out  # name: the file's stem


@pytest.mark.parametrize("path", UNSUPPORTED, ids=lambda p: p.stem)
def test_wandb_examples_with_unsupported_keys(path: Path, capsys: pytest.CaptureFixture[str]):
    key = "job" if "launch" in path.stem else "controller"
    code, _, err = _check(capsys, str(path))
    line = _one_line(code, err)
    assert f"{path}: {key}: W&B's `{key}` is not supported by sweeper" in line


# Configurations W&B's validator rejects (wandb/sweeps tests/test_config.py and
# tests/test_validation.py), each with the key path and words the error must name.
REJECTED = {
    "min_gt_max": (
        {"method": "random", "parameters": {"v1": {"max": 3, "min": 5}, "v2": {"min": 5, "max": 6}}},
        "parameters.v1: min < max must hold, got min=5, max=3",
    ),
    "negative_sigma": (
        {"method": "random", "parameters": {"v1": {"mu": 0.1, "sigma": -0.1, "distribution": "normal"}}},
        "parameters.v1.sigma: must be > 0, got -0.1",
    ),
    "wrong_prob_length": (
        {"method": "random", "parameters": {"v1": {"values": [1, 2, 3], "probabilities": [0.1, 0.2, 0.3, 0.4]}}},
        "parameters.v1.probabilities: expected one per value (3), got 4",
    ),
    "irregular_probs": (
        {"method": "random", "parameters": {"v1": {"values": [1, 2, 3], "probabilities": [0.1, 0.2, 0.3]}}},
        "parameters.v1.probabilities: must sum to 1",
    ),
    "int_uniform_floats": (
        {"method": "random", "parameters": {"a": {"min": 0.0, "max": 1.0, "distribution": "int_uniform"}}},
        "parameters.a: int_uniform needs integer min and max",
    ),
    "goal_minimise": (
        {"metric": {"name": "loss", "goal": "minimise"}, "method": "grid", "parameters": {"v1": {"values": ["a", "b"]}}},
        "metric.goal: expected one of 'maximize' or 'minimize', got 'minimise'",
    ),
    "controller_invalid": (
        {"controller": {"type": "invalid"}, "method": "random", "parameters": {"a": {"values": [1, 2]}}},
        "controller: W&B's `controller` is not supported by sweeper",
    ),
    "metrics_and_metric": (
        {"method": "bayes", "metric": {"name": "loss"}, "metrics": [{"name": "loss"}, {"name": "acc"}], "parameters": {"v1": {"values": [1, 2]}}},
        "metrics: give metric (one objective) or metrics (several), not both",
    ),
    "method_custom": (
        {"method": "custom", "parameters": {"v1": {"values": [1, 2]}}},
        "method: W&B's `method: custom` is not supported by sweeper",
    ),
    "no_parameters": (
        {"method": "random", "parameters": {}},
        "parameters: must name at least one parameter",
    ),
    "old_log_uniform": (
        {"method": "random", "parameters": {"a": {"min": 1, "max": 2, "distribution": "log_uniform"}}},
        "parameters.a.distribution: log_uniform with min=1, max=2 takes exponents; "
        "use distribution: log_uniform_values with min: 2.718, max: 7.389",
    ),
    "loguniform_values_min_gt_max": (
        {"method": "random", "parameters": {"a": {"min": 2, "max": 1, "distribution": "log_uniform_values"}}},
        "parameters.a: min < max must hold, got min=2, max=1",
    ),
    "run_cap_zero": (
        {"method": "random", "run_cap": 0, "parameters": {"a": {"values": [1, 2]}}},
        "run_cap: must be >= 1, got 0",
    ),
    "normal_without_distribution": (
        {"method": "random", "parameters": {"a": {"mu": 0, "sigma": 1}}},
        "parameters.a: expected exactly one of value, values, or min and max; "
        "got mu, sigma without a distribution",
    ),
    "unknown_macro": (
        {"method": "grid", "program": "t.py", "command": ["${interpreter}", "${progam}"], "parameters": {"a": {"values": [1]}}},
        "command[1]: unknown macro ${progam}",
    ),
    "nested_with_values": (
        {"method": "grid", "parameters": {"opt": {"parameters": {"lr": {"values": [1]}}, "values": [2]}}},
        "parameters.opt: a nested parameter takes only parameters, got values",
    ),
    "nested_bad_range": (
        {"method": "random", "parameters": {"opt": {"parameters": {"lr": {"min": 1.0, "max": 0.5}}}}},
        "parameters.opt.parameters.lr: min < max must hold",
    ),
    "program_and_model": (
        {"method": "grid", "program": "t.py", "model": {"name": "mlp"}, "parameters": {"a": {"values": [1]}}},
        "program: a sweep runs a registered model or a program, not both",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", REJECTED, ids=str)
def test_configs_wandb_rejects(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    config, expected = REJECTED[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(yaml.safe_dump(config))
    line = _one_line(*_check(capsys, str(path))[::2])
    assert f"{path}: {expected}" in line
    assert "name:" not in line.split(f"{path}: ")[1][:5]  # never a complaint about `name`


# -- distributions ---------------------------------------------------------------------------

EVERY = yaml.safe_load((WANDB / "good" / "docs-every-distribution.yaml").read_text())


def _every(sampler: str) -> object:
    return spec_from_dict({**EVERY, "sampler": sampler, "name": "every"}, "t")


def _in_bounds(name: str, value: object) -> None:
    p = EVERY["parameters"][name]
    kind = p.get("distribution")
    q = p.get("q")
    if "values" in p:
        assert value in p["values"]
    elif "value" in p:
        assert value == p["value"]
    elif kind in (None, "uniform", "log_uniform_values", "inv_log_uniform_values"):
        assert p["min"] <= value <= p["max"]
        if kind is None and isinstance(p["min"], int):
            assert isinstance(value, int)
    elif kind == "q_uniform":
        assert p["min"] <= value <= p["max"]
        assert math.isclose((value - p["min"]) / q, round((value - p["min"]) / q), abs_tol=1e-9)
    elif kind in ("beta", "q_beta"):
        assert 0 <= value <= 1
    elif kind in ("log_normal", "q_log_normal"):
        assert value >= 0
    if q is not None and kind != "q_uniform":  # W&B's quantisation: a multiple of q
        assert math.isclose(value / q, round(value / q), abs_tol=1e-6), (name, value)
        assert isinstance(value, int) == isinstance(q, int)


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_every_distribution_samples_in_bounds(sampler: str) -> None:
    spec = _every(sampler)
    dists, recorded = distributions(spec), recorded_distributions(spec)
    study = optuna.create_study(sampler=make_sampler(spec, seed=1), direction="minimize")
    seen: dict[str, list[object]] = {k: [] for k in dists}
    for _ in range(30):
        trial = study.ask(dists)
        config = decode(spec, trial.params)
        for name, value in config.items():
            _in_bounds(name, value)
            seen[name].append(value)
            rec = recorded[name]  # the mirror's distribution holds the value received
            assert rec._contains(rec.to_internal_repr(value)), (name, value, rec)
        study.tell(trial, float(config["dropout"]))
    assert all(len(set(map(repr, v))) > 1 for v in seen.values())  # none stuck on one value


def test_shaped_priors_follow_their_distributions() -> None:
    spec = _every("random")
    study = optuna.create_study(sampler=make_sampler(spec, seed=0))
    draws = [decode(spec, study.ask(distributions(spec)).params) for _ in range(400)]

    def mean(name: str) -> float:
        return sum(d[name] for d in draws) / len(draws)

    assert mean("bias") == pytest.approx(100, abs=1.5)  # normal mu 100, sigma 10
    assert mean("mix") == pytest.approx(2 / 7, abs=0.03)  # beta(2, 5)
    assert mean("scale") == pytest.approx(math.exp(0.5), rel=0.15)  # log_normal(0, 1)
    share = sum(d["activation"] == "relu" for d in draws) / len(draws)
    assert share == pytest.approx(0.5, abs=0.07)  # probabilities [0.5, 0.25, 0.25]


def test_grid_walks_probabilities_values_and_gets_the_finite_error() -> None:
    spec = spec_from_dict(
        {"method": "grid", "parameters": {"a": {"values": [1, 2], "probabilities": [0.9, 0.1]}}},
        "g.yaml",
    )
    assert grid(spec) == {"a": [1, 2]}
    assert decode(spec, {"a": 2}) == {"a": 2}  # a grid's draw is the value itself
    with pytest.raises(Exception, match="a grid needs a finite set of values"):
        spec_from_dict({"method": "grid", "parameters": {"a": {"distribution": "normal"}}}, "g")


@pytest.mark.parametrize("sampler", ["gp", "cmaes"])
def test_gp_and_cmaes_draw_shaped_priors(sampler: str) -> None:
    spec = spec_from_dict(
        {
            "method": "random",
            "sampler": sampler,
            "parameters": {
                "x": {"distribution": "normal", "mu": 1, "sigma": 2},
                "y": {"distribution": "q_beta", "a": 2, "b": 2, "q": 0.1},
            },
        },
        "t",
    )
    study = optuna.create_study(sampler=make_sampler(spec, seed=0))
    for _ in range(12):
        trial = study.ask(distributions(spec))
        config = decode(spec, trial.params)
        assert 0 <= config["y"] <= 1 and math.isfinite(config["x"])
        study.tell(trial, (config["x"] - 1) ** 2 + config["y"])


def test_searcher_hands_trials_decoded_values_and_stops_at_target() -> None:
    from sweeper.engine import optuna_private
    from sweeper.engine.search import SpecSearch

    spec = spec_from_dict(
        {
            "method": "random",
            "metric": {"name": "loss", "goal": "minimize", "target": 0.5},
            "parameters": {"x": {"distribution": "log_normal", "mu": 0, "sigma": 1}},
        },
        "t",
    )
    search = SpecSearch(spec)
    config = search.suggest("t1")
    assert config["x"] > 0 and config["x"] != optuna_private.trials(search)["t1"].params["x"]
    search.on_trial_result("t1", {"loss": 0.7, "training_iteration": 1})
    assert search.suggest("t2") is not None  # 0.7 has not reached 0.5
    search.on_trial_result("t2", {"loss": 0.4, "training_iteration": 1})
    assert search.suggest("t3") == "FINISHED"  # Searcher.FINISHED: no new trials


# -- nesting, hyperband, model-less files ------------------------------------------------------


def test_nested_parameters_flatten_and_nest_round_trip() -> None:
    path = WANDB / "good" / "sweep-nested-cli.yaml"
    spec = spec_from_dict(yaml.safe_load(path.read_text()), str(path))
    assert list(spec.parameters) == ["batch_size", "optimizer.lr", "optimizer.nadam.beta"]
    flat = {"batch_size": 32, "optimizer.lr": 0.001, "optimizer.nadam.beta": 0.9}
    nested = {"batch_size": 32, "optimizer": {"lr": 0.001, "nadam": {"beta": 0.9}}}
    assert nest(flat) == nested
    assert flatten(nested) == flat
    with pytest.raises(ValueError, match="is a value, not a group"):
        nest({"a": 1, "a.b": 2})


def test_nested_names_for_a_builtin_model_are_unknown_parameters(capsys, tmp_path) -> None:
    path = tmp_path / "nested_model.yaml"
    config = {
        "method": "grid",
        "model": {"name": "mlp"},
        "train": {"epochs": 1},
        "parameters": {"optimizer": {"parameters": {"lr": {"values": [0.1]}}}},
    }
    path.write_text(yaml.safe_dump(config))
    line = _one_line(*_check(capsys, str(path))[::2])
    assert "parameters.optimizer.lr: unknown parameter 'optimizer.lr'" in line


@pytest.mark.parametrize(
    ("block", "grace", "max_t"),
    [
        ({"min_iter": 3}, 3, 10),
        ({"max_iter": 27, "s": 2}, 3, 27),  # W&B's bands 27/3 = 9, 27/9 = 3
        ({"max_iter": 10, "s": 2, "eta": 3}, 1, 10),  # int(10/3) = 3, int(10/9) = 1
        ({"max_iter": 27, "s": 5}, 1, 27),  # bands stop once below 1
        ({}, 1, 10),
    ],
)
def test_hyperband_maps_onto_asha(block: dict, grace: int, max_t: int) -> None:
    et = EarlyTerminate.model_validate({"type": "hyperband", **block})
    assert (et.grace_period, et.max_t(10)) == (grace, max_t)


def test_search_space_only_checks_and_refuses_to_run(capsys, tmp_path) -> None:
    path = tmp_path / "space only.yaml"
    path.write_text(yaml.safe_dump({"method": "grid", "parameters": {"a": {"values": [1, 2]}}}))
    code, out, err = _check(capsys, str(path))
    assert code == 0, err
    assert "study        space_only" in out and "nothing (a search space only)" in out
    assert "a  " in out and "categorical [1, 2]" in out
    code = main(["run", str(path), "--out", str(tmp_path / "runs")])
    line = _one_line(code, capsys.readouterr().err)
    assert "`sweeper run` needs a program or a model" in line


def test_project_and_entity_go_to_wandb() -> None:
    spec = spec_from_dict(
        {"project": "p", "entity": "e", "program": "t.py", "parameters": {"a": {"value": 1}}}, "t"
    )
    assert (spec.wandb.project, spec.wandb.entity) == ("p", "e")
    assert spec.metric.goal == "maximize"  # no metric block: sweeper's val_acc, maximised
    with_block = spec_from_dict(
        {"metric": {"name": "loss"}, "parameters": {"a": {"value": 1}}}, "t"
    )
    assert with_block.metric.goal == "minimize"  # W&B's default goal


@pytest.mark.slow
def test_metric_target_ends_the_study(tmp_path: Path, ray_session, data_root) -> None:
    """One trial at a time; the first reaches the target, so no second one starts."""
    from sweeper.store import Study

    config = {
        "name": "target_xor",
        "method": "random",
        "run_cap": 4,
        "metric": {"name": "val_acc", "goal": "maximize", "target": 0.0},
        "parameters": {"width": {"values": [2, 3]}, "lr": {"distribution": "log_normal"}},
        "model": {"name": "xor_mlp"},
        "data": {"name": "xor"},
        "train": {"epochs": 2, "optimizer": "sgd"},
        "resources": {"max_concurrent": 1},
    }
    path = tmp_path / "target_xor.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path), "--out", str(tmp_path / "runs")]) == 0
    study = Study.open("target_xor", tmp_path / "runs")
    assert study.meta()["state"] == "finished"
    df = study.trials()
    assert len(df) == 1 and df["state"].tolist() == ["COMPLETE"]
    assert df["config/lr"].iloc[0] > 0  # log_normal: the value received, not the quantile
    ot = optuna.load_study(study_name="target_xor", storage=study.optuna_url)
    assert ot.trials[0].params["lr"] == pytest.approx(df["config/lr"].iloc[0])


@pytest.mark.parametrize(
    ("impute", "goal", "told"),
    [("latest", "maximize", 0.5), ("best", "maximize", 0.9), ("worst", "maximize", 0.2),
     ("best", "minimize", 0.2), ("worst", "minimize", 0.9), (None, "maximize", None)],
)  # fmt: skip
def test_impute_tells_the_sampler_a_failed_trials_value(impute, goal, told):
    """W&B's ``metric.impute``: a trial that failed after reporting is told to Optuna with
    the latest, best or worst of its values; without impute it is told as failed."""
    from sweeper.engine import optuna_private
    from sweeper.engine.search import SpecSearch

    metric = {"name": "val_acc", "goal": goal, **({"impute": impute} if impute else {})}
    spec = spec_from_dict(
        {
            "name": "imp",
            "method": "random",
            "metric": metric,
            "run_cap": 2,
            "parameters": {"width": {"min": 1, "max": 3}},
            "model": {"name": "xor_mlp"},
            "data": {"name": "xor"},
        },
        "t",
    )
    search = SpecSearch(spec)
    assert isinstance(search.suggest("a"), dict)
    for step, value in enumerate([0.2, 0.9, 0.5], start=1):
        search.on_trial_result("a", {"val_acc": value, "training_iteration": step})
    search.on_trial_complete("a", error=True)
    (trial,) = optuna_private.study(search).get_trials(deepcopy=False)
    if told is None:
        assert trial.state.name == "FAIL" and trial.value is None
    else:
        assert trial.state.name == "COMPLETE" and trial.value == pytest.approx(told)


# -- values of any JSON type, dotted names, local controller, W&B-only notes ----------------

JSON_VALUES = yaml.safe_load((WANDB / "good" / "json-values.yaml").read_text())


def _identities(values: list) -> set[str]:
    return {identity(v) for v in values}


@pytest.mark.parametrize("sampler", ["grid", "random", "tpe", "gp", "cmaes", "nsga2"])
def test_json_values_reach_the_trial_as_written_for_every_sampler(sampler: str) -> None:
    """Optuna draws a list, mapping or null by its JSON text; the trial gets the value
    itself (1, 1.0 and true stay apart), and the mirror's distributions hold it."""
    spec = spec_from_dict({**JSON_VALUES, "sampler": sampler, "name": "j"}, "t")
    dists, recorded = distributions(spec), recorded_distributions(spec)
    study = optuna.create_study(sampler=make_sampler(spec, seed=3))
    seen: dict[str, set[str]] = {k: set() for k in dists}
    rng = random.Random(0)
    for _ in range(24):
        trial = study.ask(dists)
        config = decode(spec, trial.params)
        for name, value in config.items():
            assert identity(value) in _identities(JSON_VALUES["parameters"][name]["values"])
            seen[name].add(identity(value))
        for name, value in recorded_params(spec, config).items():
            assert recorded[name]._contains(recorded[name].to_internal_repr(value)), name
        study.tell(trial, rng.random())  # no optimum: every value keeps being drawn
    if sampler == "cmaes":  # CMA-ES starts at the middle quantile: a weighted pick stays
        del seen["schedule"]
    assert {"1", "1.0", "true"} >= seen["flag"] and all(len(v) > 1 for v in seen.values())


def test_a_grid_of_list_values_counts_each_cell_once() -> None:
    """wandb/wandb#3467's lists: 3 x 2 x 2 = 12 cells, each once (W&B's #11445 repeats)."""
    raw = yaml.safe_load((WANDB / "good" / "issue-3467-list-values.yaml").read_text())
    spec = spec_from_dict({**raw, "method": "grid"}, "t")
    assert space_size(spec) == 12
    study = optuna.create_study(sampler=make_sampler(spec))
    cells = set()
    for _ in range(12):
        trial = study.ask(distributions(spec))
        cells.add(identity(decode(spec, trial.params)))
        if len(cells) < 12:  # the last tell stops the study (outside optimize: an error)
            study.tell(trial, 0.0)
    assert len(cells) == 12
    assert ["RN50", [224, 224]] in [json.loads(c)["model_name"] for c in cells]


def test_list_values_are_distinct_by_their_json() -> None:
    with pytest.raises(Exception, match=r"must be distinct, got \[1, 2\] more than once"):
        spec_from_dict({"parameters": {"a": {"values": [[1, 2], [1, 2]]}}}, "t")
    spec = spec_from_dict({"parameters": {"a": {"values": [{"x": 1, "y": 2}, {"x": 2}]}}}, "t")
    assert space_size(spec) == 2


def test_trial_table_text_reads_back_as_the_value() -> None:
    """CSV text (``[16]``, ``{'name': 'sgd'...}``, empty for null) back to the spec's value:
    what export writes into its sweep file."""
    from sweeper.export import trial_params
    from sweeper.spec.values import label

    spec = spec_from_dict({**JSON_VALUES, "name": "j"}, "t")
    sgd = {"name": "sgd", "momentum": 0.9}
    row = {"config/optimizer": label(sgd), "config/layers": "[128, 64]",
           "config/dropout": float("nan"), "config/flag": "1.0",
           "config/schedule": "{'step': 10}"}  # fmt: skip
    assert trial_params(spec, row) == {
        "optimizer": sgd, "layers": [128, 64], "dropout": None, "flag": 1.0,
        "schedule": {"step": 10},
    }  # fmt: skip
    assert label(sgd) == '{"name": "sgd", "momentum": 0.9}'


def test_dotted_names_stay_flat_beside_nesting_and_round_trip() -> None:
    from sweeper.search.space import script_config
    from sweeper.store.study import dump_spec

    path = WANDB / "good" / "hydra-dotted-names.yaml"
    spec = spec_from_dict(yaml.safe_load(path.read_text()), str(path))
    assert spec.nested_params == ("trainer.max_epochs",)
    values = {"optimizer": "adam", "optimizer.config.learning_rate": 0.01,
              "model.ssm.d_ssm": 64, "trainer.max_epochs": 2}  # fmt: skip
    assert script_config(spec, values) == {
        "optimizer": "adam", "optimizer.config.learning_rate": 0.01, "model.ssm.d_ssm": 64,
        "trainer": {"max_epochs": 2},
    }  # fmt: skip
    again = spec_from_dict(yaml.safe_load(dump_spec(spec)), "saved")  # the study's spec.yaml
    assert again.nested_params == spec.nested_params and again.parameters == spec.parameters
    with pytest.raises(Exception, match="nested_params: unknown key"):
        spec_from_dict({"nested_params": ["a"], "parameters": {"a": {"value": 1}}}, "t")


def test_the_local_controller_runs_and_others_are_refused(capsys, tmp_path) -> None:
    spec = spec_from_dict({"controller": {"type": "local"}, "parameters": {"a": {"value": 1}}}, "t")
    assert "controller" not in spec.model_dump()
    path = tmp_path / "cloud.yaml"
    path.write_text(yaml.safe_dump({"controller": {"type": "cloud"}, "method": "grid",
                                    "parameters": {"a": {"values": [1]}}}))  # fmt: skip
    line = _one_line(*_check(capsys, str(path))[::2])
    assert "controller: W&B's `controller` is not supported by sweeper: only type local" in line


@pytest.mark.parametrize(
    ("raw", "note"),
    [
        ({"parameters": {"a": {"values": [1, 2]}}}, "no method: W&B requires one"),
        ({"method": "random", "metrics": [{"name": "a"}, {"name": "b", "goal": "maximize"}],
          "parameters": {"x": {"values": [1, 2]}}}, "metrics: W&B takes several metrics only"),
        ({"method": "grid", "model": {"name": "xor_mlp"}, "data": {"name": "xor"}},
         "no parameters: W&B requires at least one"),
        ({"method": "grid", "parameters": {"a": {"values": [1, 2], "probabilities": [0.5, 0.5]}}},
         "parameters.a: W&B's grid refuses probabilities"),
        ({"method": "bayes", "metric": {"name": "l", "impute_while_running": True},
          "parameters": {"x": {"min": 0.0, "max": 1.0}}}, "W&B takes latest, best, worst or false"),
    ],
)  # fmt: skip
def test_check_notes_what_wandbs_validator_rejects(raw, note, capsys, tmp_path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(raw))
    code, out, err = _check(capsys, str(path))
    assert code == 0, err
    (line,) = [x for x in out.splitlines() if "W&B note" in x]
    assert note in line


def test_impute_while_running_shows_running_trials_to_the_sampler() -> None:
    """A running trial that reported values is seen as finished with its best so far."""
    from sweeper.engine import optuna_private
    from sweeper.engine.search import SpecSearch
    from sweeper.search.impute import RunningImputed

    spec = spec_from_dict(
        {"method": "bayes", "metric": {"name": "loss", "impute_while_running": "latest"},
         "parameters": {"x": {"min": 0.0, "max": 1.0}}}, "t",
    )  # fmt: skip
    search = SpecSearch(spec)
    study = optuna_private.study(search)
    assert isinstance(study.sampler, RunningImputed)
    for i, losses in enumerate([[0.5, 0.2, 0.4], []]):
        search.suggest(f"t{i}")
        for step, loss in enumerate(losses, start=1):
            search.on_trial_result(f"t{i}", {"loss": loss, "training_iteration": step})
    viewed = study.sampler._view(study)._get_trials(deepcopy=False)
    assert [t.state.name for t in viewed] == ["COMPLETE", "RUNNING"]
    assert viewed[0].value == pytest.approx(0.2)  # W&B: the running run's best so far
    assert [t.state.name for t in study.get_trials()] == ["RUNNING", "RUNNING"]  # unchanged
    raw = {"method": "bayes", "metric": {"name": "loss"}, "parameters": {"x": {"values": [1, 2]}}}
    plain = SpecSearch(spec_from_dict(raw, "t"))
    assert not isinstance(optuna_private.study(plain).sampler, RunningImputed)


@pytest.mark.parametrize(("strict", "decision"), [(True, "STOP"), (False, "CONTINUE")])
def test_hyperband_strict_false_compares_the_best_value_so_far(strict, decision) -> None:
    """At rung 2, b's value (5.0) is worse than a's (1.0), its best so far (0.1) better."""
    from types import SimpleNamespace

    from sweeper.engine.schedulers import build_scheduler

    et = {"type": "hyperband", "min_iter": 2, "eta": 2, "strict": strict}
    spec = spec_from_dict(
        {"method": "random", "early_terminate": et, "train": {"epochs": 8},
         "metric": {"name": "loss"}, "parameters": {"x": {"values": [1, 2]}}}, "t",
    )  # fmt: skip
    sched = build_scheduler(spec)
    sched.set_search_properties("loss", "min")
    a, b = (SimpleNamespace(trial_id=t, status="RUNNING") for t in "ab")
    for trial in (a, b):
        sched.on_trial_add(None, trial)
    for epoch, (la, lb) in enumerate([(1.0, 0.1), (1.0, 5.0)], start=1):
        sched.on_trial_result(None, a, {"epoch": epoch, "loss": la})
        last = sched.on_trial_result(None, b, {"epoch": epoch, "loss": lb})
    assert last == decision


@pytest.mark.slow
def test_a_builtin_model_takes_list_values_under_wandbs_local_keys(
    tmp_path: Path, ray_session, data_root
) -> None:
    """controller local, impute_while_running, hyperband strict: false and list values
    (cnn's fc and channels) run end to end; each trial's model is built from its lists."""
    from sweeper.models import count_params, get_model
    from sweeper.store import Study

    config = {
        "name": "cnn_lists", "method": "bayes", "run_cap": 2,
        "controller": {"type": "local"},
        "metric": {"name": "val_acc", "goal": "maximize", "impute_while_running": "best"},
        "early_terminate": {"type": "hyperband", "min_iter": 1, "strict": False},
        "parameters": {"fc": {"values": [[16], [32, 16]]},
                       "channels": {"values": [[4], [4, 8]], "probabilities": [0.5, 0.5]}},
        "model": {"name": "cnn"},
        "data": {"name": "fashion_mnist", "train_size": 500},
        "train": {"epochs": 1},
    }  # fmt: skip
    path = tmp_path / "cnn_lists.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path), "--out", str(tmp_path / "runs")]) == 0
    study = Study.open("cnn_lists", tmp_path / "runs")
    df = study.trials()
    assert df["state"].tolist() == ["COMPLETE", "COMPLETE"]
    for row in df.to_dict(orient="records"):
        fc, channels = json.loads(row["config/fc"]), json.loads(row["config/channels"])
        model = get_model("cnn", in_shape=(1, 28, 28), num_classes=10, fc=fc, channels=channels)
        assert row["params"] == count_params(model)
    ot = optuna.load_study(study_name="cnn_lists", storage=study.optuna_url)
    assert {t.params["fc"] for t in ot.trials} <= {"[16]", "[32, 16]"}  # the JSON text


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"job": "wandb/jobs/train:latest"}, "job"),
        ({"image_uri": "me/train:1"}, "image_uri"),
        ({"scheduler": {"job": "wandb/sweep-jobs/job-optuna:latest", "num_workers": 2}},
         "scheduler"),
        ({"scheduler": {"engine": "optuna", "source": "space.py"}}, "scheduler"),
        ({"method": "custom"}, "method"),
    ],
)  # fmt: skip
def test_launch_keys_are_the_refusals_left(extra, key, capsys, tmp_path) -> None:
    path = tmp_path / "launch.yaml"
    path.write_text(yaml.safe_dump({"method": "random", "parameters": {"a": {"values": [1]}},
                                    **extra}))  # fmt: skip
    line = _one_line(*_check(capsys, str(path))[::2])
    assert f"{path}: {key}: W&B's `{key}" in line and "is not supported by sweeper" in line
