"""End to end: real Ray Tune + real Optuna on a slice of Fashion-MNIST, through the CLI."""

from __future__ import annotations

import itertools
import json

import optuna
import pytest

from sweeper.cli import main
from sweeper.store import Study
from tests.support import REPO

pytestmark = pytest.mark.slow


def run_cli(*argv: str) -> int:
    return main(list(argv))


def test_grid_visits_every_cell_exactly_once(tmp_path, sweep_file, ray_session, data_root, capsys):
    sweep = sweep_file("e2e_grid")
    out = tmp_path / "runs"
    assert run_cli("run", str(sweep), "--out", str(out)) == 0

    study = Study.open("e2e_grid", out)
    assert study.meta()["state"] == "finished"
    placement = study.meta()["placement"]  # gpus: auto on a machine without a GPU
    assert (placement["device"], placement["gpus"]) == ("cpu", 0.0)
    df = study.trials()
    assert len(df) == 4
    assert set(df["state"]) == {"COMPLETE"}
    cells = sorted(zip(df["config/width"], df["config/optimizer"], strict=True))
    assert cells == sorted(itertools.product([16, 32], ["adam", "sgd"]))
    assert (df["epochs"] == 1).all() and df["test_acc"].between(0, 1).all()
    assert df["val_acc"].max() > 0.6

    hist = study.history()
    assert sorted(hist["trial_id"]) == sorted(df["trial_id"])
    assert hist["val_acc"].notna().all()

    # The saved spec, not the YAML, is what later commands read.
    assert study.spec().name == "e2e_grid" and study.spec().data.root == str(data_root.resolve())

    # The Optuna mirror opens with optuna.load_study and matches the table.
    ot = optuna.load_study(study_name="e2e_grid", storage=study.optuna_url)
    assert len(ot.trials) == 4
    assert sorted((t.params["width"], t.params["optimizer"]) for t in ot.trials) == cells
    best = df.loc[df["val_acc"].idxmax()]
    assert ot.best_value == pytest.approx(best["val_acc"])

    capsys.readouterr()
    assert run_cli("status", "e2e_grid", "--out", str(out), "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "finished" and len(status["trials"]) == 4
    assert status["trials"][0]["val_acc"] == pytest.approx(best["val_acc"])  # best first

    # Running the same study again is refused, naming resume; resume of a finished study is a no-op.
    assert run_cli("run", str(sweep), "--out", str(out)) == 2
    assert "sweeper resume" in capsys.readouterr().err
    assert run_cli("resume", "e2e_grid", "--out", str(out)) == 0
    assert "nothing to resume" in capsys.readouterr().out


def test_seed_grid_file_with_max_trials(tmp_path, ray_session, data_root):
    out = tmp_path / "runs"
    code = run_cli(
        "run",
        str(REPO / "sweeps" / "mlp_grid.yaml"),
        "--max-trials",
        "4",
        "--out",
        str(out),
        "--set",
        "train.epochs=1",
        "--set",
        "data.train_size=3000",
        "--set",
        "data.val_size=1000",
        "--set",
        "data.test_size=1000",
    )
    assert code == 0
    df = Study.open("mlp_grid", out).trials()
    assert len(df) == 4 and set(df["state"]) == {"COMPLETE"}
    cells = list(
        zip(
            df["config/depth"],
            df["config/width"],
            df["config/batch_size"],
            df["config/optimizer"],
            strict=True,
        )
    )
    assert len(set(cells)) == 4  # four different cells of the 96


FAULTS = """
name: e2e_faults
method: grid
metric: {name: val_acc, goal: maximize}
parameters:
  batch_norm: {values: [false, true]}
  lr: {values: [0.05, 1.0e+6]}
model: {name: cnn, args: {channels: [4], fc: [8]}}
# 2001 examples in batches of 1000 leave a last batch of one: batch norm raises on it.
data: {name: fashion_mnist, train_size: 2001, val_size: 500, test_size: 500}
train: {epochs: 2, batch_size: 1000, optimizer: sgd}
resources: {cpus: 1}
"""


def test_failing_and_diverging_trials_do_not_stop_the_study(tmp_path, ray_session, data_root):
    sweep = tmp_path / "faults.yaml"
    sweep.write_text(FAULTS)
    out = tmp_path / "runs"
    assert run_cli("run", str(sweep), "--out", str(out)) == 0
    df = Study.open("e2e_faults", out).trials().set_index(["config/batch_norm", "config/lr"])
    assert df.loc[(False, 0.05), "state"] == "COMPLETE"
    assert df.loc[(False, 0.05), "epochs"] == 2
    diverged = df.loc[(False, 1.0e6)]
    assert diverged["state"] == "COMPLETE" and diverged["diverged"] == 1 and diverged["epochs"] == 1
    for lr in (0.05, 1.0e6):
        failed = df.loc[(True, lr)]
        assert failed["state"] == "FAIL"
        assert "Expected more than 1 value per channel" in failed["error"]
