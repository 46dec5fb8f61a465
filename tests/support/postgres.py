"""A throwaway PostgreSQL server for the storage tests: ``initdb`` into a temporary folder,
``pg_ctl start`` on a free loopback port with its socket in that folder, stopped and
deleted at the end. PostgreSQL refuses to run as root: as root, the server runs as the
``postgres`` user that Debian's package makes (``runuser``); without one, or without the
binaries (``scripts/ensure-system.sh`` installs them), :func:`unavailable` says why."""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import wsgiref.util
from pathlib import Path
from typing import Any

USER = "sweeper"
DATABASE = "sweeper_test"
# A password with characters a URL must quote, so the tests see it quoted and masked.
PASSWORD = "s3cret-Pw_4242"


def bin_dir() -> Path | None:
    """The folder of ``pg_ctl`` and ``initdb``: on PATH, else the newest Debian one."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version)
    return Path(versions[-1]).parent if versions else None


def _version(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


def run_as() -> list[str] | None:
    """The prefix that runs a command as a user PostgreSQL accepts ([] when not root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    runuser = shutil.which("runuser")
    return [runuser, "-u", "postgres", "--"] if runuser else None


def unavailable() -> str | None:
    """Why no server can be started here (None: one can)."""
    if bin_dir() is None:
        return "PostgreSQL not installed (scripts/ensure-system.sh installs it)"
    if run_as() is None:
        return "running as root without a 'postgres' user (or runuser) to run the server as"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg not installed (pip install 'psycopg[binary]')"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One cluster in a temporary folder; :meth:`start` and :meth:`stop` may repeat."""

    def __init__(self) -> None:
        self.bin = bin_dir()
        self.prefix = run_as()
        self.root = Path(tempfile.mkdtemp(prefix="sweeper-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.prefix:  # root: the cluster belongs to postgres
            info = pwd.getpwnam("postgres")
            os.chown(self.root, info.pw_uid, info.pw_gid)
            os.chown(pwfile, info.pw_uid, info.pw_gid)
        self._pg(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            USER,
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--no-sync",
        )
        pwfile.unlink()

    def _pg(self, tool: str, *args: str) -> None:
        cmd = [*(self.prefix or []), str(self.bin / tool), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr.strip()[-500:]}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, password: str | None = PASSWORD, database: str = DATABASE) -> str:
        auth = USER if password is None else f"{USER}:{password}"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> None:
        import psycopg

        with psycopg.connect(self.url(database="postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")

    def remove(self) -> None:
        try:
            self.stop()
        except (RuntimeError, subprocess.TimeoutExpired):
            pass  # already stopped
        shutil.rmtree(self.root, ignore_errors=True)


def dashboard_get(storage: Any, path: str) -> Any:
    """GET ``path`` from optuna-dashboard's own WSGI app, in process; the JSON it returns."""
    import optuna_dashboard

    app = optuna_dashboard.wsgi(storage)
    environ: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "QUERY_STRING": ""}
    wsgiref.util.setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(environ, lambda s, h, exc=None: status.append(s)))
    assert status[0].startswith("200"), (status, body[:300])
    return json.loads(body)
