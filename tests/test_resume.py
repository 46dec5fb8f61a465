"""Resume's pieces without Ray running: snapshot checks, checkpoint choice, the driver's
reconciliation of the study files with Ray's trials, the flock lock. (A real Tuner's snapshot
is read in test_snapshot_ray.py; the end-to-end kills are in test_chaos.py.)"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import torch

from sweeper.engine.snapshot import read_snapshot, repair
from sweeper.engine.trainable import STATE_FILE, newest_checkpoint
from sweeper.errors import SweeperError
from sweeper.spec import load_spec
from sweeper.store import Study

SWEEP = """\
name: rs
method: grid
metric: {name: val_acc, goal: maximize}
parameters:
  width: {values: [16, 32]}
  optimizer: {values: [adam, sgd]}
model: {name: mlp}
data: {name: fashion_mnist, train_size: 2000, val_size: 500, test_size: 500}
train: {epochs: 4}
"""


# -- Ray's snapshot ----------------------------------------------------------------------


def run_metadata(results=()) -> str:
    """A trial's run metadata as Ray 2.60 writes it: a checkpoint manager, cloudpickled."""
    from ray.train._internal.checkpoint_manager import _CheckpointManager
    from ray.tune import CheckpointConfig
    from ray.tune.utils.serialization import TuneFunctionEncoder

    manager = _CheckpointManager(CheckpointConfig(num_to_keep=1))
    manager._checkpoint_results = list(results)
    manager._latest_checkpoint_result = results[-1] if results else None
    return json.dumps({"checkpoint_manager": manager}, cls=TuneFunctionEncoder)


def write_session(tune: Path, session: str, ids: list[str], counter: int | None = None) -> None:
    trials = [[json.dumps({"trial_id": t, "status": "RUNNING"}), run_metadata()] for t in ids]
    (tune / f"experiment_state-{session}.json").write_text(json.dumps({"trial_data": trials}))
    gen = {"counter": len(ids) if counter is None else counter}
    (tune / f"search_gen_state-{session}.json").write_bytes(pickle.dumps(gen))
    searcher = {"_ot_trials": dict.fromkeys(ids)}
    (tune / f"searcher-state-{session}.pkl").write_bytes(pickle.dumps(searcher))


def test_no_snapshot_is_not_restorable(tmp_path):
    tune = tmp_path / "tune"
    assert not read_snapshot(tune).usable
    tune.mkdir()
    assert not read_snapshot(tune).usable
    (tune / "tuner.pkl").write_bytes(pickle.dumps({"x": 1}))  # a Tuner, killed before a snapshot
    snap = read_snapshot(tune)
    assert snap.tuner_whole and snap.session is None and not snap.usable
    with pytest.raises(ValueError, match="no usable"):
        repair(tune, snap)


def test_a_torn_newest_snapshot_is_set_aside_for_the_previous_one(tmp_path):
    tune = tmp_path / "tune"
    tune.mkdir()
    (tune / "tuner.pkl").write_bytes(pickle.dumps({"x": 1}))
    write_session(tune, "2026-01-01_00-00-00", ["a"])
    snap = read_snapshot(tune)
    assert snap.usable and snap.session == "2026-01-01_00-00-00" and snap.torn == ()
    assert snap.trial_ids == ("a",) and snap.counter == 1 and snap.searcher_trials == ("a",)
    # a newer session whose experiment state was cut short by the kill
    write_session(tune, "2026-01-01_01-00-00", ["a", "b"])
    newest = tune / "experiment_state-2026-01-01_01-00-00.json"
    newest.write_text(newest.read_text()[:20])
    before = sorted(p.name for p in tune.iterdir())
    snap = read_snapshot(tune)
    assert snap.session == "2026-01-01_00-00-00" and snap.torn == ("2026-01-01_01-00-00",)
    assert sorted(p.name for p in tune.iterdir()) == before  # reading writes nothing
    repair(tune, snap)
    assert sorted(p.name for p in tune.glob("*.torn")) == [
        "experiment_state-2026-01-01_01-00-00.json.torn",
        "search_gen_state-2026-01-01_01-00-00.json.torn",
        "searcher-state-2026-01-01_01-00-00.pkl.torn",
    ]
    # files of one snapshot that disagree (copied half old, half new) are torn too
    write_session(tune, "2026-01-01_02-00-00", ["a", "b"], counter=3)
    snap = read_snapshot(tune)
    assert snap.torn == ("2026-01-01_02-00-00",)
    repair(tune, snap)
    assert (tune / "experiment_state-2026-01-01_02-00-00.json.torn").exists()
    assert sorted(tune.glob("experiment_state-*.json"))[-1].name.endswith("00-00-00.json")


