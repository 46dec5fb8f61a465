"""The exported sweep file (fast, no study run): it names nothing of the machine that ran
the study, writes no empty keys, and runs again on another machine with another data root."""

from __future__ import annotations

from pathlib import Path

import yaml

from sweeper.api._launch import prepare
from sweeper.cli import main
from sweeper.export import sweep_text
from sweeper.store import dump_spec
from tests.support import write_sweep


def _saved_spec(tmp_path: Path, data_root: Path) -> dict:
    """What a TPE study with a run cap, Hyperband and its own Optuna mirror saves."""
    file = write_sweep(
        tmp_path, "ex", method="random", sampler="tpe", run_cap=4,
        early_terminate={"type": "hyperband", "min_iter": 1},
        storage=f"sqlite:///{tmp_path / 'mirror.db'}",
        parameters={"width": {"values": [16, 32]}, "lr": {"min": 0.001, "max": 0.1}},
    )  # fmt: skip
    spec = prepare(str(file), data_dir=str(data_root)).plan.spec
    assert spec.data.root == str(data_root.resolve())
    return yaml.safe_load(dump_spec(spec))


def test_an_export_runs_again_on_another_machine(tmp_path, data_root, monkeypatch, capsys):
    raw = _saved_spec(tmp_path, data_root)
    info = {"study": "ex", "trial_id": "t1", "rank": 1, "metric": "val_acc",
            "goal": "maximize", "metrics": {"val_acc": 0.8, "epochs": 1}}  # fmt: skip
    out = tmp_path / "export" / "sweep.yaml"
    out.parent.mkdir()
    params = {"width": 32, "optimizer": "adam", "lr": 0.01}
    out.write_text(sweep_text(raw, params, info, out))
    text = out.read_text()
    assert "null" not in text and str(data_root.resolve()) not in text
    data = yaml.safe_load(text)
    assert data["method"] == "grid" and not {"sampler", "run_cap", "storage"} & set(data)
    assert "early_terminate" not in data and "root" not in data["data"]
    assert data["parameters"] == {k: {"value": v} for k, v in params.items()}

    # another machine: the data elsewhere, given by the variable, relative to where it runs
    there = tmp_path / "machine2"
    (there / "datasets").mkdir(parents=True)
    (there / "datasets" / "FashionMNIST").symlink_to(data_root.resolve() / "FashionMNIST")
    monkeypatch.chdir(there)
    monkeypatch.setenv("SWEEPER_DATA_DIR", "datasets")
    assert main(["check", str(out)]) == 0
    assert f"fashion_mnist from {there / 'datasets'}" in capsys.readouterr().out
    assert prepare(str(out)).plan.n_trials == 1
