"""W&B tracking without Ray: run ids, configs, offline files read back, resume, failures."""

from __future__ import annotations

import copy
import pickle
import sys

import pytest

from sweeper.sinks.wandb import TrackerSettings, WandbTracker, run_config, run_id
from sweeper.sinks.wandb import runs as wandb_runs
from sweeper.sinks.wandb.offline import offline_runs
from sweeper.spec import spec_from_dict
from sweeper.store import Study
from tests.support import sweep_config

# The small sweep, with a constant parameter and W&B tags.
SPEC = sweep_config(
    "track",
    epochs=2,
    parameters={"activation": {"value": "relu"}},
    model={"args": {"depth": 2}},
    wandb={"tags": ["unit", "mlp"]},
)


def spec(**changes):
    return spec_from_dict({**copy.deepcopy(SPEC), **changes}, "track.yaml")


def tracker(tmp_path, mode="offline") -> WandbTracker:
    return WandbTracker(
        TrackerSettings(mode=mode, root=tmp_path, group="track", tags=["unit", "mlp"])
    )


def test_run_id_is_stable_and_safe():
    assert run_id("mlp_grid", "7d4f30e7") == "mlp_grid-7d4f30e7" == run_id("mlp_grid", "7d4f30e7")
    assert run_id("a/b:c", "x") == "a-b-c-x"
    long = run_id("s" * 100, "t1")
    assert len(long) < 80 and long != run_id("s" * 99 + "z", "t1")


def test_run_config_has_swept_values_as_top_level_scalars():
    cfg = run_config(spec(), {"width": 32, "optimizer": "sgd"})
    assert cfg["width"] == 32 and cfg["optimizer"] == "sgd"  # swept, as sampled
    assert cfg["activation"] == "relu"  # a constant parameter
    assert cfg["lr"] == 0.05 and cfg["momentum"] == 0.9  # resolved optimizer settings
    assert cfg["model"] == "mlp" and cfg["depth"] == 2 and cfg["epochs"] == 2
    assert cfg["study"] == "track" and cfg["dataset"] == "fashion_mnist"
    assert all(not isinstance(v, dict) for v in cfg.values())  # flat: parallel coordinates
    flags = run_config(spec(parameters={"per_class": {"values": [True, False]}}), {})
    assert "per_class" in flags


def test_offline_runs_read_back_and_a_resumed_trial_continues_its_run(tmp_path):
    first = tracker(tmp_path)
    first.start("t1", "t1 width=16", {"width": 16, "optimizer": "adam"}, job_type="mlp")
    first.start("t2", "t2 width=32", {"width": 32, "optimizer": "sgd"}, job_type="mlp")
    first.log("t1", 1, {"val_acc": 0.5, "train_loss": 1.0, "note": "text is skipped"})
    first.log("t2", 1, {"val_acc": 0.6, "nan": float("nan")})
    first.finish("t2", {"state": "COMPLETE", "val_acc": 0.6, "best_val_acc": 0.6, "epochs": 1})
    first.close()  # the study is interrupted: t1 is still running

    # The driver restarts (Ray unpickles the callback): a new tracker, the same run ids.
    again = tracker(tmp_path)
    again.start("t1", "t1 width=16", {"width": 16, "optimizer": "adam"}, job_type="mlp")
    again.log("t1", 2, {"val_acc": 0.7, "train_loss": 0.5})
    again.finish("t1", {"state": "COMPLETE", "val_acc": 0.7, "best_val_acc": 0.7, "epochs": 2})
    again.close()  # the end of the study: W&B has written every record

    runs = offline_runs(tmp_path / "wandb")
    assert set(runs) == {run_id("track", "t1"), run_id("track", "t2")}
    t1, t2 = runs[run_id("track", "t1")], runs[run_id("track", "t2")]
    assert len(t1.files) == 2 and len(t2.files) == 1  # t1 continued in a second file
    assert t1.steps() == [1, 2] and [r["val_acc"] for r in t1.history] == [0.5, 0.7]
    assert t1.summary["state"] == "COMPLETE" and t1.summary["epochs"] == 2
    assert t1.config == {"width": 16, "optimizer": "adam"}
    assert (t1.group, t1.job_type, t1.tags, t1.project) == (
        "track",
        "mlp",
        ["unit", "mlp"],
        "sweeper",
    )
    assert t2.history == [{"_step": 1, "val_acc": 0.6}] and t2.summary["best_val_acc"] == 0.6
    assert t2.exit_code == 0


def test_forget_drops_offline_runs_of_trials_ray_no_longer_knows(tmp_path):
    for _ in range(2):  # twice within a second: W&B names the second folder "...-keep-1"
        t = tracker(tmp_path)
        for trial in ("keep", "gone"):
            t.start(trial, trial, {}, job_type="mlp")
            t.finish(trial, {"state": "COMPLETE"})
        t.close()
    t.forget({"keep"})
    assert set(offline_runs(tmp_path / "wandb")) == {run_id("track", "keep")}
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 2


def test_disabled_mode_writes_nothing(tmp_path):
    t = tracker(tmp_path, mode="disabled")
    t.start("t1", "t1", {"a": 1}, job_type="mlp")
    t.log("t1", 1, {"val_acc": 1.0})
    t.finish("t1", {})
    assert not (tmp_path / "wandb").exists() and not t.runs


