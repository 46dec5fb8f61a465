"""A study's Ray is its own: token authentication with a per-study token that is never
written, servers on loopback, Ray's and W&B's scratch gone at the end, and no secret from
the environment (W&B key, database password, Ray token) in any file the study leaves.

The end-to-end part runs one real study (``sweeper run`` in a process of its own, under a
fresh ``HOME``) and looks at it while it runs: the token of its Ray processes, what they
listen on, and a client without the token trying to join.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sweeper.engine import guard
from sweeper.store import Study
from tests.support import postgres
from tests.support.drivers import Driver, harness_env
from tests.support.listening import environ, listeners

WANDB_KEY = "sweeper-auth-secret-" + "3" * 20  # a W&B-key-shaped marker
PLANTED_RAY_TOKEN = "planted-ray-token-" + "5" * 46


# -- the parts ------------------------------------------------------------------------------
def test_a_script_trial_gets_no_ray_token(tmp_path):
    from sweeper.script.launch import plan_launch
    from sweeper.spec import spec_from_dict

    spec = spec_from_dict({"name": "s", "program": "train.py"}, "s.yaml")
    base = {"RAY_AUTH_TOKEN": "t" * 64, "RAY_AUTH_TOKEN_PATH": "/x/token", "PATH": "/bin"}
    launch = plan_launch(
        spec,
        {"lr": 0.1},
        study_dir=tmp_path / "s",
        trial_dir=tmp_path / "s" / "t",
        run_id="r1",
        base_env={**base, "RAY_AUTH_MODE": "token"},
        watch_pid=1,
        grace_s=2,
    )
    assert not set(guard.TOKEN_VARS) & set(launch.env), launch.env
    assert launch.env["PATH"] == "/bin"
    # W&B's own debug logs go to the study, unless the user chose a place
    assert launch.env["WANDB_CACHE_DIR"] == str(tmp_path / "s" / "wandb" / "cache")


def test_the_local_env_holds_a_fresh_token_only_while_ray_starts(monkeypatch):
    # this process's own Ray (the tests' shared session) recorded its mode there: keep it
    monkeypatch.setattr(guard, "_MODE_BEFORE", [])
    monkeypatch.setenv("RAY_AUTH_TOKEN", PLANTED_RAY_TOKEN)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    seen = []
    for _ in range(2):
        with guard.local_ray_env():
            seen.append(os.environ["RAY_AUTH_TOKEN"])
            assert os.environ["RAY_AUTH_MODE"] == "token"
            assert os.environ[guard.CLUSTER_ENV] == "0"
        assert os.environ["RAY_AUTH_TOKEN"] == PLANTED_RAY_TOKEN  # the user's, back
        assert guard.CLUSTER_ENV not in os.environ
        assert os.environ["RAY_AUTH_MODE"] == "token"  # until Ray is shut down
        guard.restore_mode()
        assert os.environ["RAY_AUTH_MODE"] == "disabled"
    assert len(set(seen)) == 2 and PLANTED_RAY_TOKEN not in seen
    assert all(len(t) == 64 for t in seen)


def test_a_token_is_at_hand_where_ray_looks_for_one(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in guard.TOKEN_VARS:
        monkeypatch.delenv(var, raising=False)
    assert not guard.token_at_hand()
    assert guard.token_at_hand({"RAY_AUTH_TOKEN_PATH": "/some/file"})
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("x")
    assert guard.token_at_hand()


def test_a_dead_drivers_scratch_and_its_orphans_go_and_a_live_ones_stays(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs
    dead = tmp_path / f"sweeper-{gone.pid}-abc"
    live = tmp_path / f"sweeper-{os.getpid()}-def"
    other = tmp_path / "sweeper-notapid"
    for folder in (dead, live, other):
        (folder / "session_x").mkdir(parents=True)
    # an orphan of the dead driver: a process started with a path inside its folder
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", str(dead / "session_x")]
    )
    _until_named(orphan.pid, dead)  # forked, not yet exec'd: it shows pytest's arguments
    try:
        assert guard.clean_stale(tmp_path) == [dead]
        assert orphan.wait(timeout=10) == -9
    finally:
        orphan.kill()
    assert not dead.exists() and live.is_dir() and other.is_dir()


def _until_named(pid: int, folder, timeout: float = 10.0) -> None:
    """Wait until process ``pid`` runs its own command line, which names ``folder``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if str(folder).encode() in f.read():
                return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} never named {folder}")


