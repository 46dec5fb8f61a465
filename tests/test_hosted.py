"""The host executor (``resources.executor``): which one runs a study, how hosts are laid
out, and hosted studies end to end on Ray (the same numbers as trials trained alone,
schedulers stop hosted trials, a killed driver's study resumes from the host's checkpoints)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from sweeper.cli import main
from sweeper.engine.executor import choose_executor, host_layout
from sweeper.errors import SpecError
from sweeper.spec import load_spec
from sweeper.store import Study
from tests.support import REPO
from tests.support.drivers import Driver, harness_env
from tests.support.sweeps import write_sweep


def spec_with(tmp_path: Path, **overrides) -> object:
    return load_spec(write_sweep(tmp_path, **overrides))


CPU = SimpleNamespace(device="cpu", n_gpus=0, trials_per_gpu=None, trials_per_host=None)
GPU = SimpleNamespace(device="cuda", n_gpus=2, trials_per_gpu=8, trials_per_host=24)


def test_auto_is_the_host_on_gpus_and_the_process_on_the_cpu(tmp_path):
    spec = spec_with(tmp_path)
    assert choose_executor(spec, GPU) == "host"
    assert choose_executor(spec, CPU) == "process"


def test_host_and_process_are_taken_as_asked(tmp_path):
    host = spec_with(tmp_path, resources={"executor": "host"})
    process = spec_with(tmp_path, resources={"executor": "process"})
    assert choose_executor(host, CPU) == "host"
    assert choose_executor(process, GPU) == "process"


def test_pbt_runs_on_hosts_too(tmp_path):
    pbt = {"name": "pbt", "perturbation_interval": 1}
    assert choose_executor(spec_with(tmp_path, scheduler=pbt), GPU) == "host"


def test_asking_a_program_for_a_host_is_one_line(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("print('hi')\n")
    spec = spec_with(tmp_path, model=None, data=None, program=str(script),
                     resources={"executor": "host"})  # fmt: skip
    with pytest.raises(SpecError) as err:
        choose_executor(spec, GPU, "s.yaml")
    assert "resources.executor" in str(err.value) and "program" in str(err.value)
    assert "expected auto or process" in str(err.value)


def test_a_program_runs_as_processes(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("print('hi')\n")
    spec = spec_with(tmp_path, model=None, data=None, program=str(script))
    assert choose_executor(spec, GPU) == "process"


def test_an_unknown_executor_is_one_line(tmp_path, capsys):
    path = write_sweep(tmp_path, resources={"executor": "threads"})
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "resources.executor" in err and "threads" in err and "Traceback" not in err


def test_gpu_hosts_one_per_gpu_holding_the_probed_count(tmp_path):
    layout = host_layout(spec_with(tmp_path), GPU, num_cpus=16, n_trials=96)
    assert (layout.hosts, layout.host_gpus, layout.per_host) == (2, 1.0, 24)
    assert layout.at_once == 48
    assert layout.client_cpus * layout.at_once <= 0.5 + 1e-9


def test_cpu_hosts_leave_half_a_core_to_the_clients(tmp_path):
    layout = host_layout(spec_with(tmp_path), CPU, num_cpus=2, n_trials=8)
    assert (layout.hosts, layout.host_gpus) == (1, 0.0)
    assert layout.host_cpus == 1.5 and layout.per_host == 2
    eight = host_layout(spec_with(tmp_path), CPU, num_cpus=8, n_trials=64)
    assert eight.hosts == 2 and eight.host_cpus == 3.75


def test_a_host_never_holds_more_than_the_study_or_max_concurrent(tmp_path):
    assert host_layout(spec_with(tmp_path), GPU, num_cpus=16, n_trials=3).per_host == 2
    capped = spec_with(tmp_path, resources={"max_concurrent": 4})
    assert host_layout(capped, GPU, num_cpus=16, n_trials=96).at_once == 4


def test_check_names_the_executor(tmp_path, capsys, data_root):
    path = write_sweep(tmp_path, resources={"executor": "host", "num_cpus": 2})
    assert main(["check", str(path)]) == 0
    assert "executor host" in capsys.readouterr().out


# -- the host's actor, driven directly (no Ray) ---------------------------------------------


@pytest.fixture
def host_actor(tmp_path, monkeypatch):
    """A factory of ``HostActor``s called in this process: its node name and data given, so
    no Ray is needed; each is stopped after the test."""
    from sweeper.data import load_splits
    from sweeper.engine import trainable
    from sweeper.engine.hosts import HostActor
    from sweeper.spec import spec_from_dict

    monkeypatch.setattr(trainable, "node_name", lambda: "here")
    made = []

    def make(epochs: int, scheduler: dict | None = None) -> tuple[HostActor, list]:
        sweep = {
            "name": "a",
            "method": "grid",
            "parameters": {"lr": {"values": [0.05, 0.01]}},
            "model": {"name": "xor_mlp", "args": {"depth": 1, "width": 8}},
            "data": {"name": "xor", "train_size": 200},
            "train": {"epochs": epochs, "batch_size": 100},
        }
        spec = spec_from_dict({**sweep, **({"scheduler": scheduler} if scheduler else {})}, "a")
        made.append(HostActor(spec, "cpu", 1))
        return made[-1], [load_splits(spec.data, tmp_path)]

    yield make
    for actor in made:
        actor.stop()


def test_a_late_leave_from_a_replaced_client_keeps_the_trial(tmp_path, host_actor):
    """Tune paused a trial (PBT's sync) and kept its client's actor in its cache, the old
    client still inside ``tune.report``; it resumed the trial in a new client elsewhere, and
    the old client left only when its cached actor was reused, after the new join. That
    leave dropped the new client's trial: the new client found it gone and failed, and
    synchronous PBT, its other trials paused at the sync, waited for it forever."""
    actor, data = host_actor(epochs=3)
    folder = str(tmp_path / "t")
    actor.join("t", {"lr": 0.05}, folder, data, client="old")
    assert actor.next("t", wait_s=60, client="old")["metrics"]["epoch"] == 1
    again = actor.join("t", {"lr": 0.05}, folder, data, client="new")  # its epoch-1 checkpoint
    assert again["again"]["epoch"] == 1
    actor.leave("t", client="old")  # late
    assert actor.held() == 1
    assert actor.next("t", wait_s=60, client="old") == {"gone": True, "replaced": True}
    reply = actor.next("t", wait_s=60, client="new")
    assert reply["metrics"]["epoch"] == 2 and not reply["done"]
    actor.leave("t", client="new")
    assert actor.held() == 0 and actor.next("t", client="new") == {"gone": True}


def test_under_pbt_every_epoch_goes_back_as_a_checkpoint_the_last_too(tmp_path, host_actor):
    """As a process trial reports it: the last epoch's state too (a copy at the last sync
    then copies that epoch, not the one before)."""
    import torch

    actor, data = host_actor(epochs=2, scheduler={"name": "pbt", "perturbation_interval": 1})
    actor.join("t", {"lr": 0.05}, str(tmp_path / "t"), data, client="c")
    replies = [actor.next("t", wait_s=60, client="c") for _ in range(2)]
    assert [r["done"] for r in replies] == [False, True]
    for epoch, reply in enumerate(replies, 1):
        state = torch.load(Path(reply["checkpoint"]) / "state.pt", map_location="cpu")
        assert state["epoch"] == epoch and state["trial_id"] == "t"
    assert actor.held() == 0


# -- end to end on Ray -----------------------------------------------------------------------


def alone(spec, params: dict) -> list[dict]:
    """Each epoch's metrics of one config trained by ``train_trial`` in this process."""
    from sweeper.data import load_splits
    from sweeper.trial import resolve_trial
    from sweeper.trial.loop import TrialContext, train_trial

    epochs: list[dict] = []
    splits = load_splits(spec.data, spec.data.root)
    train_trial(
        resolve_trial(spec, params),
        TrialContext(data=splits, report=lambda m, _state: epochs.append(dict(m))),
    )
    return epochs


