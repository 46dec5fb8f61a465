"""The snapshot reader and repair on what a real Ray Tune run writes (not hand-made files):
a tiny OptunaSearch experiment, read in place, moved to another folder, and rewritten in a
format Ray 2.60 does not write."""

from __future__ import annotations

import os
import pickle
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from sweeper.engine.snapshot import TESTED_RAY, read_snapshot, repair
from sweeper.engine.trainable import RAY_EPOCH_FILE, STATE_FILE
from sweeper.errors import SweeperError

pytestmark = pytest.mark.slow  # ray.init and one small Tuner run: ~20 s on 2 cores


def _trainable(config):
    """Three iterations, a checkpoint each."""
    from ray import tune

    for i in range(3):
        with tempfile.TemporaryDirectory() as d:
            Path(d, "marker").write_text(str(i))
            metrics = {"loss": config["x"] * (3 - i), "epoch": i + 1}
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


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
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )
    return tuner.fit()


@pytest.fixture(scope="module")
def experiment(ray_session, tmp_path_factory):
    """Ray's experiment folder after a finished run, and ``{trial_id: checkpoint path}``."""
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
    checkpoints = {r.metrics["trial_id"]: r.checkpoint.path for r in results}
    return storage / "tune", checkpoints


def test_the_reader_finds_what_ray_wrote(experiment):
    tune_dir, checkpoints = experiment
    before = sorted((p.relative_to(tune_dir), p.stat().st_mtime_ns) for p in tune_dir.rglob("*"))
    snap = read_snapshot(tune_dir)
    assert snap.usable and snap.torn == () and snap.tuner_whole and not snap.good_tuner_whole
    assert (tune_dir / f"experiment_state-{snap.session}.json").is_file()
    assert len(checkpoints) == 3
    assert sorted(snap.trial_ids) == sorted(checkpoints)
    assert sorted(snap.searcher_trials) == sorted(checkpoints)  # OptunaSearch's _ot_trials
    assert snap.counter == 3
    for trial_id, path in checkpoints.items():
        [ckpt] = snap.checkpoints[trial_id]  # num_to_keep=1: the last one
        assert ckpt.path == path and ckpt.epoch == 3
        assert ckpt.under(tune_dir) == Path(path) and Path(path, "marker").read_text() == "2"
    after = sorted((p.relative_to(tune_dir), p.stat().st_mtime_ns) for p in tune_dir.rglob("*"))
    assert after == before  # reading writes nothing


def test_a_moved_study_resolves_its_checkpoints_in_the_new_place(experiment, tmp_path):
    original, checkpoints = experiment
    moved = tmp_path / "elsewhere" / "tune"
    shutil.copytree(original, moved)
    away = original.with_name("tune.away")
    original.rename(away)  # the original is gone while the copy is read and repaired
    try:
        snap = read_snapshot(moved)
        assert sorted(snap.trial_ids) == sorted(checkpoints)
        for trial_id, path in checkpoints.items():
            [ckpt] = snap.checkpoints[trial_id]
            assert ckpt.path == path and not Path(path).exists()  # Ray's old absolute path
            assert ckpt.under(moved).parent.parent == moved
            assert (ckpt.under(moved) / "marker").read_text() == "2"
        # Ray deleted the named checkpoint after registering a newer one, then the kill
        trial_id = sorted(checkpoints)[0]
        [ckpt] = snap.checkpoints[trial_id]
        named = ckpt.under(moved)
        newer = named.with_name("checkpoint_000003")
        newer.mkdir()
        torch.save({"epoch": 4, "runs": [], "metrics": {"epoch": 4}}, newer / STATE_FILE)
        shutil.rmtree(named)
        assert repair(moved, snap) == 1
        assert torch.load(named / STATE_FILE)["epoch"] == 4
        assert (named / RAY_EPOCH_FILE).read_text() == '{"epoch": 3}'
        assert (moved / "tuner.pkl.good").read_bytes() == (moved / "tuner.pkl").read_bytes()
        assert not Path(ckpt.path).exists()  # nothing written where the study used to be
        # Ray itself, restoring the moved folder, names the same places
        from ray import tune

        restored = tune.Tuner.restore(str(moved), _trainable).get_results()
        assert {r.metrics["trial_id"]: r.checkpoint.path for r in restored} == {
            t: str(c.under(moved)) for t, [c] in snap.checkpoints.items()
        }
    finally:
        away.rename(original)


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