def test_the_scratch_folder_is_short_enough_for_rays_sockets(monkeypatch):
    monkeypatch.setenv("RAY_TMPDIR", "/tmp/" + "x" * 60)  # too long: not used
    path = guard.make_scratch()
    try:
        assert path.name.startswith(f"sweeper-{os.getpid()}-")
        # Ray adds /session_<date>_<time>_<us>_<pid>/sockets/plasma_store (61 bytes)
        assert len(str(path)) + 61 <= 107, path
    finally:
        guard.remove_scratch(path)
    assert not path.exists()


# -- one real study -------------------------------------------------------------------------
def _sweep(folder: Path) -> Path:
    path = folder / "auth.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "auth",
                "method": "grid",
                "metric": {"name": "val_acc", "goal": "maximize"},
                "parameters": {"width": {"values": [2, 3]}},
                "model": {"name": "xor_mlp", "args": {"depth": 1}},
                "data": {"name": "xor"},
                "train": {"epochs": 20, "batch_size": 4, "optimizer": "sgd", "lr": 0.1},
                "resources": {"cpus": 1},
                "wandb": {"mode": "offline"},
            }
        )
    )
    return path


# What Ray 2.60's client says when the GCS turns it away (an exception, or a log line
# before it retries).
REFUSED = ("AuthenticationError", "Unauthenticated", "InvalidAuthToken")
_CLIENT = (
    "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
    "print(ray.get(ray.remote(lambda: 'ran').remote()))"
)