def test_a_torn_tuner_file_is_replaced_by_the_copy_kept_at_the_last_resume(tmp_path):
    tune = tmp_path / "tune"
    tune.mkdir()
    whole = pickle.dumps({"x": list(range(100))})
    (tune / "tuner.pkl").write_bytes(whole)
    write_session(tune, "2026-01-01_00-00-00", ["a"])
    repair(tune, read_snapshot(tune))  # keeps tuner.pkl.good
    (tune / "tuner.pkl").write_bytes(whole[:10])  # the next start was killed mid-write
    snap = read_snapshot(tune)
    assert not snap.tuner_whole and snap.good_tuner_whole and snap.usable
    repair(tune, snap)
    assert (tune / "tuner.pkl").read_bytes() == whole


def test_a_torn_searcher_file_is_torn_but_a_whole_one_without_its_key_is_loud(tmp_path):
    tune = tmp_path / "tune"
    tune.mkdir()
    (tune / "tuner.pkl").write_bytes(pickle.dumps({"x": 1}))
    write_session(tune, "2026-01-01_00-00-00", ["a"])
    write_session(tune, "2026-01-01_01-00-00", ["a", "b"])
    searcher = tune / "searcher-state-2026-01-01_01-00-00.pkl"
    searcher.write_bytes(searcher.read_bytes()[:-3])  # cut short: fall back a session
    assert read_snapshot(tune).session == "2026-01-01_00-00-00"
    searcher.write_bytes(pickle.dumps({"_trials": {}}))  # whole, but not what Ray 2.60 writes
    with pytest.raises(SweeperError) as err:
        read_snapshot(tune)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{searcher}: Ray ")
    assert "stores no '_ot_trials' (sweeper reads Ray 2.60's snapshot format)" in msg


def test_a_trial_without_a_checkpoint_manager_is_loud(tmp_path):
    tune = tmp_path / "tune"
    tune.mkdir()
    state = {"trial_data": [[json.dumps({"trial_id": "a"}), json.dumps({"last_result": {}})]]}
    (tune / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps(state))
    with pytest.raises(SweeperError, match="stores no 'checkpoint_manager'"):
        read_snapshot(tune)
    (tune / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps({"trials": []}))
    with pytest.raises(SweeperError, match="stores no 'trial_data'"):
        read_snapshot(tune)


# -- checkpoints -------------------------------------------------------------------------


def save_state(folder: Path, epoch: int) -> None:
    folder.mkdir(parents=True)
    torch.save({"epoch": epoch, "runs": [], "metrics": {"epoch": epoch}}, folder / STATE_FILE)


def test_the_newest_readable_checkpoint_wins(tmp_path):
    trial = tmp_path / "trial"
    save_state(trial / "checkpoint_000000", 1)
    save_state(trial / "checkpoint_000001", 2)  # written after Ray's snapshot named 000000
    (trial / "checkpoint_000002").mkdir()
    (trial / "checkpoint_000002" / STATE_FILE).write_bytes(b"torn")  # cut short by a kill
    ray_ckpt = SimpleNamespace(path=str(trial / "checkpoint_000000"))
    state, folder = newest_checkpoint(ray_ckpt, trial)
    assert state["epoch"] == 2 and folder.name == "checkpoint_000001"
    # Ray's snapshot names a checkpoint it has since deleted: the folder still has one
    gone = SimpleNamespace(path=str(trial / "checkpoint_999999"))
    assert newest_checkpoint(gone, trial)[0]["epoch"] == 2
    assert newest_checkpoint(None, tmp_path / "empty") == (None, None)


