"""A script trial's process: started in a session of its own, stopped with its children.

The script runs as the leader of a new session (``start_new_session=True``), so it and
everything it starts (data-loader workers, a shell's children) share one process group;
stopping the trial sends SIGTERM to the group, then SIGKILL to whatever is left after a
grace period. Its stdin is closed at once, as W&B's agent does (a script that reads stdin
gets EOF instead of hanging); stdout and stderr go to files in the trial's folder,
appended, so the output of every start of the trial is kept.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from sweeper.script.launch import Launch

DEFAULT_GRACE_S = 5.0  # between SIGTERM and SIGKILL
TAIL_LINES = 5
TAIL_CHARS = 200  # a failed trial's error cell (Ray keeps 300 characters of its line)


class ScriptProcess:
    """One running script (``start``), its exit code (``poll``), its end (``stop``)."""

    def __init__(self, launch: Launch) -> None:
        self.launch = launch
        for path, text in launch.files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        launch.metrics.unlink(missing_ok=True)  # a restarted trial starts from scratch
        self._err_from = _size(launch.stderr)
        with open(launch.stdout, "ab") as out, open(launch.stderr, "ab") as err:
            self.popen = subprocess.Popen(
                launch.argv,
                cwd=launch.cwd,
                env=launch.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        self.pid = self.popen.pid

    def poll(self) -> int | None:
        """The exit code, or None while it runs."""
        return self.popen.poll()

    def stop(self, grace_s: float = DEFAULT_GRACE_S) -> None:
        """End the script and its process group: SIGTERM, then SIGKILL after ``grace_s``.

        The group is signalled even when the leader has exited (its children may not have).
        """
        _signal_group(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and _group_alive(self.pid):
            self.popen.poll()  # reap the leader, so that only the living count
            time.sleep(0.05)
        _signal_group(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=grace_s)

    def stderr_tail(self) -> str:
        """The last lines this start wrote to stderr, on one line (`` | `` between them)."""
        try:
            with open(self.launch.stderr, "rb") as f:
                f.seek(self._err_from)
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()][-TAIL_LINES:]
        tail = " | ".join(lines)
        return tail if len(tail) <= TAIL_CHARS else "..." + tail[-TAIL_CHARS:]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    """Whether any process (zombies aside once reaped) is left in the group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
