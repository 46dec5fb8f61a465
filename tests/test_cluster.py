"""A study on an existing Ray cluster: two nodes on this machine (``ray start --head`` and
``ray start --address``, both on loopback), the driver joining with ``--address``.

Trials spread over both nodes and the trial table names each one's node; when the worker
node dies mid-study its trials are retried on the head (``resources.max_failures``) and
continue from their checkpoints in the study folder, which both nodes see.

The nodes run with Ray's token authentication (one random token, ``RAY_AUTH_TOKEN``), as
the README starts them: a driver without the token is refused in one line; a cluster
started without authentication gets one warning line.
"""

from __future__ import annotations

import csv
import json
import secrets
import time
from pathlib import Path

import pytest
import yaml

from sweeper.store import Study
from tests.support import postgres
from tests.support.cluster import LocalCluster
from tests.support.drivers import Driver, harness_env


def sweep(tmp_path: Path, epochs: int, batch: int = 250, trials: int = 4, **resources) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "cluster",
                "method": "grid",
                "metric": {"name": "val_acc", "goal": "maximize"},
                "parameters": {"width": {"values": list(range(1, trials + 1))}},
                "model": {"name": "xor_mlp", "args": {"depth": 1}},
                "data": {"name": "xor"},
                "train": {"epochs": epochs, "batch_size": batch, "optimizer": "sgd", "lr": 0.1},
                "resources": {"cpus": 1, **resources},
            }
        )
    )
    return path


def cluster_env(tmp_path_factory, auth: str = "token") -> dict[str, str]:
    """The nodes' and the driver's environment: one random token for the whole cluster."""
    env = harness_env(tmp_path_factory.mktemp("ray-driver"))
    env["RAY_AUTH_MODE"] = auth
    if auth == "token":
        env["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    return env


class SharedCluster:
    """The module's two-node cluster (a head and a worker, one CPU each), shared by the
    tests that take ``cluster``: started on first use, and again only when a test left a
    node dead that the next one needs (starting one costs ~10 s of ``ray start``)."""

    def __init__(self, tmp_path_factory) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.env = cluster_env(tmp_path_factory)
        self.current: LocalCluster | None = None

    def get(self, workers: int = 1) -> LocalCluster:
        c = self.current
        if c is None or not c.nodes[0].alive() or sum(n.alive() for n in c.nodes[1:]) < workers:
            self.stop()
            c = self.current = LocalCluster(_short_temp(self.tmp_path_factory), self.env)
            c.start_head(num_cpus=1)
            c.add_worker(num_cpus=1)
        return c

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()
            self.current = None


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory):
    shared = SharedCluster(tmp_path_factory)
    try:
        yield shared
    finally:
        shared.stop()


@pytest.fixture
def cluster(shared_cluster):
    """A head and a live worker (the module's cluster: see :class:`SharedCluster`)."""
    return shared_cluster.get(workers=1)


@pytest.fixture
def cluster_head(shared_cluster):
    """A live head, its worker dead or alive (the module's cluster)."""
    return shared_cluster.get(workers=0)


def _short_temp(tmp_path_factory) -> Path:
    """A Ray temp dir with a short path (Unix socket paths are at most 107 bytes)."""
    base = tmp_path_factory.mktemp("cluster")
    temp = Path("/tmp") / f"rc-{base.name}-{int(time.time() * 1000) % 10**6}"
    temp.mkdir()
    return temp