# -- the driver callback's reconciliation --------------------------------------------------


def fake_trial(trial_id, width, optimizer, status, last_result=None):
    return SimpleNamespace(
        trial_id=trial_id,
        config={"width": width, "optimizer": optimizer},
        status=status,
        last_result=last_result or {},
        error_file=None,
    )


def result(epoch, val_acc):
    return {"epoch": epoch, "val_acc": val_acc, "train_loss": 1.0 / epoch, "time_total_s": 1.0}


def test_resume_reconciles_the_table_history_and_optuna_db_with_ray(tmp_path, capsys):
    from sweeper.engine.callbacks import StudyCallback

    (tmp_path / "rs.yaml").write_text(SWEEP)
    study = Study.create(tmp_path / "rs", load_spec(str(tmp_path / "rs.yaml")), "rs.yaml", 4)
    cb = StudyCallback(str(study.path), 4)
    a = fake_trial("a", 16, "adam", "RUNNING")  # finishes, but after Ray's last snapshot
    b = fake_trial("b", 16, "sgd", "RUNNING")  # its last result recorded, not its end
    c = fake_trial("c", 32, "adam", "RUNNING")  # mid-way
    cb.on_step_begin(0, [])
    for epoch in range(1, 5):
        cb.on_trial_result(0, [], a, result(epoch, 0.5 + epoch / 100))
        cb.on_trial_result(0, [], b, result(epoch, 0.6 + epoch / 100))
    cb.on_trial_complete(0, [], a)
    cb.on_trial_result(0, [], c, result(1, 0.4))
    cb.on_trial_result(0, [], c, result(2, 0.45))
    assert {t.user_attrs["trial_id"] for t in cb._optuna().study.trials} == {"a"}
    cb._close_mirror()
    # -- the driver is killed; Ray's snapshot knows b (finished) and c (from epoch 1) --------
    again = pickle.loads(pickle.dumps(cb))  # what Tuner.restore hands back
    b_done = fake_trial("b", 16, "sgd", "TERMINATED", last_result=result(4, 0.64))
    c_pending = fake_trial("c", 32, "adam", "PENDING")
    again.on_step_begin(0, [b_done, c_pending])
    rows = {r["trial_id"]: r for r in study.trials().to_dict(orient="records")}
    assert set(rows) == {"b", "c"}  # a will be run again under a new id
    assert rows["b"]["state"] == "COMPLETE" and rows["b"]["epochs"] == 4
    hist = study.history()
    assert set(hist["trial_id"]) == {"b", "c"}
    ot = optuna.load_study(study_name="rs", storage=study.optuna_url)
    assert [t.user_attrs["trial_id"] for t in ot.trials] == ["b"]
    assert ot.trials[0].params == {"width": 16, "optimizer": "sgd"}
    # c continues from its epoch-1 checkpoint: epoch 2 is trained again, recorded once
    again.on_trial_result(0, [], c_pending, result(2, 0.47))
    again.on_trial_result(0, [], c_pending, result(3, 0.5))
    lines = (study.path / "history.csv").read_text().splitlines()
    pairs = [tuple(ln.split(",")[:3]) for ln in lines[1:]]
    assert len(pairs) == len(set(pairs))
    c_hist = study.history().set_index(["trial_id", "epoch"]).loc["c"]
    assert list(c_hist.index) == [1, 2, 3] and c_hist.loc[2, "val_acc"] == 0.47
    # a new trial gets a number after every row's, not a reused one
    d = fake_trial("d", 16, "adam", "RUNNING")
    again.on_trial_start(0, [], d)
    numbers = [r["number"] for r in study.trials().to_dict(orient="records")]
    assert len(numbers) == len(set(numbers))
    again._close_mirror()


