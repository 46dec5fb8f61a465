"""The study folder: ``runs/<name>/``, the one place a study's results live.

::

    runs/<name>/
      study.json    format version, state (running / finished / interrupted / failed), times
      spec.yaml     the resolved spec, read back by status, resume, report and export
      trials.csv    one row per trial: id, state, params (config/*), last metrics, epochs, wall
      history.csv   one row per reported value: trial_id, epoch, key, value (long format)
      optuna.db     an Optuna study (SQLite) mirroring the finished trials
      tune/         Ray Tune's experiment folder (checkpoints, searcher state)

Every whole-file write goes to a temporary file that is then renamed over the old one, so a
kill at any moment leaves either the old or the new file, never half of one. No ray here.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from sweeper.errors import SweeperError
from sweeper.spec import Spec, spec_from_dict

STUDY_FORMAT = 1
DEFAULT_ROOT = "runs"
PARAM_PREFIX = "config/"
# Columns every trial row has, in this order; params and metrics follow.
BASE_COLUMNS = ["trial_id", "number", "state", "epochs", "wall_s", "error"]


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def study_path(study: str, root: str | Path | None = None) -> Path:
    """A study given by name (under ``root``, default ./runs) or by its folder's path."""
    as_path = Path(study)
    if (as_path / "study.json").is_file() or os.sep in study or study.startswith("."):
        return as_path
    return Path(root or DEFAULT_ROOT) / study


