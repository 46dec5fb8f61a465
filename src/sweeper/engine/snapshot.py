"""Ray Tune's experiment snapshot on disk: read it (:func:`read_snapshot`), then make the
folder restorable (:func:`repair`) before ``Tuner.restore``.

``sweeper resume`` restores only from a consistent snapshot (a driver killed mid-write can
leave a torn one). Reading writes nothing; repairing writes only what the snapshot it is
given asks for. Trial checkpoints are not Ray's (see :mod:`sweeper.engine.trainable`), so
nothing here reads Ray's checkpoint manager.

These read Ray's private on-disk state, in the format of Ray :data:`TESTED_RAY` (the one
pyproject.toml pins). File names are relative to the experiment folder (``tune/``); source
files are under ``ray/``:

- ``experiment_state-<session>.json``: ``TuneController.CKPT_FILE_TMPL`` and ``save_to_dir``
  (``tune/execution/tune_controller.py``), a JSON dict; key ``trial_data``: a list of
  ``[trial_json, run_metadata_json]`` pairs from ``Trial.get_json_state``
  (``tune/experiment/trial.py``). Of ``trial_json`` the key ``trial_id``.
- ``search_gen_state-<session>.json`` (a cloudpickle despite its name):
  ``SearchGenerator.CKPT_FILE_TMPL`` / ``get_state`` (``tune/search/search_generator.py``),
  written by ``_atomic_save`` (``tune/utils/util.py``); key ``counter``, the trials created.
- ``searcher-state-<session>.pkl``: ``Searcher.CKPT_FILE_TMPL`` / ``save_to_dir``
  (``tune/search/searcher.py``); ``OptunaSearch.save`` (``tune/search/optuna/optuna_search.py``)
  pickles its ``__dict__``; key ``_ot_trials``, a dict from trial id to Optuna trial.
- ``tuner.pkl``: ``_TUNER_PKL`` (``tune/impl/tuner_internal.py``), only checked to be whole.
How torn snapshots come about: Ray writes a snapshot to a staging folder, then
``_ExperimentCheckpointManager.sync_up_experiment_state`` (``tune/execution/experiment_state.py``)
copies it file by file over the session's previous one, and ``tuner.pkl`` is rewritten in
place at every start. A file cut short, or a session's files from two different snapshots,
is *torn*: that session is set aside (``*.torn``, a name ``sync_down_experiment_state`` and
``_find_newest_experiment_checkpoint`` skip) and Ray falls back to the previous one. A file
that reads whole but lacks what is listed above means Ray changed its format: a
:class:`~sweeper.errors.SweeperError`, never a silent fallback. Checked by tests/test_resume.py
(hand-made files) and tests/test_snapshot_ray.py (a real Tuner's).
"""

from __future__ import annotations

import json
import os
import pickle
import pickletools
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeper.errors import SweeperError

TESTED_RAY = "2.60"  # the Ray minor version whose snapshot format this module reads
TUNER_FILE = "tuner.pkl"
GOOD_TUNER_FILE = "tuner.pkl.good"  # the whole copy repair keeps (Ray rewrites tuner.pkl)
TORN_SUFFIX = ".torn"
_STATE = "experiment_state-{}.json"
_GEN = "search_gen_state-{}.json"
_SEARCHER = "searcher-state-{}.pkl"
_MISSING = object()
# What loading a whole pickle (or Ray's cloudpickle blob in JSON) raises when the classes or
# the layout it names are not the ones installed: a format change, not a torn file.
_LOAD_ERRORS = (
    pickle.UnpicklingError,
    AttributeError,
    ImportError,
    TypeError,
    ValueError,
    EOFError,
)


class _Torn(Exception):
    """A snapshot file that is missing, cut short, or from another snapshot of the session."""


@dataclass(frozen=True)
class Snapshot:
    """What Ray left in an experiment folder, as :func:`read_snapshot` found it.

    Attributes:
        session: the newest consistent session (``experiment_state-<session>.json``), or None.
        torn: the sessions newer than ``session`` that are torn, newest first.
        tuner_whole: whether ``tuner.pkl`` is a complete pickle.
        good_tuner_whole: whether the copy ``tuner.pkl.good`` is.
        trial_ids: the trials of ``session``, in Ray's order.
        counter: the search generator's count of created trials (None without one).
        searcher_trials: the trial ids OptunaSearch knows (None without a searcher).
    """

    session: str | None = None
    torn: tuple[str, ...] = ()
    tuner_whole: bool = False
    good_tuner_whole: bool = False
    trial_ids: tuple[str, ...] = ()
    counter: int | None = None
    searcher_trials: tuple[str, ...] | None = None

    @property
    def usable(self) -> bool:
        """Whether Ray can restore from it (after :func:`repair`)."""
        return self.session is not None and (self.tuner_whole or self.good_tuner_whole)


@dataclass(frozen=True)
class _Session:
    trial_ids: tuple[str, ...]
    counter: int | None
    searcher_trials: tuple[str, ...] | None


def read_snapshot(tune_dir: Path) -> Snapshot:
    """Read Ray's snapshot in ``tune_dir`` (writes nothing).

    Raises:
        SweeperError: a snapshot file reads whole but not in Ray :data:`TESTED_RAY`'s format.
    """
    if not tune_dir.is_dir():
        return Snapshot()
    tuner = (_whole_pickle(tune_dir / TUNER_FILE), _whole_pickle(tune_dir / GOOD_TUNER_FILE))
    torn: list[str] = []
    for session in sorted(_sessions(tune_dir), reverse=True):
        try:
            found = _read_session(tune_dir, session)
        except _Torn:
            torn.append(session)
            continue
        return Snapshot(session, tuple(torn), *tuner, **vars(found))
    return Snapshot(None, tuple(torn), *tuner)


