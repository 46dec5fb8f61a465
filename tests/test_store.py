"""The study folder: atomic writes, the lock, the saved spec, the tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sweeper.errors import SweeperError
from sweeper.spec import load_spec, spec_from_dict
from sweeper.spec.loader import parse_yaml
from sweeper.store import STUDY_FORMAT, Study, atomic_write, dump_spec, study_path


@pytest.fixture
def study(tmp_path):
    spec = load_spec("sweeps/mlp_grid.yaml")
    return Study.create(tmp_path / "s", spec, "sweeps/mlp_grid.yaml", n_trials=96)


def test_saved_spec_reads_back_equal(study):
    assert study.spec() == load_spec("sweeps/mlp_grid.yaml")
    assert study.meta()["format"] == STUDY_FORMAT and study.meta()["n_trials"] == 96


def test_saved_spec_keeps_what_was_not_set(study):
    saved = study.spec()
    assert "lr_schedule" not in saved.train.model_fields_set  # a preset may still set it
    assert saved.train.model_fields_set == load_spec("sweeps/mlp_grid.yaml").train.model_fields_set


def test_dump_spec_round_trips_small_floats():
    spec = spec_from_dict(
        {
            "name": "x",
            "model": {"name": "mlp"},
            "train": {"lr": 1e-5},
            "parameters": {"lr": {"min": 1e-6, "max": 1e-2, "distribution": "log_uniform_values"}},
            "method": "random",
        },
        "t",
    )
    again = spec_from_dict(parse_yaml(dump_spec(spec), "dump"), "dump")
    assert again == spec


def test_existing_study_is_refused_with_resume_hint(study):
    with pytest.raises(SweeperError, match="sweeper resume"):
        Study.check_new(study.path, "mlp_grid")
    Study.check_new(study.path, "mlp_grid", force_new=True)  # allowed with --force-new


def test_output_under_a_file_is_refused(tmp_path):
    (tmp_path / "file.txt").write_text("")
    with pytest.raises(SweeperError, match="not writable"):
        Study.check_new(tmp_path / "file.txt" / "s", "s")


def test_unwritable_parent_is_refused(tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user that can write anywhere")
        with pytest.raises(SweeperError, match="not writable"):
            Study.check_new(locked / "s", "s")
    finally:
        locked.chmod(0o700)


def test_open_refuses_missing_and_foreign_folders(tmp_path, study):
    with pytest.raises(SweeperError, match="no study here"):
        Study.open(str(tmp_path / "nothing"))
    meta = study.meta()
    meta["format"] = 99
    (study.path / "study.json").write_text(json.dumps(meta))
    with pytest.raises(SweeperError, match="format 99 is not supported"):
        Study.open(str(study.path))


def test_lock_refuses_a_live_holder_and_takes_a_stale_one(study):
    with study.lock():
        with pytest.raises(SweeperError, match=f"pid {os.getpid()}"):
            with study.lock():
                pass
    # A lock left by a process that no longer exists is stale.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    import socket

    (study.path / "lock").write_text(
        json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()})
    )
    with study.lock():
        assert json.loads((study.path / "lock").read_text())["pid"] == os.getpid()
    assert not (study.path / "lock").exists()


def test_a_half_taken_lock_is_dropped_and_a_held_one_kept(study):
    (study.path / "lock").write_text("")  # made by open(), the flock not yet taken
    study.drop_stale_lock()
    assert not (study.path / "lock").exists()
    with study.lock():
        study.drop_stale_lock()
        assert json.loads((study.path / "lock").read_text())["pid"] == os.getpid()
    study.drop_stale_lock()  # nothing there: nothing to do
    assert not (study.path / "lock").exists()


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "t.csv"
    atomic_write(target, "a\n")
    atomic_write(target, "b\n")
    assert target.read_text() == "b\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_trial_table_and_history(study):
    study.write_trials([{"trial_id": "a", "state": "COMPLETE", "config/width": 32, "val_acc": 0.8}])
    study.append_history("a", 1, {"val_acc": 0.7, "epoch": 1, "params": 10})
    study.append_history("a", 1, {"val_acc": 0.75})  # an epoch redone after a restore
    study.append_history("a", 2, {"val_acc": 0.8})
    df = study.trials()
    assert df.loc[0, "config/width"] == 32 and df.loc[0, "state"] == "COMPLETE"
    hist = study.history()
    assert list(hist["epoch"]) == [1, 2]
    assert list(hist["val_acc"]) == [0.75, 0.8]  # the last value of a redone epoch wins


def test_study_path_by_name_or_path(tmp_path):
    assert study_path("mine", tmp_path) == tmp_path / "mine"
    assert study_path("./runs/mine") == study_path("./runs/mine")


def test_the_trial_table_is_a_csv_plus_a_journal_of_whole_rows(study, monkeypatch):
    from sweeper.store import table as table_mod

    rows = {t: {"trial_id": t, "number": i, "state": "RUNNING", "epochs": 0}
            for i, t in enumerate("abc")}  # fmt: skip
    for row in rows.values():
        assert not study.record_trial(row)
    rows["a"].update(state="COMPLETE", epochs=2, val_acc=0.8)
    study.record_trial(rows["a"])
    df = study.trials()
    assert list(df["trial_id"]) == ["a", "b", "c"] and df.loc[0, "state"] == "COMPLETE"
    assert not (study.path / "trials.csv").exists()  # nothing folded yet: appends only
    # a line cut short (a power loss) is skipped; the rows before it stand
    with open(study.path / "trials.jsonl", "a") as f:
        f.write('{"trial_id": "d", "sta')
    assert list(study.trials()["trial_id"]) == ["a", "b", "c"]
    # the journal folds into the CSV once it outgrows it; replaying it again changes nothing
    monkeypatch.setattr(table_mod, "MIN_FOLD_BYTES", 0)
    assert study.record_trial(rows["b"])
    study.write_trials(list(rows.values()))
    assert (study.path / "trials.jsonl").read_text() == ""
    study.record_trial(rows["a"])  # as if the kill fell between the fold and the truncation
    again = study.trials()
    assert list(again["trial_id"]) == ["a", "b", "c"] and again.loc[0, "val_acc"] == 0.8


def test_recording_a_trial_appends_the_same_bytes_in_a_large_study(study):
    def appended(n_rows: int) -> int:
        study.reset_results()
        study.write_trials([{"trial_id": f"t{i}", "number": i, "state": "COMPLETE"}
                            for i in range(n_rows)])  # fmt: skip
        before = (study.path / "trials.csv").stat().st_size
        study.record_trial({"trial_id": "new", "number": n_rows, "state": "RUNNING"})
        assert (study.path / "trials.csv").stat().st_size == before  # the CSV is untouched
        return (study.path / "trials.jsonl").stat().st_size

    assert appended(10) == appended(5000) - len("5000") + len("10")


def test_history_is_append_only_and_restart_marks_void_retrained_epochs(study):
    for epoch, acc in ((1, 0.5), (2, 0.6), (3, 0.7)):
        study.append_history("a", epoch, {"val_acc": acc})
        study.append_history("b", epoch, {"val_acc": acc})
    size = (study.path / "history.csv").stat().st_size
    # trial a is restored from its epoch-1 checkpoint: epoch 2 is trained again, then pruned
    study.history_file.restart("a", 2)
    study.append_history("a", 2, {"val_acc": 0.65})
    assert (study.path / "history.csv").read_bytes()[:size]  # nothing before it rewritten
    hist = study.history().set_index(["trial_id", "epoch"])["val_acc"]
    assert hist.loc["a"].to_dict() == {1: 0.5, 2: 0.65}  # epoch 3 of the first run is void
    assert hist.loc["b"].to_dict() == {1: 0.5, 2: 0.6, 3: 0.7}
    assert study.history_epochs() == {"a": 2, "b": 3}
    study.history_file.drop(["b"])
    assert set(study.history()["trial_id"]) == {"a"}
