"""One driver per study: an ``flock`` on the study folder's ``lock`` file.

The lock file also records the holder's pid and host, for the one-line "in use by" error.
The kernel drops an flock when its process dies, so a lock left by a killed driver (even
one whose pid was reused since) is simply taken over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sweeper.errors import SweeperError


class StudyLock:
    """Mixed into :class:`~sweeper.store.Study` (which has ``path`` and ``meta()``)."""

    path: Path

    def meta(self) -> dict[str, Any]:  # pragma: no cover - provided by Study
        raise NotImplementedError

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the study's lock; a live holder makes this a one-line error naming its pid.

        The lock is an ``flock`` on ``lock`` (which also records the holder's pid and host):
        the kernel drops it when its process dies, so a lock left by a killed driver (even one
        whose pid was reused since) is simply taken over.
        """
        path = self.path / "lock"
        fd = self._take_lock(path)
        try:
            os.ftruncate(fd, 0)
            os.write(
                fd,
                json.dumps(
                    {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}
                ).encode(),
            )
            self._remove_stale_temp_files()
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # while still holding it: a waiter re-checks the inode
            os.close(fd)

    def _take_lock(self, path: Path) -> int:
        for _ in range(10):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise SweeperError(f"{path}: cannot take the study lock: {exc.strerror}") from None
            if not _flock(fd):
                os.close(fd)
                raise SweeperError(self._in_use(path)) from None
            try:  # the holder before us may have unlinked the file we opened: start again
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)
        raise SweeperError(f"{path}: cannot take the study lock")

    def _in_use(self, path: Path) -> str:
        holder = _read_lock(path) or {}
        who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
        return (
            f"{self.path}: study is in use by another sweeper ({who}, lock {path}); "
            "wait for it to finish or stop it"
        )

    def check_free(self) -> None:
        """Raise the one-line "in use by pid N" error when a live driver holds the lock."""
        if self.holder() is not None:
            raise SweeperError(self._in_use(self.path / "lock"))

    def holder(self) -> dict[str, Any] | None:
        """The live driver holding the study's lock (its pid and host), or None."""
        path = self.path / "lock"
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read_lock(path) or {"pid": "?", "host": "?"}
        finally:
            os.close(fd)  # also drops the shared lock taken to probe
        return None

    def drop_stale_lock(self) -> None:
        """Remove a ``lock`` file no live driver holds: one a signal left half-taken (after
        ``open`` made it, before the flock). Taken first, as a release unlinks it."""
        path = self.path / "lock"
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return
        try:
            if _flock(fd, tries=1) and os.fstat(fd).st_ino == os.stat(path).st_ino:
                path.unlink()
        except OSError:
            pass
        finally:
            os.close(fd)

    def _remove_stale_temp_files(self) -> None:
        """Temporary files of writes cut short by a kill (``.<name>.tmp<pid>``)."""
        for tmp in self.path.glob(".*.tmp*"):
            if not tmp.name.endswith(f".tmp{os.getpid()}"):
                with contextlib.suppress(OSError):
                    tmp.unlink()

    def driver_running(self) -> bool:
        """Whether a driver runs the study now: one holds its lock, or study.json says
        ``running`` with a live driver on another host (whose lock this host may not see)."""
        if self.holder() is not None:
            return True
        return self.meta().get("state") == "running" and self.driver_alive()

    def driver_alive(self) -> bool:
        """Whether the driver recorded in study.json (a running study) is still alive."""
        meta = self.meta()
        pid = meta.get("pid")
        host = meta.get("host", socket.gethostname())
        if not pid or not _alive({"pid": pid, "host": host}):
            return False
        # a pid can be reused after a kill: the driver is the one holding the lock
        return host != socket.gethostname() or self.holder() is not None


def _flock(fd: int, tries: int = 10) -> bool:
    """Take an exclusive flock on ``fd``; False if another process holds it.

    A few quick retries: ``Study.holder()`` (status, a refused second driver) probes with a
    shared lock for a few microseconds, which must not turn a starting driver away.
    """
    for i in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            if i + 1 < tries:
                time.sleep(0.02)
    return False


def _read_lock(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _alive(holder: dict[str, Any]) -> bool:
    """A lock holder is alive if it is on this host and its pid exists."""
    if holder.get("host") != socket.gethostname():
        return True  # another machine's driver: assume alive
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, KeyError):
        return True
    return True