def test_missing_wandb_is_one_warning_and_no_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    t = tracker(tmp_path)
    for trial in ("t1", "t2"):
        t.start(trial, trial, {}, job_type="mlp")
        t.log(trial, 1, {"val_acc": 1.0})
        t.finish(trial, {})
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "W&B is unavailable" in err and "study goes on" in err
    assert t.mode == "disabled"


def test_online_failure_falls_back_to_offline(tmp_path, monkeypatch, capsys):
    import wandb

    real_init = wandb.init

    def init(*args, **kwargs):
        if kwargs.get("mode") == "online":
            raise wandb.errors.CommError("Failed to get resume status: no such host")
        return real_init(*args, **kwargs)

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setattr(wandb, "init", init)
    monkeypatch.setattr(wandb, "login", lambda **kw: True)  # "has a key"
    monkeypatch.setattr(wandb_runs, "unreachable", lambda *a: None)  # "the server connects"
    t = tracker(tmp_path, mode="online")
    t.start("t1", "t1", {"width": 16}, job_type="mlp")
    t.log("t1", 1, {"val_acc": 0.5})
    t.finish("t1", {"state": "COMPLETE"})
    t.start("t2", "t2", {"width": 32}, job_type="mlp")  # no second online attempt
    t.finish("t2", {"state": "COMPLETE"})
    t.close()
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "no such host" in err and "sweeper sync" in err
    assert set(offline_runs(tmp_path / "wandb")) == {run_id("track", "t1"), run_id("track", "t2")}


def test_online_without_a_key_falls_back_without_prompting(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc, no W&B settings
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    t = tracker(tmp_path, mode="online")
    t.start("t1", "t1", {}, job_type="mlp")
    t.finish("t1", {"state": "COMPLETE"})
    t.close()
    err = capsys.readouterr().err
    assert "W&B online failed" in err and err.count("warning") == 1
    assert set(offline_runs(tmp_path / "wandb")) == {run_id("track", "t1")}


def test_callback_pickles_only_the_study_path(tmp_path, monkeypatch):
    pytest.importorskip("ray.tune")
    from sweeper.engine.callbacks import StudyCallback

    monkeypatch.setenv("WANDB_API_KEY", "sweeper-secret-" + "0" * 25)
    study = Study.create(tmp_path / "track", spec(), "track.yaml", 4)
    callback = StudyCallback(study.path, 4)
    blob = pickle.dumps(callback)
    assert b"sweeper-secret" not in blob and b"WandbTracker" not in blob
    restored = pickle.loads(blob)
    tracker = restored.sink("wandb").tracker
    assert tracker.settings.group == "track" and tracker.mode == "offline"
    assert tracker.settings.tags == ["unit", "mlp"]


def test_callback_turns_trial_events_into_runs(tmp_path):
    pytest.importorskip("ray.tune")
    from types import SimpleNamespace

    from sweeper.engine.callbacks import StudyCallback

    study = Study.create(tmp_path / "track", spec(), "track.yaml", 2)
    ok = SimpleNamespace(trial_id="ok1", config={"width": 16, "optimizer": "adam"})
    bad = SimpleNamespace(
        trial_id="bad2", config={"width": 32, "optimizer": "sgd"}, error_file=None
    )
    cb = StudyCallback(study.path, 2)
    cb.on_step_begin(0, [ok, bad])
    cb.on_trial_start(0, [ok, bad], ok)
    for epoch, acc in ((1, 0.5), (2, 0.6)):
        result = {
            "epoch": epoch,
            "val_acc": acc,
            "train_loss": 1 / epoch,
            "training_iteration": epoch,
            "test_acc": 0.55,
            "params": 12345,
            "train_s": 0.75 * epoch,
            "time_total_s": 2.0 + 0.75 * epoch,
        }
        cb.on_trial_result(0, [ok, bad], ok, result)
    cb.on_trial_complete(0, [ok, bad], ok)
    cb.on_trial_error(0, [ok, bad], bad)  # failed before its first result: still a run
    cb.on_experiment_end([ok, bad])

    runs = offline_runs(study.path / "wandb")
    good, failed = runs[run_id("track", "ok1")], runs[run_id("track", "bad2")]
    assert good.name == "ok1 width=16 optimizer=adam" and good.job_type == "mlp"
    assert good.config["width"] == 16 and good.config["lr"] == 0.001
    assert [r["val_acc"] for r in good.history] == [0.5, 0.6] and good.steps() == [1, 2]
    assert {k: good.summary[k] for k in ("state", "val_acc", "best_val_acc", "params", "epochs")} == {
        "state": "COMPLETE", "val_acc": 0.6, "best_val_acc": 0.6, "params": 12345, "epochs": 2,
    }  # fmt: skip
    assert good.exit_code == 0
    assert good.summary["wall_s"] == 1.5 and good.summary["startup_s"] == 2.0
    assert failed.summary["state"] == "FAIL" and "error" in failed.summary["error"]
    assert failed.exit_code == 1 and failed.history == []
