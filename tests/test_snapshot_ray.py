"""The snapshot reader, repair and relocation on what a real Ray Tune run writes (not
hand-made files): a tiny OptunaSearch experiment, read in place, moved to another folder,
and rewritten in a format Ray 2.60 does not write."""

from __future__ import annotations

import os
import pickle
import shutil
import sys
from pathlib import Path

import pytest

from sweeper.engine.relocate import relocate_experiment
from sweeper.engine.snapshot import TESTED_RAY, read_snapshot, repair
from sweeper.errors import SweeperError

pytestmark = pytest.mark.slow  # ray.init and one small Tuner run: ~20 s on 2 cores


def _trainable(config):
    """Three epochs, reported without Ray checkpoints (as sweeper's trainable does)."""
    from ray import tune

    for i in range(3):
        tune.report({"loss": config["x"] * (3 - i), "epoch": i + 1})


def _run(storage: Path):
    import optuna
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    space = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    searcher = OptunaSearch(
        space=space, metric="loss", mode="min", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    tuner = tune.Tuner(
        _trainable,
        tune_config=tune.TuneConfig(
            metric="loss",
            mode="min",
            search_alg=searcher,
            num_samples=3,
            max_concurrent_trials=2,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name="tune",
            storage_path=str(storage),
            verbose=0,
        ),
    )
    return tuner.fit()


@pytest.fixture(scope="module")
def experiment(_shared_ray, tmp_path_factory):
    """Ray's experiment folder after a finished run, and its trial ids."""
    _shared_ray.ready()  # the ray_session fixture, for a module
    import optuna
    from ray import cloudpickle

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Ray's workers cannot import this test module: ship _trainable by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    storage = tmp_path_factory.mktemp("ray-storage")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNE_GLOBAL_CHECKPOINT_S", "1")
        results = _run(storage)
    assert not results.errors
    return storage / "tune", sorted(r.metrics["trial_id"] for r in results)


def test_the_reader_finds_what_ray_wrote(experiment):
    tune_dir, trial_ids = experiment
    before = sorted((p.relative_to(tune_dir), p.stat().st_mtime_ns) for p in tune_dir.rglob("*"))
    snap = read_snapshot(tune_dir)
    assert snap.usable and snap.torn == () and snap.tuner_whole and not snap.good_tuner_whole
    assert (tune_dir / f"experiment_state-{snap.session}.json").is_file()
    assert len(trial_ids) == 3 and sorted(snap.trial_ids) == trial_ids
    assert sorted(snap.searcher_trials) == trial_ids  # OptunaSearch's _ot_trials
    assert snap.counter == 3
    after = sorted((p.relative_to(tune_dir), p.stat().st_mtime_ns) for p in tune_dir.rglob("*"))
    assert after == before  # reading writes nothing


def test_a_moved_experiment_creates_new_trials_in_its_new_place(experiment, tmp_path):
    original, trial_ids = experiment
    moved = tmp_path / "elsewhere" / "tune"
    shutil.copytree(original, moved)
    snap = read_snapshot(moved)
    assert sorted(snap.trial_ids) == trial_ids
    repair(moved, snap)
    assert (moved / "tuner.pkl.good").read_bytes() == (moved / "tuner.pkl").read_bytes()
    # Ray's search generator still names the first place; new trials would go there
    [gen] = moved.glob("search_gen_state-*.json")
    with open(gen, "rb") as f:
        assert pickle.load(f)["experiment"].storage.storage_fs_path == str(original.parent)
    assert relocate_experiment(moved) == 1
    with open(gen, "rb") as f:
        storage = pickle.load(f)["experiment"].storage
    assert (storage.storage_fs_path, storage.experiment_dir_name) == (str(moved.parent), "tune")
    assert relocate_experiment(moved) == 0  # already in place
    assert read_snapshot(moved).trial_ids == snap.trial_ids  # still a whole snapshot


@pytest.mark.parametrize(
    ("prefix", "key"), [("searcher-state-", "_ot_trials"), ("search_gen_state-", "counter")]
)
def test_a_whole_file_in_another_format_is_one_loud_line(experiment, tmp_path, prefix, key):
    import ray
    from ray import cloudpickle

    tune_dir = tmp_path / "tune"
    shutil.copytree(experiment[0], tune_dir)
    [path] = tune_dir.glob(f"{prefix}*")
    with open(path, "rb") as f:
        state = pickle.load(f)
    del state[key]  # as if a newer Ray kept it under another name
    path.write_bytes(cloudpickle.dumps(state))
    with pytest.raises(SweeperError) as err:
        read_snapshot(tune_dir)
    assert str(err.value) == (
        f"{path}: Ray {ray.__version__} stores no '{key}' (sweeper reads Ray {TESTED_RAY}'s "
        f"snapshot format); pin ray=={TESTED_RAY}.* or upgrade sweeper"
    )
    assert os.linesep not in str(err.value)