@pytest.mark.slow
def test_a_hosted_study_trains_each_config_as_it_trains_alone(tmp_path, data_root, ray_session):
    path = write_sweep(
        tmp_path,
        name="hosted",
        epochs=2,
        resources={"executor": "host", "num_cpus": 2},
        data={"train_size": 1000, "val_size": 300, "test_size": 300},
    )
    runs = tmp_path / "runs"
    assert main(["run", str(path), "--runs", str(runs), "--wandb", "disabled"]) == 0
    study = Study.open("hosted", runs)
    placement = study.meta()["placement"]
    assert placement["executor"] == "host" and placement["hosts"]["hosts"] == 1
    rows = study.trials()
    assert list(rows["state"]) == ["COMPLETE"] * 4
    history = study.history()
    spec = study.spec()
    for _, row in rows.iterrows():
        params = {"width": int(row["config/width"]), "optimizer": row["config/optimizer"]}
        want = alone(spec, params)
        got = history[history["trial_id"] == row["trial_id"]].sort_values("epoch")
        assert len(got) == len(want) == 2
        for (_, epoch), metrics in zip(got.iterrows(), want, strict=True):
            for key in ("train_loss", "val_loss", "val_acc"):
                assert epoch[key] == pytest.approx(metrics[key], abs=1e-5), (params, key)
    # the host wrote each trial's checkpoints in its own folder, and logged its start
    for folder in study.tune_dir.glob("hosted_trainable_*"):
        assert [p.name for p in folder.glob("checkpoint_*")] == ["checkpoint_000002"]
        starts = [json.loads(x) for x in (folder / "starts.jsonl").read_text().splitlines()]
        assert [s["epoch"] for s in starts] == [0]


