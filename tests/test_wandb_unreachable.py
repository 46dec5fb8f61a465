"""W&B ``online`` with the server unreachable: real wandb against a closed port (refused at
once) and a loopback server that accepts and never answers (wandb's init timeout). The study
switches to offline at the first failure, with one warning; every trial gets one whole
offline run, ``sweeper sync`` finds them all, and the API key is written nowhere."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from sweeper.cli import main
from sweeper.sinks.wandb import TrackerSettings, WandbTracker, run_id
from sweeper.sinks.wandb.offline import offline_runs
from sweeper.store import Study

FAKE_KEY = "0123456789abcdef" * 2 + "fa4ec0de"  # 40 characters, like a real W&B key
INIT_TIMEOUT_S = 2  # the silent server's one wait (WANDB_INIT_TIMEOUT)


@pytest.fixture
def refused_url():
    """A loopback port nobody listens on: every connection is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def silent_url():
    """A loopback server that accepts every connection and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:  # closed: the test is over
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for conn in held:
        conn.close()


@pytest.fixture
def online(monkeypatch, tmp_path):
    """``online(url)``: the environment of a user with a key and W&B's server at ``url``."""
    import wandb

    def point_at(url: str) -> None:
        wandb.teardown()  # W&B's settings are loaded again, from this environment
        monkeypatch.delenv("WANDB_MODE", raising=False)
        monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
        monkeypatch.setenv("WANDB_BASE_URL", url)
        monkeypatch.setenv("WANDB_INIT_TIMEOUT", str(INIT_TIMEOUT_S))
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        monkeypatch.setenv("HOME", str(home))  # no ~/.netrc, no W&B settings of the machine
        monkeypatch.setenv("NETRC", str(home / "no-netrc"))

    yield point_at
    wandb.teardown()


@pytest.fixture
def init_modes(monkeypatch):
    """The mode of every ``wandb.init`` call, in order (the real init runs)."""
    import wandb

    modes: list[str] = []
    real = wandb.init

    def init(*args, **kwargs):
        modes.append(kwargs.get("mode"))
        return real(*args, **kwargs)

    monkeypatch.setattr(wandb, "init", init)
    return modes


def tracker(root: Path, mode: str = "online") -> WandbTracker:
    return WandbTracker(TrackerSettings(mode=mode, root=root, group="unreach"))


def record_trials(t: WandbTracker, trials=("t1", "t2", "t3"), epochs=(1, 2, 3)) -> None:
    t.prepare()
    for trial in trials:
        t.start(trial, trial, {"width": 4}, job_type="mlp")
        for epoch in epochs:
            t.log(trial, epoch, {"epoch": epoch, "val_acc": epoch / 10})
        t.finish(trial, {"state": "COMPLETE", "epochs": len(epochs)})
    t.close()


def assert_whole_offline_runs(wandb_dir: Path, group: str, trials, epochs) -> None:
    """One offline run per trial, in one file, with every epoch, finished; nothing online."""
    runs = offline_runs(wandb_dir)
    assert set(runs) == {run_id(group, t) for t in trials}
    for run in runs.values():
        assert run.steps() == list(epochs) and run.exit_code == 0
        assert len(run.files) == 1 and run.files[0].parent.name.startswith("offline-run-")
        assert run.summary["state"] == "COMPLETE"
    assert not list(wandb_dir.glob("run-*")), "a half-made online run folder is left"


