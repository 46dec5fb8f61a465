"""Multi-objective studies: the spec, the Pareto rule, and a real two-objective study whose
front (status, export, report) is Optuna's ``study.best_trials`` in the study's mirror."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from sweeper.cli import main
from sweeper.spec import Metric, spec_from_dict
from sweeper.spec.objectives import Objectives
from sweeper.store import Study, dump_spec

TWO = [{"name": "val_acc", "goal": "maximize"}, {"name": "params", "goal": "minimize"}]
XOR: dict[str, Any] = {
    "sampler": "tpe",
    "metric": TWO,
    "parameters": {"width": {"values": [1, 2, 3]}, "depth": {"values": [0, 1, 2, 3]}},
    "model": {"name": "xor_mlp"},
    "data": {"name": "xor"},
    "train": {"epochs": 2, "batch_size": 128, "optimizer": "sgd", "lr": 0.1},
    "run_cap": 8,
    "resources": {"cpus": 1},
}


def xor_sweep(folder: Path, name: str, **extra: Any) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **XOR, **extra}, sort_keys=False))
    return path


def spec(**extra: Any) -> Any:
    return spec_from_dict({"name": "s", **XOR, **extra}, "s.yaml")


# -- the Pareto rule --------------------------------------------------------------------
def rows(*values: tuple[float, float], state: str = "COMPLETE") -> list[dict[str, Any]]:
    return [
        {"trial_id": f"t{i}", "state": state, "val_acc": a, "params": p}
        for i, (a, p) in enumerate(values)
    ]


def test_the_front_is_the_non_dominated_results_by_the_first_objective() -> None:
    obj = spec().objectives
    table = rows((0.9, 100), (0.8, 10), (0.85, 200), (0.95, 500), (0.8, 10))
    table.append({"trial_id": "pruned", "state": "PRUNED", "val_acc": 1.0, "params": 1})
    table.append({"trial_id": "nan", "state": "COMPLETE", "val_acc": 0.99, "params": None})
    front = [r["trial_id"] for r in obj.front(table)]
    # t2 (0.85, 200) is dominated by t0; equal t1 and t4 dominate neither other.
    assert front == ["t3", "t0", "t1", "t4"]
    assert [r["trial_id"] for r in obj.ranked(table)] == [*front, "t2"]
    assert obj.dominates([0.9, 100], [0.85, 200]) and not obj.dominates([0.8, 10], [0.8, 10])


def test_one_objective_ranks_as_before() -> None:
    obj = Objectives((Metric(name="val_acc", goal="maximize"),))
    table = rows((0.9, 100), (0.95, 500))
    assert not obj.multi and [r["trial_id"] for r in obj.best(table)] == ["t1"]


# -- the spec ---------------------------------------------------------------------------
def test_a_metric_list_is_saved_as_wandb_metrics_and_leads_with_the_first() -> None:
    s = spec()
    assert s.metric.name == "val_acc" and s.objectives.names == ["val_acc", "params"]
    assert s.objectives.modes == ["max", "min"]
    saved = yaml.safe_load(dump_spec(s))
    assert saved["metrics"] == TWO and "metric" not in saved
    assert spec_from_dict(saved, "spec.yaml") == s  # the round trip of a resumed study
    wandb = {k: v for k, v in XOR.items() if k != "metric"}
    assert spec_from_dict({"name": "s", **wandb, "metrics": TWO}, "f") == s


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"early_terminate": {"type": "hyperband", "min_iter": 1}}, "early_terminate: early stopping compares one metric"),
        ({"metric": [{**TWO[0], "target": 0.9}, TWO[1]]}, "metrics[0].target: a target ends a study on one metric"),
        ({"sampler": "cmaes"}, "sampler: cmaes optimises one objective"),
        ({"metrics": TWO}, "metrics: give metric or metrics, not both"),
        ({"metric": [TWO[0], TWO[0]]}, "metrics[1].name: 'val_acc' is named twice"),
    ],
)  # fmt: skip
def test_what_several_objectives_cannot_do_is_one_line_exit_2(tmp_path, capsys, extra, message):
    sweep = xor_sweep(tmp_path, "bad", **extra)
    assert main(["check", str(sweep)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"sweeper: error: {sweep}: {message}") and len(err.splitlines()) == 1


def test_an_objective_the_trials_do_not_report_names_its_key(tmp_path, capsys):
    sweep = xor_sweep(tmp_path, "bad", metric=[TWO[0], {"name": "flops"}])
    assert main(["check", str(sweep)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"sweeper: error: {sweep}: metrics[1].name: xor trials report ")
    assert "params" in err  # a size objective is allowed with several objectives


# -- end to end -------------------------------------------------------------------------
@pytest.mark.slow  # about 40 s a sampler on the 2-core VM (Ray start, 8 trials)
@pytest.mark.parametrize("sampler", ["tpe", "nsga2"])
def test_a_two_objective_study_reports_optunas_pareto_front(tmp_path, capsys, ray_session, sampler):
    out = tmp_path / "runs"
    sweep = xor_sweep(tmp_path, f"mo_{sampler}", sampler=sampler)
    assert main(["run", str(sweep), "--out", str(out)]) == 0
    study = Study.open(f"mo_{sampler}", out)
    df = study.trials()
    assert len(df) == 8 and set(df["state"]) == {"COMPLETE"}

    ot = optuna.load_study(study_name=f"mo_{sampler}", storage=study.optuna_url)
    assert [d.name for d in ot.directions] == ["MAXIMIZE", "MINIMIZE"]
    expected = {t.user_attrs["trial_id"]: t.values for t in ot.best_trials}
    assert expected  # a front has at least one trial

    capsys.readouterr()
    assert main(["status", f"mo_{sampler}", "--out", str(out), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    front = status["pareto_front"]
    assert set(r["trial_id"] for r in front) == set(expected)
    for r in front:
        assert [r["val_acc"], r["params"]] == pytest.approx(expected[r["trial_id"]])
    accs = [r["val_acc"] for r in front]
    assert accs == sorted(accs, reverse=True)  # ordered by the first objective
    assert status["best"] == front[0]
    assert [t["trial_id"] for t in status["trials"][: len(front)]] == [r["trial_id"] for r in front]

    assert main(["export", f"mo_{sampler}", "--out", str(out), "--top", "20"]) == 0
    exported = sorted((study.path / "export").glob("top*/metrics.json"))
    infos = [json.loads(p.read_text()) for p in exported]
    assert sorted(i["trial_id"] for i in infos) == sorted(expected)
    assert all(set(i["objectives"]) == {"val_acc", "params"} for i in infos)

    assert main(["report", f"mo_{sampler}", "--out", str(out)]) == 0
    html = (study.path / "report.html").read_text()
    assert "Pareto front of val_acc (maximize), params (minimize)" in html
    assert all(t in html for t in expected)


def test_check_prints_the_objectives(tmp_path, capsys):
    assert main(["check", str(xor_sweep(tmp_path, "mo"))]) == 0
    assert "objectives   val_acc (maximize), params (minimize) (a Pareto front)" in (
        capsys.readouterr().out
    )
