"""Ray Tune's experiment snapshot on disk: read it (:func:`read_snapshot`), then make the
folder restorable (:func:`repair`) before ``Tuner.restore``.

``sweeper resume`` restores only from a consistent snapshot (a driver killed mid-write can
leave a torn one) and recreates checkpoints the snapshot names but Ray already deleted.
Reading writes nothing; repairing writes only what the snapshot it is given asks for.

These read Ray's private on-disk state, in the format of Ray :data:`TESTED_RAY` (the one
pyproject.toml pins). File names are relative to the experiment folder (``tune/``); source
files are under ``ray/``:

- ``experiment_state-<session>.json``: ``TuneController.CKPT_FILE_TMPL`` and ``save_to_dir``
  (``tune/execution/tune_controller.py``), a JSON dict; key ``trial_data``: a list of
  ``[trial_json, run_metadata_json]`` pairs from ``Trial.get_json_state``
  (``tune/experiment/trial.py``). Of ``trial_json`` the key ``trial_id``. ``run_metadata_json``
  is ``_TrainingRunMetadata.get_json_state`` (``tune/trainable/metadata.py``), decoded with
  ``TuneFunctionDecoder(allow_cloudpickle=True)`` (``tune/utils/serialization.py``); of it the
  key ``checkpoint_manager``, a ``_CheckpointManager``
  (``train/_internal/checkpoint_manager.py``), and of that the attributes
  ``_checkpoint_results`` (a list) and ``_latest_checkpoint_result``, each a
  ``_TrainingResult`` (``train/_internal/session.py``) with ``.checkpoint.path`` (absolute,
  where the study was when Ray wrote it) and ``.metrics`` (our ``epoch``).
- ``search_gen_state-<session>.json`` (a cloudpickle despite its name):
  ``SearchGenerator.CKPT_FILE_TMPL`` / ``get_state`` (``tune/search/search_generator.py``),
  written by ``_atomic_save`` (``tune/utils/util.py``); key ``counter``, the trials created.
- ``searcher-state-<session>.pkl``: ``Searcher.CKPT_FILE_TMPL`` / ``save_to_dir``
  (``tune/search/searcher.py``); ``OptunaSearch.save`` (``tune/search/optuna/optuna_search.py``)
  pickles its ``__dict__``; key ``_ot_trials``, a dict from trial id to Optuna trial.
- ``tuner.pkl``: ``_TUNER_PKL`` (``tune/impl/tuner_internal.py``), only checked to be whole.
- Checkpoint folders: ``<experiment>/<trial_dir>/checkpoint_<index:06d>``
  (``StorageContext.trial_fs_path``, ``checkpoint_fs_path``, ``_make_checkpoint_dir_name`` in
  ``train/_internal/storage.py``). A moved study is resolved by those last two parts.

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
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sweeper.engine.trainable import RAY_EPOCH_FILE, STATE_FILE, newest_checkpoint
from sweeper.errors import SweeperError

TESTED_RAY = "2.60"  # the Ray minor version whose snapshot format this module reads
TUNER_FILE = "tuner.pkl"
GOOD_TUNER_FILE = "tuner.pkl.good"  # the whole copy repair keeps (Ray rewrites tuner.pkl)
TORN_SUFFIX = ".torn"
_STATE = "experiment_state-{}.json"
_GEN = "search_gen_state-{}.json"
_SEARCHER = "searcher-state-{}.pkl"
_CHECKPOINT_DIR = re.compile(r"checkpoint_\d+")
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
class RecordedCheckpoint:
    """One checkpoint as Ray's snapshot records it."""

    path: str  # absolute, where the study folder was when Ray wrote it
    epoch: int  # the ``epoch`` metric reported with it (0 without one)

    @property
    def relative(self) -> PurePosixPath:
        """``<trial_dir>/<checkpoint_dir>``: the part below the experiment folder."""
        return PurePosixPath(*PurePosixPath(self.path).parts[-2:])

    def under(self, tune_dir: Path) -> Path:
        """Where the checkpoint is in ``tune_dir`` (wherever the study folder is now)."""
        return tune_dir.joinpath(*self.relative.parts)


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
        checkpoints: each trial's checkpoints, as Ray recorded them.
    """

    session: str | None = None
    torn: tuple[str, ...] = ()
    tuner_whole: bool = False
    good_tuner_whole: bool = False
    trial_ids: tuple[str, ...] = ()
    counter: int | None = None
    searcher_trials: tuple[str, ...] | None = None
    checkpoints: dict[str, tuple[RecordedCheckpoint, ...]] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        """Whether Ray can restore from it (after :func:`repair`)."""
        return self.session is not None and (self.tuner_whole or self.good_tuner_whole)


@dataclass(frozen=True)
class _Session:
    trial_ids: tuple[str, ...]
    checkpoints: dict[str, tuple[RecordedCheckpoint, ...]]
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


def _snapshot_consistent(tune_dir: Path, session: str) -> bool:
    """Whether one session's files all read and agree (for benchmarks/chaos.py)."""
    try:
        _read_session(tune_dir, session)
    except _Torn:
        return False
    return True