def _sessions(tune_dir: Path) -> list[str]:
    prefix, suffix = _STATE.split("{}")
    return [p.name[len(prefix) : -len(suffix)] for p in tune_dir.glob(_STATE.format("*"))]


def _read_session(tune_dir: Path, session: str) -> _Session:
    """One session's snapshot: its files all read whole and agree on the trials."""
    state_file = tune_dir / _STATE.format(session)
    ids = _read_trials(state_file, _read_json(state_file))
    counter = searcher_trials = None
    gen_file = tune_dir / _GEN.format(session)
    if gen_file.exists() or any(tune_dir.glob(_GEN.format("*"))):
        counter = _get(gen_file, _read_pickle(gen_file), "counter", int)
        if counter != len(ids):
            raise _Torn(f"{gen_file.name}: counter {counter}, {len(ids)} trials")
    searcher_file = tune_dir / _SEARCHER.format(session)
    if searcher_file.exists() or any(tune_dir.glob(_SEARCHER.format("*"))):
        known = _get(searcher_file, _read_pickle(searcher_file), "_ot_trials", dict)
        searcher_trials = tuple(known)
        if known and set(known) != set(ids):
            raise _Torn(f"{searcher_file.name}: other trials than {state_file.name}")
    return _Session(ids, counter, searcher_trials)


def _read_trials(path: Path, state: Any) -> tuple[str, ...]:
    """The trial ids of an experiment state, in Ray's order."""
    ids: list[str] = []
    for pair in _get(path, state, "trial_data", list):
        if not (
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(s, str) for s in pair)
        ):
            raise _format_error(path, f"a trial_data entry {_kind(pair)}, not [str, str]")
        trial = _decode(path, "a trial_data entry", pair[0])
        ids.append(_get(path, trial, "trial_id", str))
    return tuple(ids)


def _read_json(path: Path) -> Any:
    """A JSON snapshot file; torn when missing or cut short (not JSON, not UTF-8)."""
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError as exc:
        raise _Torn(f"{path.name} is missing") from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise _Torn(f"{path.name}: {exc}") from exc


def _decode(path: Path, what: str, text: str) -> Any:
    """A JSON string inside a whole experiment state (a trial's state)."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise _format_error(path, f"{what} that cannot be loaded ({_one_line(exc)})") from exc


def _whole_pickle(path: Path) -> bool:
    """Whether ``path`` is a complete pickle (read opcode by opcode; nothing is built)."""
    try:
        with open(path, "rb") as f:
            for _ in pickletools.genops(f):
                pass
    except (FileNotFoundError, ValueError):  # missing, empty or cut short
        return False
    return True


def _read_pickle(path: Path) -> Any:
    """A pickled snapshot file; torn when missing or cut short."""
    if not _whole_pickle(path):
        raise _Torn(f"{path.name} is missing or cut short")
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except _LOAD_ERRORS as exc:
        raise _format_error(path, f"an object that cannot be loaded ({_one_line(exc)})") from exc


def _get(path: Path, obj: Any, name: str, kind: type) -> Any:
    """``obj[name]`` (a dict) or its attribute ``name.rsplit('.')[-1]``, of type ``kind``."""
    key = name.rsplit(".", 1)[-1]
    if "." in name:
        value = getattr(obj, key, _MISSING)
    elif isinstance(obj, dict):
        value = obj.get(key, _MISSING)
    else:
        raise _format_error(path, f"{_kind(obj)} where a dict with '{name}' belongs")
    if value is _MISSING:
        raise _format_error(path, f"no '{name}'")
    if not isinstance(value, kind):
        raise _format_error(path, f"'{name}' as {_kind(value)}, not {kind.__name__}")
    return value


def _kind(obj: Any) -> str:
    return f"a {type(obj).__name__}"


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _format_error(path: Path, what: str) -> SweeperError:
    """The loud, one-line error for a snapshot file Ray wrote in another format."""
    import ray

    return SweeperError(
        f"{path}: Ray {ray.__version__} stores {what} (sweeper reads Ray {TESTED_RAY}'s "
        f"snapshot format); pin ray=={TESTED_RAY}.* or upgrade sweeper"
    )


def repair(tune_dir: Path, snapshot: Snapshot) -> None:
    """Make ``tune_dir`` restorable as ``snapshot`` (read from it) found it.

    Sets the torn sessions aside, so Ray restores ``snapshot.session``, and keeps a whole
    ``tuner.pkl`` (copied to ``tuner.pkl.good``, or restored from it).

    Raises:
        ValueError: ``snapshot`` is not usable.
    """
    if not snapshot.usable:
        raise ValueError(f"{tune_dir}: no usable Ray snapshot to repair")
    for session in snapshot.torn:
        for name in (_STATE, _GEN, _SEARCHER):
            f = tune_dir / name.format(session)
            if f.exists():
                f.replace(f.with_name(f.name + TORN_SUFFIX))
    # Ray rewrites tuner.pkl in place when a run (or a restore) starts: keep a whole copy.
    pkl, good = tune_dir / TUNER_FILE, tune_dir / GOOD_TUNER_FILE
    src, dst = (pkl, good) if snapshot.tuner_whole else (good, pkl)
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
