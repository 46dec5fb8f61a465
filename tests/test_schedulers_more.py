"""Every registered scheduler and pruner: the registry against the classes, the sweep file's
block, and a real Ray Tune + Optuna study on xor where each stops the trials that cannot
learn (and a pruner none, where every config is the same)."""

from __future__ import annotations

import inspect

import optuna
import pytest

from sweeper.registry.schedulers import PRUNERS, SCHEDULERS, entry_class
from sweeper.spec import spec_from_dict
from sweeper.store import Study

GOOD, BAD = 0.05, 1e-7  # Adam learning rates: xor learns in a few epochs, or not at all


@pytest.mark.parametrize(
    ("table", "name"), [(SCHEDULERS, n) for n in SCHEDULERS] + [(PRUNERS, n) for n in PRUNERS]
)
def test_every_entry_names_arguments_its_class_takes(table, name):
    entry = table[name]
    try:
        cls = entry_class(entry)
    except ImportError as exc:
        assert f"pip install {' '.join(entry.needs)}" in str(exc)  # pb2 without GPy
        pytest.skip(str(exc))
    takes = set(inspect.signature(cls.__init__).parameters)
    if name == "patient":
        takes.add("wrapped")  # sweeper's name for wrapped_pruner (a nested block)
    assert set(entry.accepts) <= takes, set(entry.accepts) - takes


def _spec(**extra):
    return spec_from_dict({"name": "s", "parameters": {"a": {"values": [1]}}, **extra}, "f.yaml")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"scheduler": {"name": "ashaa"}}, "f.yaml: scheduler.name: unknown scheduler 'ashaa'; "
         "expected one of asha, hyperband, median_stopping, pbt, pb2; did you mean 'asha'?"),
        ({"pruner": {"name": "median", "n_warmup": 1}}, "f.yaml: pruner.n_warmup: pruner median "
         "does not take n_warmup; expected some of n_startup_trials, n_warmup_steps, "
         "interval_steps, n_min_trials; did you mean 'n_warmup_steps'?"),
        ({"pruner": {"name": "percentile", "percentile": 200}}, "percentile=200"),
        ({"scheduler": {"job": "x", "num_workers": 2}}, "W&B Launch schedulers do not run here"),
        ({"pruner": {"name": "median"}, "early_terminate": {"type": "hyperband"}},
         "give one, got early_terminate and pruner"),
        ({"scheduler": {"name": "pb2"}}, "pb2 perturbs the swept parameters; give one with "
         "a min/max range"),
    ],
)  # fmt: skip
def test_bad_blocks_are_one_line_errors(extra, message):
    from sweeper.errors import SweeperError

    with pytest.raises(SweeperError) as err:
        _spec(**extra)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_block_is_flat_or_under_args_and_survives_the_saved_spec():
    spec = _spec(pruner={"name": "patient", "patience": 1, "wrapped": {"name": "median"}})
    assert spec.pruner.args == {"patience": 1, "wrapped": {"name": "median", "args": {}}}
    again = spec_from_dict(spec.model_dump(mode="json", exclude_unset=True), "spec.yaml")
    assert again.pruner == spec.pruner
    assert _spec(scheduler={"name": "asha", "args": {"max_t": 3}}).scheduler.args == {"max_t": 3}


def xor_sweep(name: str, lrs: list[float], epochs: int = 4, **extra):
    return {
        "name": name,
        "method": "grid",
        "metric": {"name": "val_acc", "goal": "maximize"},
        "parameters": {"lr": {"values": lrs}},
        "model": {"name": "xor_mlp", "args": {"depth": 1, "width": 16}},
        "data": {"name": "xor"},
        "train": {"epochs": epochs, "batch_size": 100, "optimizer": "adam"},
        "resources": {"cpus": 1, "max_concurrent": 1},
        **extra,
    }


def run_sweep(tmp_path, config) -> tuple[Study, object]:
    from sweeper.cli import main

    path = tmp_path / f"{config['name']}.yaml"
    import yaml

    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path), "--out", str(tmp_path / "runs")]) == 0
    study = Study.open(config["name"], tmp_path / "runs")
    return study, study.trials()


