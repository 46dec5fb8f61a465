"""The study folder: ``runs/<name>/``, the one place a study's results live.

::

    runs/<name>/
      study.json    format version, state (running / finished / interrupted / failed), times
      spec.yaml     the resolved spec, read back by status, resume, report and export
      trials.csv    the trial table (id, state, params as config/*, last metrics, epochs,
      trials.jsonl    training and start-up seconds): a snapshot plus a journal of changes
      history.csv   one row per reported value: trial_id, epoch, key, value (append-only)
      optuna.db     an Optuna study (SQLite) mirroring the ended trials
      tune/         Ray Tune's experiment folder (checkpoints, searcher state)
      errors/       <trial id>.txt: each failed trial's whole traceback
      code/         copies of the user's own model and data files (spec.yaml names these)

Whole files are replaced by a rename and records are appended (:mod:`sweeper.store.files`),
so a kill at any moment leaves a readable study. No ray here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import yaml

from sweeper.errors import SweeperError
from sweeper.spec import Spec, spec_from_dict
from sweeper.spec.code import CODE_DIR, code_paths, own_files
from sweeper.store.files import atomic_write
from sweeper.store.history import History
from sweeper.store.lock import StudyLock
from sweeper.store.table import TrialTable

# 2: the trial table has a journal (trials.jsonl); Ray's experiment holds one callback.
STUDY_FORMAT = 2
READABLE_FORMATS = (1, 2)
DEFAULT_ROOT = "runs"
PARAM_PREFIX = "config/"


class StudyExists(SweeperError):
    """A new study's folder already holds a study; the message says how to go on, in the
    CLI's words (:meth:`for_api`: in the Python API's)."""

    def __init__(self, path: Path, name: str) -> None:
        self.path, self.name = Path(path), name
        super().__init__(
            f"{path}: a study named {name!r} already exists; continue it with "
            f"`sweeper resume {path}`, or start over with --force-new (deletes it)"
        )

    def for_api(self) -> SweeperError:
        return SweeperError(
            f"{self.path}: a study named {self.name!r} already exists; continue it with "
            f"sweeper.open_study({str(self.path)!r}).resume(), start over with "
            "force_new=True (deletes it), or give another name= or out="
        )


def study_path(study: str, root: str | Path | None = None) -> Path:
    """A study given by name (under ``root``, default ./runs) or by its folder's path."""
    as_path = Path(study)
    if (as_path / "study.json").is_file() or os.sep in study or study.startswith("."):
        return as_path
    return Path(root or DEFAULT_ROOT) / study


class Study(StudyLock):
    """A study folder. Create it with :meth:`create`; open an existing one with :meth:`open`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.table = TrialTable(self.path)
        self.history_file = History(self.path)

    # -- creation and opening -------------------------------------------------------------
    @staticmethod
    def check_new(path: Path, name: str, force_new: bool = False) -> None:
        """Refuse, before any work, a study that exists (unless ``force_new``) or can't be written."""
        path = Path(path)
        if (path / "study.json").exists():
            Study(path).check_free()  # a driver is running it: say whose, even with --force-new
        if (path / "study.json").exists() and not force_new:
            raise StudyExists(path, name)
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
        atomic_write(path / "spec.yaml", dump_spec(copy_code(spec, path)))
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
        if fmt not in READABLE_FORMATS:
            raise SweeperError(
                f"{meta_file}: study format {fmt!r} is not supported; this sweeper reads "
                f"formats {', '.join(map(str, READABLE_FORMATS))}"
            )
        return s

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

    def update_meta(self, **extra: Any) -> None:
        """Add facts to study.json (its state unchanged), e.g. the split sizes a run loaded."""
        meta = self.meta()
        meta.update(extra)
        self._write_meta(meta)

    def spec(self) -> Spec:
        """The spec saved with the study (never the original YAML)."""
        from sweeper.spec import read_yaml_file

        source = str(self.path / "spec.yaml")
        return code_paths(spec_from_dict(read_yaml_file(source), source), self.path)

    def with_code(self, spec: Spec) -> Spec:
        """``spec`` loading the user's files from this study's copies (``code/``)."""
        if not own_files(spec):
            return spec
        saved = own_files(self.spec())
        update = {
            key: getattr(spec, key).model_copy(update={"path": str(saved[key])})
            for key in own_files(spec)
            if key in saved
        }
        return spec.model_copy(update=update)

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
        self.table.fold(rows)

    def record_trial(self, row: dict[str, Any]) -> bool:
        """Record one trial's new row (an append); True when the table is due a fold."""
        return self.table.record(row)

    def append_history(self, trial_id: str, epoch: int, metrics: dict[str, Any]) -> None:
        """Append one epoch's numeric metrics (long format, one write per epoch)."""
        self.history_file.append(trial_id, epoch, metrics)

    def history_epochs(self) -> dict[str, int]:
        """The last epoch recorded in the history for each trial."""
        return self.history_file.last_epochs()

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
        self.table.remove()
        for name in (self.history_file.path.name, "optuna.db", "optuna.db-journal"):
            with contextlib.suppress(FileNotFoundError):
                (self.path / name).unlink()

    def trials(self) -> Any:
        """The trial table as a DataFrame (empty when no trial has started)."""
        return self.table.frame()

    def history(self) -> Any:
        """Per-epoch metrics as a wide DataFrame: one row per (trial_id, epoch)."""
        return self.history_file.frame()


def copy_code(spec: Spec, path: Path) -> Spec:
    """Copy the user's model and data files into ``path/code/``; the spec names the copies.

    The saved spec names them relative to the study folder (``code/my_models.py``), so
    resume, export and the report load the same code when the original file changes or
    the study folder moves.
    """
    files = own_files(spec)
    update = {}
    for key, original in files.items():
        clash = key == "data" and files.get("model", original) != original
        name = (
            f"data_{original.name}"
            if clash and files["model"].name == original.name
            else (original.name)
        )
        target = path / CODE_DIR / name
        target.parent.mkdir(exist_ok=True)
        if original.resolve() != target.resolve():
            atomic_write(target, original.read_text(encoding="utf-8"))
        update[key] = getattr(spec, key).model_copy(update={"path": f"{CODE_DIR}/{name}"})
    return spec.model_copy(update=update) if update else spec


def dump_spec(spec: Spec) -> str:
    """The spec as YAML that :func:`spec_from_dict` reads back to an equal spec.

    Only keys the sweep file (or ``--set``, or sweeper: the data root) set are written, so
    "not set" survives the round trip: a model preset's training defaults (LeNet v1's StepLR)
    apply to a resumed study exactly as they did to the first run.
    """
    data = spec.model_dump(mode="json", exclude_unset=True)
    data.setdefault("name", spec.name)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