def rows(study: Path) -> list[dict[str, str]]:
    with open(study / "trials.csv", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def run(
    cluster: LocalCluster, tmp_path: Path, spec: Path, *more: str, env: dict | None = None
) -> Driver:
    args = ["run", str(spec), "--out", str(tmp_path / "runs"), "--address", cluster.address]
    args += more
    return Driver(args, tmp_path / "driver.log", {**cluster.env, **(env or {})}, tmp_path)


@pytest.mark.slow
def test_trials_run_on_both_nodes_and_the_table_names_them(cluster, pg, tmp_path, capsys):
    """The acceptance run: a two-node cluster, the Optuna mirror in a real PostgreSQL."""
    import optuna

    from sweeper.cli import main
    from sweeper.mirror.storage import open_storage

    spec = sweep(tmp_path, epochs=20)
    # without the cluster's token (none in the env, none in ~/.ray): refused in one line
    tokenless = {k: v for k, v in cluster.env.items() if not k.startswith("RAY_AUTH")}
    tokenless["HOME"] = str(tmp_path / "home")
    args = ["run", str(spec), "--out", str(tmp_path / "runs"), "--address", cluster.address]
    refused = Driver(args, tmp_path / "refused.log", tokenless, tmp_path)
    assert refused.wait(timeout=120) == 2
    lines = (tmp_path / "refused.log").read_text().strip().splitlines()[1:-1]
    assert len(lines) == 1 and "wants a token and none was found" in lines[0], lines
    assert not (tmp_path / "home" / ".ray").exists()
    assert not (tmp_path / "runs" / "cluster").exists()  # nothing written

    driver = run(cluster, tmp_path, spec, "--storage", pg.url())
    assert driver.wait(timeout=300) == 0, (tmp_path / "driver.log").read_text()[-3000:]
    assert "without token authentication" not in (tmp_path / "driver.log").read_text()
    study = tmp_path / "runs" / "cluster"
    table = rows(study)
    assert [r["state"] for r in table] == ["COMPLETE"] * 4
    ids = {node_id[:8] for node_id, _ in cluster.node_ids()}
    seen = {r["node"].rpartition(":")[2] for r in table}
    assert seen == ids, (seen, ids)  # both nodes ran trials, and only they
    # the cluster's own Ray was not replaced by a local one: nothing started here
    assert "trials on cpu: 2 trials at a time" in (tmp_path / "driver.log").read_text()

    # PostgreSQL holds every trial exactly once, with the trial table's states and values
    by_id = {r["trial_id"]: r for r in table}
    held = optuna.load_study(study_name="cluster", storage=open_storage(pg.url())).trials
    assert sorted(t.user_attrs["trial_id"] for t in held) == sorted(by_id)
    for t in held:
        row = by_id[t.user_attrs["trial_id"]]
        assert t.state.name == row["state"] and t.value == pytest.approx(float(row["val_acc"]))
    # and optuna-dashboard's API lists the study and its trials
    storage = open_storage(pg.url())
    summaries = postgres.dashboard_get(storage, "/api/studies")["study_summaries"]
    (mine,) = [s for s in summaries if s["study_name"] == "cluster"]
    detail = postgres.dashboard_get(storage, f"/api/studies/{mine['study_id']}")
    assert sorted(v for tr in detail["trials"] for v in tr["values"]) == pytest.approx(
        sorted(float(r["val_acc"]) for r in table)
    )

    # status from anywhere that sees the folder: the node column included
    assert main(["status", str(study), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["state"] == "finished"
    assert {t["node"] for t in payload["trials"]} == {r["node"] for r in table}


@pytest.mark.slow
def test_a_dead_worker_nodes_trials_finish_on_the_head(cluster, tmp_path):
    driver = run(cluster, tmp_path, sweep(tmp_path, epochs=60, batch=4, max_failures=3))
    study = tmp_path / "runs" / "cluster"
    head = next(node_id[:8] for node_id, is_head in cluster.node_ids() if is_head)
    victim = _wait_for_running_on_worker(study, head, driver)
    cluster.nodes[1].kill()  # the worker node: its raylet, object store and trial workers
    assert driver.wait(timeout=400) == 0, (tmp_path / "driver.log").read_text()[-3000:]
    table = {r["trial_id"]: r for r in rows(study)}
    assert [r["state"] for r in table.values()] == ["COMPLETE"] * 4
    assert all(r["epochs"] == "60" for r in table.values())
    moved = table[victim["trial_id"]]
    assert moved["node"].rpartition(":")[2] == head  # it finished on the head
    starts = _starts(study, victim["trial_id"])
    assert len(starts) >= 2 and starts[-1]["epoch"] > 0  # continued from its checkpoint
    history = _history_epochs(study, victim["trial_id"])
    assert history == list(range(1, 61))  # each epoch once: none lost, none twice


@pytest.mark.slow
def test_a_lost_cluster_interrupts_the_study_in_one_line_and_it_resumes_on_a_new_one(
    cluster_head, tmp_path, tmp_path_factory
):
    cluster = cluster_head  # the head is what this test kills; a worker may be left or not
    spec = sweep(tmp_path, epochs=60, batch=4)
    driver = run(cluster, tmp_path, spec, env={"SWEEPER_CLUSTER_WATCH_S": "1"})  # ~3 s to notice
    study = tmp_path / "runs" / "cluster"
    _wait_for(lambda: any(int(r["epochs"] or 0) >= 3 for r in _table(study)), driver)
    cluster.nodes[0].kill()  # the head: its GCS, and with it the cluster
    assert driver.wait(timeout=120) == 130
    log = (tmp_path / "driver.log").read_text()
    lost = [ln for ln in log.splitlines() if "went away" in ln]
    assert len(lost) == 1 and "continue with `sweeper resume" in lost[0], log[-2000:]
    assert Study(study).meta()["state"] == "interrupted"
    cluster.stop()

    again = LocalCluster(_short_temp(tmp_path_factory), cluster.env)
    try:
        again.start_head(num_cpus=2)
        args = ["resume", str(study), "--address", again.address]
        resumed = Driver(args, tmp_path / "resume.log", again.env, tmp_path)
        assert resumed.wait(timeout=300) == 0, (tmp_path / "resume.log").read_text()[-3000:]
    finally:
        again.stop()
    table = rows(study)
    assert [r["state"] for r in table] == ["COMPLETE"] * 4
    for r in table:  # each epoch once, across the two clusters
        assert _history_epochs(study, r["trial_id"]) == list(range(1, 61))


def _table(study: Path) -> list[dict]:
    """The trial table with its journal (trials.csv alone is folded now and then)."""
    try:
        return Study(study).trials().fillna("").to_dict(orient="records")
    except (OSError, ValueError):
        return []


def _wait_for(ready, driver: Driver, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert driver.proc.poll() is None, "the study ended first"
        if ready():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def _wait_for_running_on_worker(study: Path, head: str, driver: Driver) -> dict[str, str]:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert driver.proc.poll() is None, "the study ended before a trial ran on the worker"
        try:  # the table with its journal (trials.csv alone is folded now and then)
            table = Study(study).trials().fillna("").to_dict(orient="records")
        except (OSError, ValueError):
            table = []
        for row in table:
            node = str(row.get("node") or "")
            running = row["state"] == "RUNNING" and int(row["epochs"] or 0) >= 3
            if running and node and not node.endswith(head):
                return {k: str(v) for k, v in row.items()}
        time.sleep(0.2)
    raise AssertionError("no trial ran on the worker node")


def _starts(study: Path, trial_id: str) -> list[dict]:
    files = list((study / "tune").glob(f"*{trial_id}*/starts.jsonl"))
    assert len(files) == 1, files
    return [json.loads(line) for line in files[0].read_text().splitlines()]


def _history_epochs(study: Path, trial_id: str) -> list[int]:
    """The epochs of the trial's history as the study reads it (restarts resolved)."""
    hist = Study(study).history()
    return sorted(int(e) for e in hist[hist["trial_id"] == trial_id]["epoch"])


@pytest.mark.slow
def test_a_cluster_without_authentication_gets_one_warning_line(tmp_path, tmp_path_factory):
    env = cluster_env(tmp_path_factory, auth="disabled")
    c = LocalCluster(_short_temp(tmp_path_factory), env)
    try:
        c.start_head(num_cpus=1)
        driver = run(c, tmp_path, sweep(tmp_path, epochs=1, trials=1))
        assert driver.wait(timeout=300) == 0, (tmp_path / "driver.log").read_text()[-3000:]
    finally:
        c.stop()
    log = (tmp_path / "driver.log").read_text()
    warned = [ln for ln in log.splitlines() if "without token authentication" in ln]
    assert len(warned) == 1, log[-3000:]
    assert c.address in warned[0] and "anyone who can reach it can run code" in warned[0]
    assert "RAY_AUTH_MODE=token" in warned[0]


def test_no_cluster_at_the_address_is_one_line_and_no_study(tmp_path, capsys):
    from sweeper.cli import main
    from tests.support.cluster import free_port

    spec = sweep(tmp_path, epochs=1)
    port = free_port()  # nothing listens there
    code = main(
        ["run", str(spec), "--out", str(tmp_path / "runs"), "--address", f"127.0.0.1:{port}"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"no Ray cluster at 127.0.0.1:{port}" in err[0] and "ray start --head" in err[0]
    assert not (tmp_path / "runs" / "cluster").exists()


@pytest.mark.parametrize(
    ("address", "num_cpus", "message"),
    [
        ("ray://10.0.0.5:10001", None, "Ray Client (ray://) is not supported"),
        ("10.0.0.5", None, "expected auto or the head's HOST:PORT"),
        ("auto", 4, "resources.num_cpus: sets the CPUs of a Ray started here"),
    ],
)
def test_a_bad_address_is_a_spec_error(tmp_path, capsys, address, num_cpus, message):
    from sweeper.cli import main

    extra = {"num_cpus": num_cpus} if num_cpus else {}
    spec = sweep(tmp_path, epochs=1, address=address, **extra)
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and str(spec) in err[0], err