LEARN = [GOOD, GOOD * 0.9, GOOD * 0.8, BAD, BAD * 0.9, BAD * 0.8]
STOPPERS = {
    "pruner_median": {"pruner": {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 1}},
    "pruner_threshold": {"pruner": {"name": "threshold", "lower": 0.7, "n_warmup_steps": 2}},
    "pruner_percentile": {"pruner": {"name": "percentile", "percentile": 50.0, "n_warmup_steps": 1}},
    "pruner_sha": {"pruner": {"name": "successive_halving", "min_resource": 2}},
    "pruner_hyperband": {"pruner": {"name": "hyperband", "min_resource": 2, "max_resource": 4}},
    "asha": {"scheduler": {"name": "asha", "reduction_factor": 2}},
    # Ray's HyperBand is synchronous: a bracket's trials must run side by side
    "hyperband": {"scheduler": {"name": "hyperband", "reduction_factor": 2},
                  "resources": {"cpus": 0.25, "max_concurrent": 6}},
    "median_stopping": {"scheduler": {"name": "median_stopping", "min_samples_required": 1}},
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("case", list(STOPPERS))
def test_each_stops_a_trial_that_cannot_learn(case, tmp_path, ray_session):
    study, df = run_sweep(tmp_path, xor_sweep(case, LEARN, **STOPPERS[case]))
    assert len(df) == len(LEARN) and set(df["state"]) <= {"COMPLETE", "PRUNED"}
    bad = df[df["config/lr"] < 1e-3]
    assert (bad["state"] == "PRUNED").any(), df[["config/lr", "state", "epochs"]]
    pruned = df[df["state"] == "PRUNED"]
    assert (pruned["epochs"] < 4).all()
    ot = optuna.load_study(study_name=case, storage=f"sqlite:///{study.path / 'optuna.db'}")
    states = {t.number: t.state.name for t in ot.trials}
    assert sorted(states.values()) == sorted(df["state"])


@pytest.mark.slow
def test_a_pruner_prunes_nothing_when_every_config_learns_the_same(tmp_path, ray_session):
    config = xor_sweep("same", [GOOD], pruner={"name": "median", "n_startup_trials": 1})
    config["parameters"]["lr_step_size"] = {"values": [1, 2, 3]}  # no lr_schedule: no effect
    _, df = run_sweep(tmp_path, config)
    assert len(df) == 3 and set(df["state"]) == {"COMPLETE"}


def test_the_pruning_scheduler_asks_the_trials_optuna_trial():
    """PatientPruner prunes a curve that gets worse (not a flat one: that is the e2e's bad
    lr), through the scheduler and a real OptunaSearch, and Optuna is told PRUNED."""
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    from sweeper.engine import optuna_private
    from sweeper.engine.pruning import OptunaPruning
    from sweeper.engine.search import SpecSearch
    from sweeper.registry.schedulers import build_pruner

    spec = spec_from_dict(xor_sweep("unit", LEARN), "unit.yaml")
    searcher = SpecSearch(spec)
    controller = SimpleNamespace(search_alg=SimpleNamespace(searcher=searcher))
    pruner = build_pruner("patient", {"patience": 1, "wrapped": {"name": "median",
                          "args": {"n_startup_trials": 1}}})  # fmt: skip
    sched = OptunaPruning(pruner, "val_acc", epochs=4)

    def run(trial_id, curve):
        searcher.suggest(trial_id)
        trial = SimpleNamespace(trial_id=trial_id, config={})
        for epoch, value in enumerate(curve, 1):
            decision = sched.on_trial_result(controller, trial, {"val_acc": value, "epoch": epoch})
            if decision == TrialScheduler.STOP:
                break
        searcher.on_trial_complete(trial_id, {"val_acc": value, "epoch": epoch})
        return decision, epoch

    assert run("good", [0.6, 0.9, 1.0, 1.0]) == (TrialScheduler.CONTINUE, 4)
    assert run("flat", [0.54, 0.54, 0.54, 0.54]) == (TrialScheduler.CONTINUE, 4)
    assert run("worse", [0.6, 0.55, 0.5, 0.5]) == (TrialScheduler.STOP, 3)
    states = [t.state.name for t in optuna_private.study(searcher).trials]
    assert states == ["COMPLETE", "COMPLETE", "PRUNED"]


def test_pb2_without_its_packages_names_them(monkeypatch):
    from sweeper.errors import SweeperError
    from sweeper.registry import blocks

    monkeypatch.setattr(blocks, "_importable", lambda module: module != "GPy")
    params = {"lr": {"min": 0.01, "max": 0.1}}
    with pytest.raises(
        SweeperError, match=r"scheduler.name: scheduler pb2 needs GPy: pip install GPy$"
    ):
        spec_from_dict({"name": "s", "method": "random", "parameters": params,
                        "scheduler": {"name": "pb2"}}, "f.yaml")  # fmt: skip