def _read_session(tune_dir: Path, session: str) -> _Session:
    """One session's snapshot: its files all read whole and agree on the trials."""
    state_file = tune_dir / _STATE.format(session)
    trials = _read_trials(state_file, _read_json(state_file))
    ids = tuple(trials)
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
    return _Session(ids, trials, counter, searcher_trials)


def _read_trials(path: Path, state: Any) -> dict[str, tuple[RecordedCheckpoint, ...]]:
    """Each trial of an experiment state, with its recorded checkpoints."""
    trials: dict[str, tuple[RecordedCheckpoint, ...]] = {}
    for pair in _get(path, state, "trial_data", list):
        if not (
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(s, str) for s in pair)
        ):
            raise _format_error(path, f"a trial_data entry {_kind(pair)}, not [str, str]")
        trial_json, meta_json = pair
        trial = _decode(path, "a trial_data entry", trial_json, cloudpickle=False)
        trial_id = _get(path, trial, "trial_id", str)
        trials[trial_id] = _recorded_checkpoints(path, trial_id, meta_json)
    return trials


def _recorded_checkpoints(
    path: Path, trial_id: str, meta_json: str
) -> tuple[RecordedCheckpoint, ...]:
    meta = _decode(path, f"trial {trial_id}'s metadata", meta_json, cloudpickle=True)
    manager = _get(path, meta, "checkpoint_manager", object)
    results = _get(path, manager, "checkpoint_manager._checkpoint_results", list)
    latest = _get(path, manager, "checkpoint_manager._latest_checkpoint_result", object)
    found: dict[str, RecordedCheckpoint] = {}
    for result in [*results, latest]:
        if result is None or _get(path, result, "_TrainingResult.checkpoint", object) is None:
            continue
        folder = _get(path, result.checkpoint, "Checkpoint.path", str)
        metrics = _get(path, result, "_TrainingResult.metrics", dict)
        if not _CHECKPOINT_DIR.fullmatch(PurePosixPath(folder).name):
            raise _format_error(path, f"a checkpoint at '{folder}', not <trial>/checkpoint_<n>")
        found.setdefault(folder, RecordedCheckpoint(folder, int(metrics.get("epoch", 0))))
    return tuple(found.values())


def _read_json(path: Path) -> Any:
    """A JSON snapshot file; torn when missing or cut short (not JSON, not UTF-8)."""
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError as exc:
        raise _Torn(f"{path.name} is missing") from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise _Torn(f"{path.name}: {exc}") from exc


def _decode(path: Path, what: str, text: str, *, cloudpickle: bool) -> Any:
    """A JSON string inside a whole experiment state; with ``cloudpickle``, Ray's blobs too."""
    from ray.tune.utils.serialization import TuneFunctionDecoder

    try:  # the study's own snapshot, as trusted as Ray's restore of it
        if not cloudpickle:
            return json.loads(text)
        return json.loads(text, cls=TuneFunctionDecoder, allow_cloudpickle=True)
    except _LOAD_ERRORS as exc:
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


def repair(tune_dir: Path, snapshot: Snapshot) -> int:
    """Make ``tune_dir`` restorable as ``snapshot`` (read from it) found it.

    Sets the torn sessions aside, so Ray restores ``snapshot.session``; keeps a whole
    ``tuner.pkl`` (copied to ``tuner.pkl.good``, or restored from it); recreates the
    checkpoints the snapshot names that are gone. Returns how many checkpoints it recreated.

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
    recorded = [c for cs in snapshot.checkpoints.values() for c in cs]
    return sum(_recreate(c.under(tune_dir), c.epoch) for c in recorded)


def _recreate(folder: Path, epoch: int) -> bool:
    """Recreate a checkpoint Ray's snapshot names but Ray has already deleted.

    With ``num_to_keep`` Ray deletes a trial's older checkpoint as soon as it registers a
    new one, and the snapshot naming the new one follows a moment later: a kill in between
    leaves a snapshot whose checkpoint is gone, and Ray fails that trial on restore ("does
    not exist on storage anymore"). The folder is recreated from the trial's newest readable
    checkpoint, marked with the epoch Ray knew (``ray_epoch.json``) so the trial reports the
    newer epoch again before going on.
    """
    if folder.exists():
        return False
    _state, newest = newest_checkpoint(None, folder.parent)
    if newest is None:
        return False
    tmp = Path(tempfile.mkdtemp(prefix=".repair-", dir=folder.parent))
    shutil.copyfile(newest / STATE_FILE, tmp / STATE_FILE)
    (tmp / RAY_EPOCH_FILE).write_text(json.dumps({"epoch": epoch}))
    tmp.replace(folder)
    return True