class Study:
    """A study folder. Create it with :meth:`create`; open an existing one with :meth:`open`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # -- creation and opening -------------------------------------------------------------
    @staticmethod
    def check_new(path: Path, name: str, force_new: bool = False) -> None:
        """Refuse, before any work, a study that exists (unless ``force_new``) or can't be written."""
        path = Path(path)
        if (path / "study.json").exists():
            Study(path).check_free()  # a driver is running it: say whose, even with --force-new
        if (path / "study.json").exists() and not force_new:
            raise SweeperError(
                f"{path}: a study named {name!r} already exists; continue it with "
                f"`sweeper resume {path}`, or start over with --force-new (deletes it)"
            )
        parent = path
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise SweeperError(f"{path}: cannot create the study folder: {parent} is not writable")

    @classmethod
    def create(
        cls, path: Path, spec: Spec, source: str, n_trials: int, force_new: bool = False
    ) -> Study:
        """Make a new study folder holding the resolved spec (replacing one with ``force_new``)."""
        path = Path(path)
        cls.check_new(path, spec.name, force_new)
        if (path / "study.json").exists():
            old = cls(path)
            with old.lock():  # never delete a study another driver is running
                shutil.rmtree(path / "tune", ignore_errors=True)
                for child in path.iterdir():
                    if child.name != "lock":
                        shutil.rmtree(child) if child.is_dir() else child.unlink()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SweeperError(f"{path}: cannot create the study folder: {exc.strerror}") from None
        study = cls(path)
        atomic_write(path / "spec.yaml", dump_spec(spec))
        study._write_meta(
            {
                "format": STUDY_FORMAT,
                "name": spec.name,
                "source": source,
                "state": "created",
                "n_trials": n_trials,
                "created": time.time(),
            }
        )
        return study

    @classmethod
    def open(cls, study: str, root: str | Path | None = None) -> Study:
        """Open an existing study by name or path; a missing or foreign folder is an error."""
        path = study_path(study, root)
        meta_file = path / "study.json"
        if not meta_file.is_file():
            raise SweeperError(
                f"{path}: no study here (expected a folder made by `sweeper run`, "
                "holding study.json)"
            )
        s = cls(path)
        fmt = s.meta().get("format")
        if fmt != STUDY_FORMAT:
            raise SweeperError(
                f"{meta_file}: study format {fmt!r} is not supported; this sweeper reads "
                f"format {STUDY_FORMAT}"
            )
        return s

    # -- the lock: one driver per study ----------------------------------------------------
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

    def _remove_stale_temp_files(self) -> None:
        """Temporary files of writes cut short by a kill (``.<name>.tmp<pid>``)."""
        for tmp in self.path.glob(".*.tmp*"):
            if not tmp.name.endswith(f".tmp{os.getpid()}"):
                with contextlib.suppress(OSError):
                    tmp.unlink()

    def driver_alive(self) -> bool:
        """Whether the driver recorded in study.json (a running study) is still alive."""
        meta = self.meta()
        pid = meta.get("pid")
        host = meta.get("host", socket.gethostname())
        if not pid or not _alive({"pid": pid, "host": host}):
            return False
        # a pid can be reused after a kill: the driver is the one holding the lock
        return host != socket.gethostname() or self.holder() is not None

    # -- metadata and spec ----------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / "study.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise SweeperError(f"{self.path / 'study.json'}: unreadable: {exc}") from None

    def _write_meta(self, meta: dict[str, Any]) -> None:
        atomic_write(self.path / "study.json", json.dumps(meta, indent=2) + "\n")

    def set_state(self, state: str, **extra: Any) -> None:
        """Record the study's state (``running``, ``finished``, ``interrupted``, ``failed``)."""
        meta = self.meta()
        meta.update(state=state, updated=time.time(), host=socket.gethostname(), **extra)
        self._write_meta(meta)

    def spec(self) -> Spec:
        """The spec saved with the study (never the original YAML)."""
        from sweeper.spec import read_yaml_file

        source = str(self.path / "spec.yaml")
        return spec_from_dict(read_yaml_file(source), source)

    @property
    def name(self) -> str:
        return str(self.meta().get("name", self.path.name))

    @property
    def tune_dir(self) -> Path:
        return self.path / "tune"

    @property
    def optuna_url(self) -> str:
        return f"sqlite:///{(self.path / 'optuna.db').resolve()}"

    # -- trial table and history ----------------------------------------------------------
    def write_trials(self, rows: list[dict[str, Any]]) -> None:
        """Replace the trial table (atomically) with ``rows``."""
        columns = list(BASE_COLUMNS)
        for row in rows:
            columns += [k for k in row if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write(self.path / "trials.csv", buf.getvalue())

    def append_history(self, trial_id: str, epoch: int, metrics: dict[str, Any]) -> None:
        """Append one epoch's numeric metrics (long format, one write per epoch)."""
        path = self.path / "history.csv"
        buf = io.StringIO()
        writer = csv.writer(buf)
        if not path.exists():
            writer.writerow(["trial_id", "epoch", "key", "value"])
        for key, value in metrics.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                writer.writerow([trial_id, epoch, key, repr(float(value))])
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, buf.getvalue().encode())
        finally:
            os.close(fd)

    def rewrite_history(self, keep: Any) -> None:
        """Keep only the history rows for which ``keep(trial_id, epoch)`` is true (atomically).

        Used when epochs are trained again after a restore (their old rows go) and when a
        resume drops trials Ray's snapshot never saw.
        """
        path = self.path / "history.csv"
        if not path.exists():
            return
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        if not rows:
            return
        header, body = rows[0], rows[1:]
        out = [header]
        for rec in body:
            try:
                if not keep(rec[0], int(rec[1])):
                    continue
            except (IndexError, ValueError):
                continue  # a torn line
            out.append(rec)
        if len(out) == len(rows):
            return
        buf = io.StringIO()
        csv.writer(buf).writerows(out)
        atomic_write(path, buf.getvalue())

    def history_epochs(self) -> dict[str, int]:
        """The last epoch recorded in the history for each trial."""
        path = self.path / "history.csv"
        last: dict[str, int] = {}
        if not path.exists():
            return last
        with open(path, newline="", encoding="utf-8") as f:
            for rec in csv.reader(f):
                try:
                    epoch = int(rec[1])
                except (IndexError, ValueError):
                    continue  # the header, or a torn line
                last[rec[0]] = max(last.get(rec[0], 0), epoch)
        return last

    def reset_results(self) -> None:
        """Forget every trial: Ray's experiment, the trial table, history and optuna.db.

        For a resume that finds no usable Ray snapshot (the driver was killed before Ray's
        first one): nothing was recorded that Ray could continue, so the study starts over.
        Ray's folder goes first, in one rename, so a kill in the middle leaves a study that
        resets again (never half a Ray folder that looks restorable).
        """
        trash = self.path / f".tune-trash{os.getpid()}-{time.time_ns()}"
        if self.tune_dir.exists():
            os.replace(self.tune_dir, trash)
        for old in self.path.glob(".tune-trash*"):
            shutil.rmtree(old, ignore_errors=True)
        for name in ("trials.csv", "history.csv", "optuna.db", "optuna.db-journal"):
            with contextlib.suppress(FileNotFoundError):
                (self.path / name).unlink()

    def trials(self) -> Any:
        """The trial table as a DataFrame (empty when no trial has started)."""
        import pandas as pd

        path = self.path / "trials.csv"
        if not path.exists():
            return pd.DataFrame(columns=BASE_COLUMNS)
        return pd.read_csv(path)

    def history(self) -> Any:
        """Per-epoch metrics as a wide DataFrame: one row per (trial_id, epoch)."""
        import pandas as pd

        path = self.path / "history.csv"
        if not path.exists():
            return pd.DataFrame(columns=["trial_id", "epoch"])
        long = pd.read_csv(path, on_bad_lines="skip")
        long["value"] = pd.to_numeric(long["value"], errors="coerce")
        long = long.dropna(subset=["epoch"])
        long = long[~long["key"].isin(["trial_id", "epoch"])]
        wide = long.pivot_table(
            index=["trial_id", "epoch"], columns="key", values="value", aggfunc="last"
        )
        return wide.reset_index().rename_axis(columns=None)


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


def dump_spec(spec: Spec) -> str:
    """The spec as YAML that :func:`spec_from_dict` reads back to an equal spec.

    Only keys the sweep file (or ``--set``, or sweeper: the data root) set are written, so
    "not set" survives the round trip: a model preset's training defaults (LeNet v1's StepLR)
    apply to a resumed study exactly as they did to the first run.
    """
    data = spec.model_dump(mode="json", exclude_unset=True)
    data.setdefault("name", spec.name)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
