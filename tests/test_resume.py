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


# -- checkpoints -------------------------------------------------------------------------


def save_state(folder: Path, epoch: int) -> None:
    folder.mkdir(parents=True)
    torch.save({"epoch": epoch, "runs": [], "metrics": {"epoch": epoch}}, folder / STATE_FILE)


def test_the_newest_readable_checkpoint_wins(tmp_path):
    trial = tmp_path / "trial"
    save_state(trial / "checkpoint_000001", 1)
    save_state(trial / "checkpoint_000002", 2)  # a kill fell before the older one went
    (trial / "checkpoint_000003").mkdir()
    (trial / "checkpoint_000003" / STATE_FILE).write_bytes(b"torn")  # cut short by a kill
    state, folder = newest_checkpoint(trial)
    assert state["epoch"] == 2 and folder.name == "checkpoint_000002"
    assert newest_checkpoint(tmp_path / "empty") == (None, None)


def test_a_checkpoint_replaces_the_older_ones_atomically(tmp_path):
    from sweeper.engine.trainable import save_checkpoint

    trial = tmp_path / "trial"
    trial.mkdir()
    (trial / ".checkpoint-stale").mkdir()  # a write cut short by a kill
    for epoch in (1, 2, 2, 3):  # epoch 2 trained again after a restore
        save_checkpoint(trial, {"epoch": epoch, "runs": [], "metrics": {"epoch": epoch}})
    assert sorted(p.name for p in trial.iterdir()) == ["checkpoint_000003"]
    assert newest_checkpoint(trial)[0]["epoch"] == 3


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


def test_resume_reconciles_the_table_history_and_optuna_db_with_ray(tmp_path, sweep_file):
    from sweeper.engine.callbacks import StudyCallback

    study = Study.create(tmp_path / "rs", load_spec(sweep_file("rs", epochs=4)), "rs.yaml", 4)
    cb = StudyCallback(study.path, 4)
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
    cb.flush()  # the mirror is written by a thread of its own
    mirror = cb.sink("mirror").mirror
    assert {t.user_attrs["trial_id"] for t in mirror.study.trials} == {"a"}
    mirror.close()
    # -- the driver is killed; Ray's snapshot knows b (finished) and c (from epoch 1) --------
    again = pickle.loads(pickle.dumps(cb))  # what Tuner.restore hands back
    b_done = fake_trial("b", 16, "sgd", "TERMINATED", last_result=result(4, 0.64))
    c_pending = fake_trial("c", 32, "adam", "PENDING")
    again.on_step_begin(0, [b_done, c_pending])
    again.flush()
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
    long = study.history_file.long()
    assert not long.duplicated(["trial_id", "epoch", "key"]).any()
    c_hist = study.history().set_index(["trial_id", "epoch"]).loc["c"]
    assert list(c_hist.index) == [1, 2, 3] and c_hist.loc[2, "val_acc"] == 0.47
    # a new trial gets a number after every row's, not a reused one
    d = fake_trial("d", 16, "adam", "RUNNING")
    again.on_trial_start(0, [], d)
    numbers = [r["number"] for r in study.trials().to_dict(orient="records")]
    assert len(numbers) == len(set(numbers))
    again.close()


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


def test_status_shows_a_killed_drivers_running_trials_as_interrupted(tmp_path, sweep_file, capsys):
    from sweeper.cli import main

    study = Study.create(tmp_path / "k", load_spec(sweep_file("k", epochs=4)), "k.yaml", 2)
    study.write_trials(
        [
            {"trial_id": "a", "number": 0, "state": "COMPLETE", "epochs": 4, "val_acc": 0.8},
            {"trial_id": "b", "number": 1, "state": "RUNNING", "epochs": 2, "val_acc": 0.7},
        ]
    )

    def states() -> dict[str, str]:
        assert main(["status", str(study.path), "--json"]) == 0
        return {t["trial_id"]: t["state"] for t in json.loads(capsys.readouterr().out)["trials"]}

    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(study.path)], stdout=subprocess.PIPE, text=True
    )
    child = int(proc.stdout.readline())
    try:
        study.set_state("running", pid=proc.pid)
        assert states() == {"a": "COMPLETE", "b": "RUNNING"}  # its driver holds the lock
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert states() == {"a": "COMPLETE", "b": "INTERRUPTED"}  # nothing runs it now
    finally:
        os.kill(child, signal.SIGKILL)
        proc.stdout.close()


def test_reset_results_forgets_every_trial(tmp_path, sweep_file):
    study = Study.create(tmp_path / "rs", load_spec(sweep_file("rs", epochs=4)), "rs.yaml", 4)
    (study.tune_dir / "ray_trainable_a").mkdir(parents=True)
    (study.tune_dir / "tuner.pkl").write_bytes(b"x")
    study.write_trials([{"trial_id": "a", "state": "RUNNING"}])
    study.append_history("a", 1, {"val_acc": 0.5})
    (study.path / "optuna.db").write_bytes(b"")
    study.reset_results()
    assert sorted(p.name for p in study.path.iterdir()) == ["spec.yaml", "study.json"]
    assert study.trials().empty and study.history().empty