# -- the lock ------------------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import subprocess, sys, time
    from sweeper.store import Study
    lock = Study(sys.argv[1]).lock()
    lock.__enter__()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    print(child.pid, flush=True)
    time.sleep(60)
    """
)


def test_a_sigkilled_holders_lock_is_free_though_its_children_live(tmp_path):
    study = Study(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    child = int(proc.stdout.readline())
    try:
        assert study.holder()["pid"] == proc.pid
        with pytest.raises(Exception, match=f"pid {proc.pid}"):
            with study.lock():
                pass
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert study.holder() is None  # the child (like Ray's orphans) does not hold it
        with study.lock():
            assert json.loads((tmp_path / "lock").read_text())["pid"] == os.getpid()
    finally:
        os.kill(child, signal.SIGKILL)
        proc.stdout.close()


def test_a_checkpoint_ray_deleted_after_its_last_snapshot_is_recreated(tmp_path):
    """Ray deletes the older checkpoint when it registers a newer one; a kill before the next
    snapshot leaves a snapshot naming the deleted one (Ray would fail the trial). The study
    folder was moved since: Ray's absolute path names the old place."""
    from ray.train._internal.session import _TrainingResult
    from ray.tune import Checkpoint

    from sweeper.engine.trainable import RAY_EPOCH_FILE, _epoch_of

    tune = tmp_path / "moved" / "tune"
    trial = tune / "ray_trainable_a_1"
    named = trial / "checkpoint_000001"  # what the snapshot names: epoch 2, deleted since
    save_state(trial / "checkpoint_000002", 3)  # registered after the snapshot
    old = tmp_path / "old" / "tune" / "ray_trainable_a_1" / "checkpoint_000001"
    recorded = _TrainingResult(
        checkpoint=Checkpoint.from_directory(str(old)),
        metrics={"epoch": 2, "training_iteration": 2},
    )
    state = {"trial_data": [[json.dumps({"trial_id": "a"}), run_metadata([recorded])]]}
    (tune / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps(state))
    (tune / "tuner.pkl").write_bytes(pickle.dumps({"x": 1}))

    snap = read_snapshot(tune)
    [ckpt] = snap.checkpoints["a"]
    assert ckpt.path == str(old) and ckpt.epoch == 2 and ckpt.under(tune) == named
    assert repair(tune, snap) == 1
    assert not (tmp_path / "old").exists()  # nothing written where the study used to be
    assert torch.load(named / STATE_FILE)["epoch"] == 3  # the newest state, under Ray's name
    assert json.loads((named / RAY_EPOCH_FILE).read_text()) == {"epoch": 2}
    # the trial knows Ray saw epoch 2: it reports epoch 3 again before training epoch 4
    assert _epoch_of(SimpleNamespace(path=str(named))) == 2
    assert repair(tune, read_snapshot(tune)) == 0  # nothing missing any more
    assert not list(trial.glob(".repair-*"))


def test_reset_results_forgets_every_trial(tmp_path):
    (tmp_path / "rs.yaml").write_text(SWEEP)
    study = Study.create(tmp_path / "rs", load_spec(str(tmp_path / "rs.yaml")), "rs.yaml", 4)
    (study.tune_dir / "ray_trainable_a").mkdir(parents=True)
    (study.tune_dir / "tuner.pkl").write_bytes(b"x")
    study.write_trials([{"trial_id": "a", "state": "RUNNING"}])
    study.append_history("a", 1, {"val_acc": 0.5})
    (study.path / "optuna.db").write_bytes(b"")
    study.reset_results()
    assert sorted(p.name for p in study.path.iterdir()) == ["spec.yaml", "study.json"]
    assert study.trials().empty and study.history().empty