@pytest.mark.slow
def test_asha_stops_hosted_trials_early(tmp_path, data_root, ray_session):
    path = write_sweep(
        tmp_path,
        name="hosted_asha",
        epochs=4,
        method="random",
        run_cap=6,
        parameters={"lr": {"values": [1e-5, 1e-4, 0.05, 0.1]}, "width": {"values": [16]}},
        scheduler={"name": "asha", "grace_period": 1, "reduction_factor": 2},
        resources={"executor": "host", "num_cpus": 2},
        data={"train_size": 600, "val_size": 200, "test_size": 200},
        train={"optimizer": "sgd"},
    )
    runs = tmp_path / "runs"
    assert main(["run", str(path), "--runs", str(runs), "--wandb", "disabled"]) == 0
    rows = Study.open("hosted_asha", runs).trials()
    assert set(rows["state"]) <= {"COMPLETE", "PRUNED"}
    assert (rows["state"] == "PRUNED").any() and (rows["state"] == "COMPLETE").any()
    assert rows.loc[rows["state"] == "PRUNED", "epochs"].max() < 4


@pytest.mark.slow
def test_a_killed_host_then_a_killed_driver_lose_and_repeat_nothing(tmp_path, data_root):
    """SIGKILL the host: its trials fail, Ray restarts it and retries them from their
    checkpoints (``max_failures``). Then SIGKILL the driver: ``resume`` continues every
    trial from the host's checkpoints. Each epoch is in the history once."""
    import os
    import signal

    path = write_sweep(
        tmp_path,
        name="host_kill",
        epochs=4,
        resources={"executor": "host", "num_cpus": 2, "max_failures": 2},
        data={"train_size": 2000, "val_size": 300, "test_size": 300},
        train={"batch_size": 16},
    )
    runs = tmp_path / "runs"
    log = tmp_path / "driver.log"
    env = harness_env(Path("/tmp"))
    d = Driver(["run", str(path), "--runs", str(runs)], log, env, REPO)
    study_path = runs / "host_kill"
    while d.elapsed() < 240 and not (_epochs_done(study_path) >= 1 and _host_pids(d.pid)):
        assert d.proc.poll() is None, log.read_text()[-2000:]
        time.sleep(0.2)
    (host,) = _host_pids(d.pid)
    os.kill(host, signal.SIGKILL)
    killed_at = _epochs_done(study_path)
    while d.elapsed() < 360 and _epochs_done(study_path) < killed_at + 2:
        assert d.proc.poll() is None, log.read_text()[-2000:]  # the retries go on
        time.sleep(0.2)
    assert d.kill(), "the driver had ended before its kill"
    r = Driver(["resume", "host_kill", "--runs", str(runs)], log, env, REPO)
    assert r.wait(timeout=400) == 0, log.read_text()[-3000:]
    study = Study.open("host_kill", runs)
    assert list(study.trials()["state"]) == ["COMPLETE"] * 4
    history = study.history()
    pairs = list(zip(history["trial_id"], history["epoch"], strict=True))
    assert len(pairs) == len(set(pairs)) == 4 * 4  # each epoch once: none lost, none twice
    continued = [
        json.loads(line)["epoch"]
        for folder in study.tune_dir.glob("hosted_trainable_*")
        for line in (folder / "starts.jsonl").read_text().splitlines()
    ]
    assert sum(epoch > 0 for epoch in continued) >= 2, continued  # retried, then resumed


def _epochs_done(study: Path) -> int:
    """Finished (trial, epoch) pairs in the history so far (its rows hold one per metric)."""
    history = study / "history.csv"
    if not history.exists():
        return 0
    lines = history.read_text().splitlines()[1:]
    return len({tuple(line.split(",")[:2]) for line in lines if line})


def _host_pids(sid: int) -> list[int]:
    """The study's host processes (Ray names an actor's worker ``ray::HostActor``)."""
    from tests.support.drivers import session_pids

    found = []
    for pid in session_pids(sid):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"HostActor" in title:
            found.append(pid)
    return found
