"""End to end: a study resumes from any working folder and from a new place, and W&B's
hyperband rule (a trial past the top rung trains its planned epochs) gives COMPLETE trials."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sweeper.cli import main
from sweeper.store import Study

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]

HYPERBAND = """
name: hb
method: grid
metric: {name: val_acc, goal: maximize}
early_terminate: {type: hyperband, min_iter: 1, max_iter: 2}
parameters:
  width: {values: [8, 16]}
  optimizer: {values: [adam, sgd]}
model: {name: mlp, args: {depth: 1}}
data: {name: fashion_mnist, train_size: 1000, val_size: 300, test_size: 300}
train: {epochs: 4, batch_size: 128}
resources: {cpus: 1}
"""


def test_max_iter_below_epochs_gives_complete_trials_that_export(
    tmp_path, ray_session, data_root, capsys
):
    sweep = tmp_path / "hb.yaml"
    sweep.write_text(HYPERBAND)
    out = tmp_path / "runs"
    assert main(["run", str(sweep), "--out", str(out)]) == 0
    df = Study.open("hb", out).trials()
    assert len(df) == 4
    complete = df[df["state"] == "COMPLETE"]
    assert len(complete) >= 1 and (complete["epochs"] == 4).all()
    pruned = df[df["state"] == "PRUNED"]
    assert (pruned["epochs"] < 4).all()
    assert main(["export", "hb", "--out", str(out), "--top", "1"]) == 0
    assert (out / "hb" / "export").is_dir()


MOVE_EPOCHS = 30  # long enough that the kill lands while a trial runs, on a fast machine
MOVABLE = f"""
name: mv
method: grid
metric: {{name: val_acc, goal: maximize}}
parameters:
  width: {{values: [8, 16, 32]}}
model: {{name: mlp, args: {{depth: 1}}}}
data: {{name: fashion_mnist, train_size: 3000, val_size: 300, test_size: 300}}
train: {{epochs: {MOVE_EPOCHS}, batch_size: 16}}
resources: {{cpus: 1}}
wandb: {{mode: disabled}}
"""


def _driver_env(ray_tmp: Path) -> dict[str, str]:
    env = dict(os.environ, RAY_TMPDIR=str(ray_tmp), PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    return env


def _wait_for(cond, timeout: float, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"the driver exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_a_killed_study_resumes_from_another_folder_after_being_moved(
    tmp_path, ray_session, data_root, monkeypatch
):
    a, b, elsewhere = tmp_path / "a", tmp_path / "b", tmp_path / "elsewhere"
    for d in (a, b, elsewhere):
        d.mkdir()
    (a / "mv.yaml").write_text(MOVABLE)
    ray_tmp = Path(tempfile.mkdtemp(prefix="swmv", dir="/tmp"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweeper.cli", "run", "mv.yaml", "--out", "runs"],
        cwd=a, env=_driver_env(ray_tmp), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    study_dir = a / "runs" / "mv"
    try:

        def mid_study() -> bool:  # Ray's snapshot names a running trial with a checkpoint
            import json

            for state in (study_dir / "tune").glob("experiment_state-*.json"):
                try:
                    trials = [json.loads(t) for t, _ in json.loads(state.read_text())["trial_data"]]
                except (OSError, ValueError, KeyError):
                    continue  # being written
                for t in trials:
                    folders = (study_dir / "tune").glob(f"*_{t['trial_id']}_*/checkpoint_*")
                    if t.get("status") == "RUNNING" and any(folders):
                        return True
            return False

        _wait_for(mid_study, 240, "a snapshot naming a running trial with a checkpoint", proc)
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have ended (the wait says why)
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and its Ray processes
        proc.wait()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    moved = elsewhere / "mv"
    shutil.move(str(study_dir), str(moved))
    monkeypatch.chdir(b)  # neither the folder it ran from nor the study's parent
    assert main(["resume", str(moved)]) == 0

    study = Study.open(str(moved))
    df = study.trials()
    assert study.meta()["state"] == "finished"
    assert len(df) == 3 and set(df["state"]) == {"COMPLETE"} and (df["epochs"] == MOVE_EPOCHS).all()
    assert sorted(df["config/width"]) == [8, 16, 32]
    hist = study.history()
    epochs = sorted(hist.groupby("trial_id")["epoch"].apply(list).tolist())
    assert epochs == [list(range(1, MOVE_EPOCHS + 1))] * 3
    assert not (a / "runs" / "mv").exists()  # nothing was written at the old place
    starts = [p.read_text() for p in moved.glob("tune/*/starts.jsonl")]
    assert any('"epoch": 0' not in s.splitlines()[-1] for s in starts if len(s.splitlines()) > 1)