def assert_key_written_nowhere(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert FAKE_KEY.encode() not in path.read_bytes(), path


def test_refused_connection_is_one_warning_and_no_wait(
    tmp_path, online, refused_url, init_modes, capsys
):
    online(refused_url)
    began = time.monotonic()
    record_trials(tracker(tmp_path))
    elapsed = time.monotonic() - began
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "W&B online failed" in err
    assert "Connection refused" in err and f"sweeper sync {tmp_path}" in err
    assert init_modes == ["offline"] * 3  # known before any run waited on the server
    assert elapsed < 20 * INIT_TIMEOUT_S  # seconds of W&B start-up, never an init timeout
    assert_whole_offline_runs(tmp_path / "wandb", "unreach", ("t1", "t2", "t3"), [1, 2, 3])
    assert_key_written_nowhere(tmp_path)


def test_silent_server_costs_one_init_timeout(tmp_path, online, silent_url, init_modes, capsys):
    online(silent_url)
    record_trials(tracker(tmp_path))
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "W&B online failed" in err
    assert "context deadline exceeded" in err
    # one online attempt; then the first trial again, offline from its start, and the rest
    assert init_modes == ["online", "offline", "offline", "offline"]
    assert_whole_offline_runs(tmp_path / "wandb", "unreach", ("t1", "t2", "t3"), [1, 2, 3])
    assert_key_written_nowhere(tmp_path)


def test_resumed_study_stays_offline_and_gets_the_epochs_its_runs_lack(
    tmp_path, online, silent_url, init_modes, capsys
):
    first = tracker(tmp_path, mode="offline")  # an earlier session, offline (or fallen back)
    first.start("t1", "t1", {"width": 4}, job_type="mlp")
    first.log("t1", 1, {"epoch": 1, "val_acc": 0.1})
    first.close()  # killed: epochs 2 and 3 reached the study's history, not W&B
    init_modes.clear()

    online(silent_url)  # a server that would cost an init timeout per attempt
    again = tracker(tmp_path)
    history = [(e, {"epoch": e, "val_acc": e / 10}) for e in (1, 2, 3)]
    again.start("t1", "t1", {"width": 4}, job_type="mlp", done=history)
    again.log("t1", 3, {"epoch": 3, "val_acc": 0.3})  # Ray's restore redoes epoch 3
    again.log("t1", 4, {"epoch": 4, "val_acc": 0.4})
    again.finish("t1", {"state": "COMPLETE", "epochs": 4})
    again.close()

    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "offline runs not yet uploaded" in err
    assert init_modes == ["offline"]  # no attempt online: the resumed run continues offline
    run = offline_runs(tmp_path / "wandb")[run_id("unreach", "t1")]
    assert len(run.files) == 2 and run.steps() == [1, 2, 3, 4]
    assert [row["val_acc"] for row in run.history] == [0.1, 0.2, 0.3, 0.4]
    assert run.summary["state"] == "COMPLETE"


def test_uploaded_runs_let_a_resumed_study_try_online_again(tmp_path, online, refused_url, capsys):
    first = tracker(tmp_path, mode="offline")
    record_trials(first, trials=("t1",), epochs=(1,))
    for path in (tmp_path / "wandb").glob("offline-run-*/run-*.wandb"):
        path.with_name(path.name + ".synced").touch()  # what `wandb sync` leaves
    online(refused_url)
    again = tracker(tmp_path)
    again.start("t2", "t2", {}, job_type="mlp")
    again.close()
    err = capsys.readouterr().err
    assert "Connection refused" in err and "not yet uploaded" not in err  # it tried the server


# -- end to end: the CLI, real Ray Tune and Optuna on XOR -------------------------------

XOR = """
name: {name}
method: grid
metric: {{name: val_acc, goal: maximize}}
parameters:
  depth: {{values: [1, 2]}}
  width: {{values: [2, 3]}}
model: {{name: xor_mlp}}
data: {{name: xor}}
train: {{epochs: 3, batch_size: 250, optimizer: sgd, lr: 0.1}}
resources: {{cpus: 1}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("server", ["refused", "silent"])
def test_study_online_without_a_server_records_every_trial_offline(
    tmp_path, online, request, server, ray_session, capfd
):
    online(request.getfixturevalue(f"{server}_url"))
    sweep = tmp_path / "xor.yaml"
    sweep.write_text(XOR.format(name=f"xor_{server}"))
    out = tmp_path / "runs"
    began = time.monotonic()
    assert main(["run", str(sweep), "--out", str(out), "--wandb", "online"]) == 0
    elapsed = time.monotonic() - began
    err = capfd.readouterr().err
    assert err.count("sweeper: warning") == 1 and "W&B online failed" in err, err

    study = Study.open(f"xor_{server}", out)
    df = study.trials()
    assert study.meta()["state"] == "finished" and len(df) == 4
    assert set(df["state"]) == {"COMPLETE"}
    wandb_dir = study.path / "wandb"
    assert_whole_offline_runs(wandb_dir, f"xor_{server}", list(df["trial_id"]), [1, 2, 3])
    assert_key_written_nowhere(study.path)

    assert main(["sync", f"xor_{server}", "--out", str(out), "--dry-run"]) == 0
    listed = capfd.readouterr()
    listed = listed.out + listed.err
    assert "Would sync 4 run(s)" in listed, listed
    for trial_id in df["trial_id"]:
        assert f"run-{run_id(f'xor_{server}', trial_id)}.wandb" in listed
    print(f"study with W&B {server}: {elapsed:.1f} s")  # the report's figure (pytest -s)
