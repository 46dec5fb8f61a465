"""Sweeper drivers as the chaos tests run them: ``python -m sweeper.cli`` in a session of
its own (its pid is the session id), with a private Ray temp dir; after a kill, every process
left in that session (Ray's, and only those) is killed too."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support import REPO, SHARED_DATA


def session_pids(sid: int) -> list[int]:
    """Every live process whose session id is ``sid`` (the driver's and its Ray's)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        # fields: state ppid pgrp session ...; zombies are already dead
        if len(fields) > 3 and int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(entry))
    return pids


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def reap_session(sid: int, timeout: float = 20.0) -> int:
    """SIGKILL every process left in session ``sid`` until none is; returns how many."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while True:
        pids = session_pids(sid)
        if not pids:
            return len(killed)
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes of session {sid} survive SIGKILL: {pids}")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


# The CLI with Ctrl-C armed: a test run from a background job (``make test &``) inherits an
# ignored SIGINT, and the driver would then never see the signals the tests send.
_WITH_CTRL_C = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'sweeper'; runpy.run_module('sweeper.cli', run_name='__main__')"
)


class Driver:
    """``python -m sweeper.cli ARGS`` in a new session (its pid is the session id)."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str], cwd: Path) -> None:
        self.args = args
        self.log = log
        self._logf = open(log, "ab")  # noqa: SIM115 - closed in wait()/kill()
        self._logf.write(f"\n$ sweeper {' '.join(args)}\n".encode())
        self._logf.flush()
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WITH_CTRL_C, *args],
            stdout=self._logf,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        self.pid = self.proc.pid

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the driver to exit, then clean up what its session left; its status.
        Past ``timeout`` the driver is killed (it must not outlive the test), then the
        timeout is raised."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        finally:
            if self.proc.returncode is not None:
                self.cleanup()
        return code

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def kill(self) -> bool:
        """SIGKILL the driver (only it), then its orphans; False if it had already exited."""
        alive = self.proc.poll() is None
        if alive:
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait()
        self.cleanup()
        return alive

    def cleanup(self) -> None:
        reap_session(self.pid)
        # a killed driver's Ray temp folder (engine/guard.py; its next run would remove it)
        for scratch in Path(tempfile.gettempdir()).glob(f"sweeper-{self.pid}-*"):
            shutil.rmtree(scratch, ignore_errors=True)
        if not self._logf.closed:
            self._logf.write(
                f"[exit {self.proc.returncode} after {self.elapsed():.1f}s]\n".encode()
            )
            self._logf.close()


def harness_env(ray_tmp: Path) -> dict[str, str]:
    """The drivers' environment: data root, a private Ray temp dir, quiet Ray and W&B."""
    env = dict(os.environ)
    # absolute: the drivers run in other folders than the one a relative root was given in
    env["SWEEPER_DATA_DIR"] = str(Path(env.get("SWEEPER_DATA_DIR") or SHARED_DATA).resolve())
    env["RAY_TMPDIR"] = str(ray_tmp)  # own /tmp/ray: never another session's cluster
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.setdefault("WANDB_MODE", "offline")
    env.setdefault("WANDB_SILENT", "true")
    env["PYTHONUNBUFFERED"] = "1"
    src = str(REPO / "src")
    env["PYTHONPATH"] = (
        src + os.pathsep + env.get("PYTHONPATH", "") if env.get("PYTHONPATH") else src
    )
    return env
