"""Ray Tune's experiment snapshot on disk: is it whole, and can its checkpoints be found?

``sweeper resume`` restores only from a consistent snapshot (a driver killed mid-write can
leave a torn one) and recreates checkpoints the snapshot names but Ray already deleted.
These read Ray's files directly; they are checked by tests/test_resume.py.
"""

from __future__ import annotations

import os
from pathlib import Path


def usable_snapshot(tune_dir: Path) -> bool:
    """Whether Ray can restore ``tune_dir``: its Tuner plus one whole, consistent snapshot.

    Ray copies each snapshot (experiment state, searcher, search generator) file by file from
    its staging folder, writes ``tuner.pkl`` in place, and writes that before its first
    snapshot: a driver killed at the wrong moment leaves no snapshot, or a torn one. A torn
    newest snapshot is renamed ``*.torn`` so Ray falls back to the previous session's; a torn
    ``tuner.pkl`` is replaced by the copy kept at the last resume. False when nothing usable
    is left.
    """
    import shutil

    from ray import tune

    if not tune_dir.is_dir() or not tune.Tuner.can_restore(str(tune_dir)):
        return False
    # Ray rewrites tuner.pkl in place when a run (or a restore) starts: keep a whole copy.
    pkl, good = tune_dir / "tuner.pkl", tune_dir / "tuner.pkl.good"
    src, dst = (pkl, good) if _whole_pickle(pkl) else (good, pkl)
    if not _whole_pickle(src):
        return False
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    while True:
        states = sorted(tune_dir.glob("experiment_state-*.json"))
        if not states:
            return False
        session = states[-1].name.removeprefix("experiment_state-").removesuffix(".json")
        if _snapshot_consistent(tune_dir, session):
            return True
        for f in [*tune_dir.glob(f"*-{session}.json"), *tune_dir.glob(f"*-{session}.pkl")]:
            f.replace(f.with_name(f.name + ".torn"))


def _whole_pickle(path: Path) -> bool:
    """Whether ``path`` is a complete pickle (read opcode by opcode; nothing is built)."""
    import pickletools

    try:
        with open(path, "rb") as f:
            for _ in pickletools.genops(f):
                pass
    except Exception:  # noqa: BLE001 - missing, empty or cut short
        return False
    return True


def _snapshot_consistent(tune_dir: Path, session: str) -> bool:
    """One session's snapshot files all read, and agree on the trials they name."""
    import json
    import pickle

    try:
        state = json.loads((tune_dir / f"experiment_state-{session}.json").read_text())
        n_trials = len(state["trial_data"])
        trial_ids = set()
        for trial_json, _meta in state["trial_data"]:
            trial_ids.add(json.loads(trial_json)["trial_id"])
        gen_file = tune_dir / f"search_gen_state-{session}.json"
        searcher_file = tune_dir / f"searcher-state-{session}.pkl"
        if any(tune_dir.glob("search_gen_state-*.json")) or gen_file.exists():
            with open(gen_file, "rb") as f:
                gen = pickle.load(f)
            if int(gen.get("counter", n_trials)) != n_trials:
                return False
        if any(tune_dir.glob("searcher-state-*.pkl")) or searcher_file.exists():
            with open(searcher_file, "rb") as f:
                searcher = pickle.load(f)
            known = set((searcher.get("_ot_trials") or {}) if isinstance(searcher, dict) else ())
            if known and known != trial_ids:
                return False
    except Exception:  # noqa: BLE001 - missing, truncated or unreadable: not usable
        return False
    return True


def repair_checkpoints(tune_dir: Path) -> int:
    """Recreate checkpoints Ray's newest snapshot names but Ray has already deleted.

    With ``num_to_keep`` Ray deletes a trial's older checkpoint as soon as it registers a
    new one, and the snapshot naming the new one follows a moment later: a kill in between
    leaves a snapshot whose checkpoint is gone, and Ray fails that trial on restore ("does
    not exist on storage anymore"). The folder is recreated from the trial's newest readable
    checkpoint, marked with the epoch Ray knew (``ray_epoch.json``) so the trial reports the
    newer epoch again before going on. Returns how many were recreated.
    """
    import json
    import shutil
    import tempfile

    from ray.tune.utils.serialization import TuneFunctionDecoder

    from sweeper.engine.trainable import RAY_EPOCH_FILE, STATE_FILE, newest_checkpoint

    states = sorted(tune_dir.glob("experiment_state-*.json"))
    if not states:
        return 0
    repaired = 0
    for _trial_json, meta_json in json.loads(states[-1].read_text())["trial_data"]:
        try:  # the study's own snapshot, as trusted as Ray's restore of it
            meta = json.loads(meta_json, cls=TuneFunctionDecoder, allow_cloudpickle=True)
            results = list(meta["checkpoint_manager"]._checkpoint_results)
        except Exception:  # noqa: BLE001 - no checkpoint manager to check
            continue
        for result in results:
            folder = Path(result.checkpoint.path)
            if folder.exists():
                continue
            _state, newest = newest_checkpoint(None, folder.parent)
            if newest is None:
                continue
            tmp = Path(tempfile.mkdtemp(prefix=".repair-", dir=folder.parent))
            shutil.copyfile(newest / STATE_FILE, tmp / STATE_FILE)
            epoch = int((result.metrics or {}).get("epoch", 0))
            (tmp / RAY_EPOCH_FILE).write_text(json.dumps({"epoch": epoch}))
            tmp.replace(folder)
            repaired += 1
    return repaired
