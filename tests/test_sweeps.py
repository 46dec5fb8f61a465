"""Every sweep file shipped in sweeps/ checks, and runs 2 trials x 1 epoch on a data slice."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweeper.cli import main
from sweeper.spec import load_spec
from sweeper.store import Study

SWEEPS = sorted(Path("sweeps").glob("*.yaml"))
SLICES = {
    "fashion_mnist": ["data.train_size=1000", "data.val_size=300", "data.test_size=300"],
    "membrane": ["data.image_size=32", "data.train_size=4", "data.val_size=2"],
    "xor": ["data.val_size=100"],
}


def test_every_seed_experiment_has_a_sweep_file():
    names = {p.stem for p in SWEEPS}
    assert {
        "mlp_grid", "lenet_variants", "lenet_tpe", "fashion_lr", "depth_width",
        "xor_depth_width", "unet_membrane", "quickstart",
    } <= names  # fmt: skip


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_sweep_file_checks(path, capsys):
    assert main(["check", str(path)]) == 0
    assert f"{path}: ok" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_sweep_file_runs_two_short_trials(path, tmp_path, ray_session, data_root):
    spec = load_spec(path)
    sets = ["train.epochs=1", *SLICES[spec.data.name]]
    if "epochs" in spec.parameters:  # a swept epochs wins over train.epochs
        sets.append("parameters.epochs={value: 1}")
    argv = ["run", str(path), "--max-trials", "2", "--out", str(tmp_path)]
    for item in sets:
        argv += ["--set", item]
    assert main(argv) == 0
    df = Study.open(spec.name, tmp_path).trials()
    assert len(df) == 2
    assert set(df["state"]) <= {"COMPLETE"}, df[["state", "error"]]
    assert (df["epochs"] == 1).all()
    assert df[spec.metric.name].notna().all()