class LiveStudy:
    """What was seen of the study while it ran, and the folders it leaves."""

    def __init__(self, root: Path, storage: str | None) -> None:
        self.root, self.storage = root, storage
        self.home = root / "home"
        self.home.mkdir()
        env = harness_env(root / "ray-unused")
        env.update(
            HOME=str(self.home),
            WANDB_API_KEY=WANDB_KEY,
            RAY_AUTH_TOKEN=PLANTED_RAY_TOKEN,
        )
        env.pop("WANDB_CACHE_DIR", None)
        if storage:
            env["PGPASSWORD"] = postgres.PASSWORD
        args = ["run", str(_sweep(root)), "--out", str(root / "runs")]
        args += ["--storage", storage] if storage else []
        self.driver = Driver(args, root / "driver.log", env, root)
        self.study = root / "runs" / "auth"

    def watch(self) -> None:
        """While a trial runs: the token, the listeners, a client without the token."""
        gcs = self._wait_for_gcs()
        self.token = environ(gcs).get("RAY_AUTH_TOKEN", "")
        self.listeners = listeners(self.driver.pid)
        (port,) = {item.port for item in self.listeners if item.pid == gcs}
        self.gcs_address = f"127.0.0.1:{port}"
        self.open_to_tokenless = guard.answers_without_token(self.gcs_address)
        client_env = {k: v for k, v in os.environ.items() if k not in guard.TOKEN_VARS}
        # another user's view: no token, no HOME of ours; the cluster switch off, or Ray
        # would take 127.0.0.1 for this machine's network address, where nothing listens
        client_env.update(HOME=str(self.root / "stranger"), RAY_AUTH_MODE="disabled")
        client_env[guard.CLUSTER_ENV] = "0"
        self.client = self._try_client(client_env)
        self.still_running = self._running()
        self.scratch = sorted(Path("/tmp").glob(f"sweeper-{self.driver.pid}-*"))

    def _try_client(self, env: dict[str, str], timeout: float = 90) -> str:
        """The client's output once it was refused (Ray's client then retries for a
        minute or more, so it is stopped there), or once it exits."""
        out = self.root / "client.log"
        with open(out, "wb") as f:
            proc = subprocess.Popen(
                [sys.executable, "-c", _CLIENT, self.gcs_address], stdout=f, stderr=f, env=env
            )
        try:
            deadline = time.monotonic() + timeout
            while proc.poll() is None and time.monotonic() < deadline:
                if any(word in out.read_text() for word in REFUSED):
                    break
                time.sleep(0.5)
        finally:
            proc.kill()
            proc.wait()
        return out.read_text()

    def _wait_for_gcs(self, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.driver.proc.poll() is None, self.log()
            if self._running():
                for item in listeners(self.driver.pid):
                    if item.name == "gcs_server":
                        return item.pid
            time.sleep(0.2)
        raise AssertionError("no trial ran")

    def _running(self) -> bool:
        try:
            states = set(Study(self.study).trials()["state"])
        except (OSError, ValueError, KeyError):
            return False
        return "RUNNING" in states

    def log(self) -> str:
        return (self.root / "driver.log").read_text()[-3000:]


@pytest.fixture(scope="module")
def live(tmp_path_factory, request):
    try:
        storage = request.getfixturevalue("pg").url(password=None)  # PGPASSWORD: the env
    except pytest.skip.Exception:
        storage = None  # no PostgreSQL here: the password part is skipped
    study = LiveStudy(tmp_path_factory.mktemp("auth"), storage)
    try:
        study.watch()
    finally:
        study.code = study.driver.wait(timeout=300)
    return study


@pytest.mark.slow
def test_a_client_without_the_token_is_refused_while_the_study_runs(live):
    assert live.code == 0, live.log()
    assert live.still_running, "the study ended before the client tried: make it longer"
    assert len(live.token) == 64 and live.token != PLANTED_RAY_TOKEN  # fresh, per study
    assert live.open_to_tokenless is False
    assert "ran" not in live.client.splitlines(), live.client[-2000:]
    assert any(word in live.client for word in REFUSED), live.client[-2000:]


@pytest.mark.slow
def test_the_studys_ray_listens_on_loopback_only(live):
    """Every listening socket of the driver's process tree (the driver, GCS, raylet, agents,
    workers) is listed; any not on loopback is named. Ray 2.60 binds each to the node's
    address, which sweeper sets to 127.0.0.1: a Ray that binds one elsewhere fails here."""
    print("\n".join(map(str, live.listeners)))
    names = {item.name for item in live.listeners}
    assert {"gcs_server", "raylet"} <= names, names
    exposed = [str(item) for item in live.listeners if not item.loopback]
    assert not exposed, f"listening beyond loopback: {exposed}"


@pytest.mark.slow
def test_no_secret_and_no_token_in_any_file_and_nothing_left_outside(live):
    assert live.code == 0, live.log()
    secrets = {"W&B key": WANDB_KEY, "planted Ray token": PLANTED_RAY_TOKEN}
    secrets["study's Ray token"] = live.token
    if live.storage:
        secrets["database password"] = postgres.PASSWORD
    offline = list((live.study / "wandb").glob("offline-run-*/*.wandb"))
    assert len(offline) == 2  # W&B's records are among the files searched
    for folder in (live.study, live.home):
        for f in folder.rglob("*"):
            if f.is_file():
                data = f.read_bytes()
                leaked = [what for what, value in secrets.items() if value.encode() in data]
                assert not leaked, f"{leaked} in {f}"
    # ~/.ray neither made nor changed; W&B's and Ray's scratch not outside the study
    assert not (live.home / ".ray").exists()
    assert not (live.home / ".cache" / "wandb").exists()
    assert list((live.study / "wandb" / "cache").rglob("core-debug-*.log"))
    assert live.scratch, "Ray's scratch folder was not where expected while the study ran"
    assert not any(p.exists() for p in live.scratch)


def test_wandb_sync_writes_its_logs_into_the_study_not_tmp_or_home(tmp_path, monkeypatch):
    from sweeper.sinks.wandb.sync import sync_runs

    run = tmp_path / "study" / "wandb" / "offline-run-20260101_000000-abc"
    run.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR"):
        monkeypatch.delenv(var, raising=False)
    assert sync_runs([run], dry_run=True) == 0
    assert list((tmp_path / "study" / "wandb").glob("debug-cli.*.log"))  # not /tmp's
    assert not (tmp_path / "home").exists()
