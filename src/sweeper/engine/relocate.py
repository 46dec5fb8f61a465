"""A study folder that moved: point the experiment Ray will create new trials in at it.

``Tuner.restore(path)`` moves the restored trials to ``path``, but Ray 2.60's search
generator pickles the ``Experiment`` it creates new trials from, with the storage path of
the first run (``search_gen_state-<session>.json``, a pickle: ``{"experiment":
Experiment}``, whose ``storage`` is a ``StorageContext`` with ``storage_fs_path`` and
``experiment_dir_name``). After a move, the trials suggested after the restore would train
and checkpoint at the old place. This rewrites those two fields, as Ray's own
``TuneController._restore_trials`` does for restored trials. Private Ray state: a snapshot
whose structure differs is a loud one-line error naming the Ray version.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from sweeper.engine.snapshot import TESTED_RAY
from sweeper.errors import SweeperError


def relocate_experiment(tune_dir: Path) -> int:
    """Make every session's recorded experiment live at ``tune_dir``; returns files rewritten."""
    tune_dir = Path(tune_dir).resolve()
    rewritten = 0
    for path in sorted(tune_dir.glob("search_gen_state-*.json")):
        try:
            with open(path, "rb") as f:
                state = pickle.load(f)
        except (OSError, EOFError, pickle.UnpicklingError):
            continue  # torn: the snapshot reader sets it aside
        storage = _storage_of(path, state)
        if storage.storage_fs_path == str(tune_dir.parent) and (
            storage.experiment_dir_name == tune_dir.name
        ):
            continue
        storage.storage_fs_path = str(tune_dir.parent)
        storage.experiment_dir_name = tune_dir.name
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            pickle.dump(state, f)
        os.replace(tmp, path)
        rewritten += 1
    return rewritten


def _storage_of(path: Path, state: object) -> Any:
    """The ``StorageContext`` of the pickled experiment, or a loud error."""
    experiment: Any = state.get("experiment") if isinstance(state, dict) else None
    storage = getattr(experiment, "storage", None)
    if storage is None or not all(
        hasattr(storage, a) for a in ("storage_fs_path", "experiment_dir_name")
    ):
        import ray

        raise SweeperError(
            f"{path}: Ray {ray.__version__} stores no experiment storage path here "
            f"(sweeper reads Ray {TESTED_RAY}'s snapshot format); install ray=={TESTED_RAY}.*"
        )
    if experiment.spec.get("storage") not in (None, storage):
        experiment.spec["storage"] = storage
    return storage
