"""A relative data root means "from where I ran the command" (``--data-dir``,
``$SWEEPER_DATA_DIR``) or "from the sweep file's folder" (``data.root`` in the file), is
resolved once when the study starts, and reaches trials, script trials and ``resume`` as an
absolute path; ``check`` names a given root that does not exist."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import yaml

import sweeper
from sweeper.cli import main
from sweeper.spec import spec_from_dict
from sweeper.store import Study
from tests.support import write_sweep

XOR = {
    "name": "rel",
    "method": "grid",
    "metric": {"name": "val_acc", "goal": "maximize"},
    "parameters": {"width": {"values": [2]}},
    "model": {"name": "xor_mlp", "args": {"depth": 1}},
    "data": {"name": "xor"},
    "train": {"epochs": 1},
}


@pytest.fixture
def folders(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A project with its sweep file in ``sweeps/``, and another folder to run from."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "sweeps").mkdir(parents=True)
    elsewhere.mkdir()
    monkeypatch.delenv("SWEEPER_DATA_DIR", raising=False)
    monkeypatch.chdir(elsewhere)
    return project, elsewhere


def _xor_file(folder: Path, **data) -> Path:
    file = folder / "rel.yaml"
    file.write_text(yaml.safe_dump({**XOR, "data": {"name": "xor", **data}}))
    return file


def _root(file: Path, **kw) -> Path:
    return Path(sweeper.check(str(file), **kw).spec.data.root)


def test_a_relative_root_in_the_file_is_from_the_files_folder(folders):
    project, elsewhere = folders
    file = _xor_file(project / "sweeps", root="../data")
    assert _root(file) == project / "data"  # not elsewhere/../data
    assert _root(Path(os.path.relpath(file))) == project / "data"


def test_a_relative_flag_variable_or_override_is_from_where_the_command_runs(folders, monkeypatch):
    project, elsewhere = folders
    file = _xor_file(project / "sweeps")
    assert _root(file) == elsewhere / "data"  # the default
    monkeypatch.setenv("SWEEPER_DATA_DIR", "../shared")
    assert _root(file) == elsewhere.parent / "shared"
    assert _root(file, data_dir="d") == elsewhere / "d"
    assert _root(file, overrides=["data.root=here"]) == elsewhere / "here"


def test_check_names_a_given_data_root_that_does_not_exist(folders, monkeypatch, capsys):
    project, elsewhere = folders
    file = write_sweep(project / "sweeps", "fm")
    monkeypatch.setenv("SWEEPER_DATA_DIR", "/shared/data-nowhere")
    assert main(["check", str(file)]) == 2
    err = capsys.readouterr().err
    assert err == (
        "sweeper: error: $SWEEPER_DATA_DIR: /shared/data-nowhere does not exist; expected the "
        "folder that holds fashion_mnist's files (give it as --data-dir, data.root or "
        "$SWEEPER_DATA_DIR)\n"
    )
    assert main(["check", str(file), "--data-dir", "missing"]) == 2
    assert f"--data-dir: {elsewhere / 'missing'} does not exist" in capsys.readouterr().err

    monkeypatch.delenv("SWEEPER_DATA_DIR")  # the default ./data: the first run downloads it
    assert main(["check", str(file)]) == 0
    assert f"from {elsewhere / 'data'} (no such folder yet" in capsys.readouterr().out
    xor = _xor_file(project / "sweeps")  # generated data: no root to check
    assert main(["check", str(xor), "--data-dir", "missing"]) == 0


def test_a_script_trial_gets_the_studys_root_absolute(tmp_path):
    from sweeper.script.launch import plan_launch

    spec = spec_from_dict({"name": "s", "program": "train.py", "data": {"root": "/abs/d"}}, "s")
    launch = plan_launch(
        spec, {}, study_dir=tmp_path, trial_dir=tmp_path / "t", run_id="r",
        base_env={"SWEEPER_DATA_DIR": "../rel"}, watch_pid=1, grace_s=1,
    )  # fmt: skip
    assert launch.env["SWEEPER_DATA_DIR"] == "/abs/d"


@pytest.mark.slow
def test_a_script_trial_reads_a_relative_root_given_to_run(tmp_path, ray_session, monkeypatch):
    (tmp_path / "mydata").mkdir()
    (tmp_path / "mydata" / "value.txt").write_text("0.75")
    (tmp_path / "train.py").write_text(
        textwrap.dedent(
            """
            import os, wandb
            run = wandb.init()
            with open(os.path.join(os.environ["SWEEPER_DATA_DIR"], "value.txt")) as f:
                wandb.log({"val_acc": float(f.read())})
            run.finish()
            """
        )
    )
    (tmp_path / "sweep.yaml").write_text(
        "name: reldata\nprogram: train.py\nmethod: grid\n"
        "metric: {name: val_acc, goal: maximize}\nparameters: {x: {values: [1]}}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SWEEPER_DATA_DIR", "mydata")
    assert main(["run", "sweep.yaml", "--out", "studies", "--wandb", "disabled"]) == 0
    df = Study.open("reldata", tmp_path / "studies").trials()
    assert list(df["state"]) == ["COMPLETE"] and list(df["val_acc"]) == [0.75]


@pytest.mark.slow
def test_resume_from_another_folder_keeps_the_root_resolved_at_the_start(
    tmp_path, ray_session, data_root, monkeypatch
):
    """The study started (as ``run`` starts it) from ``a`` with a relative root; ``resume``
    runs in ``b``, where the same relative path names nothing."""
    from sweeper.api._launch import prepare

    a, b = tmp_path / "a", tmp_path / "b" / "deeper"
    a.mkdir()
    b.mkdir(parents=True)
    file = write_sweep(a, "relres", data={"train_size": 300, "val_size": 100, "test_size": 100},
                       parameters={"width": {"values": [8]}}, wandb={"mode": "disabled"})  # fmt: skip
    monkeypatch.chdir(a)
    monkeypatch.setenv("SWEEPER_DATA_DIR", os.path.relpath(data_root.resolve(), a))
    plan = prepare(str(file)).plan
    path = tmp_path / "runs" / "relres"
    Study.create(path, plan.spec, str(file), 1).set_state("interrupted")

    monkeypatch.chdir(b)
    assert main(["resume", str(path)]) == 0
    study = Study.open(str(path))
    assert study.meta()["state"] == "finished"
    assert list(study.trials()["state"]) == ["COMPLETE"]
    assert Path(study.spec().data.root) == data_root.resolve()
