"""SIGKILL a pruned study and a PBT study mid-run, resume: nothing lost or duplicated."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import yaml

from sweeper.store import Study
from tests.support import REPO, chaos
from tests.support.drivers import Driver, harness_env
from tests.test_pbt import pbt_sweep
from tests.test_schedulers_more import LEARN, xor_sweep

pytestmark = pytest.mark.slow


@pytest.fixture
def env():
    ray_tmp = Path(tempfile.mkdtemp(prefix="swr", dir="/tmp"))
    yield harness_env(ray_tmp)
    shutil.rmtree(ray_tmp, ignore_errors=True)


def kill_then_resume(tmp_path: Path, env, config: dict, epochs_before_kill: int) -> Study:
    """Run ``config``, SIGKILL the driver once the trials have ``epochs_before_kill`` epochs
    done in all, resume to the end; the study."""
    path = tmp_path / f"{config['name']}.yaml"
    path.write_text(yaml.safe_dump(config))
    out, log = tmp_path / "runs", tmp_path / "driver.log"
    study = out / config["name"]
    d = Driver(["run", str(path), "--out", str(out)], log, env, REPO)
    deadline = time.monotonic() + 240
    while chaos.progress(study) < epochs_before_kill and d.proc.poll() is None:
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    assert d.kill(), "the driver ended before the kill: " + log.read_text()[-2000:]
    r = Driver(["resume", config["name"], "--out", str(out)], log, env, REPO)
    assert r.wait(300) == 0, log.read_text()[-3000:]
    return Study.open(config["name"], out)


def assert_whole(study: Study, n: int) -> None:
    """n trials, each ended, each epoch of each trial in the history once, 1..its epochs;
    a PBT copy jumps to the epoch after the one it copied (the source trained those)."""
    df = study.trials()
    assert len(df) == n and set(df["state"]) <= {"COMPLETE", "PRUNED"}, df
    hist = study.history()
    for row in df.itertuples():
        epochs = list(hist[hist["trial_id"] == row.trial_id]["epoch"])
        assert epochs == sorted(set(epochs)) and epochs[-1] == row.epochs, (row, epochs)
        gaps = [b for a, b in zip(epochs, epochs[1:], strict=False) if b != a + 1]
        if gaps:  # only a copy skips epochs: each to the one after a copied epoch (the
            # row records the last copy, so every jump is to at most that one's next)
            assert isinstance(getattr(row, "pbt_source", None), str), (row, epochs)
            assert gaps[-1] <= int(row.pbt_epoch) + 1, (row, epochs)
        else:
            assert epochs == list(range(1, int(row.epochs) + 1)), (row.trial_id, epochs)


def test_a_pruned_study_killed_and_resumed_loses_and_duplicates_nothing(tmp_path, env):
    config = xor_sweep("pruned", LEARN, 6, pruner={"name": "threshold", "lower": 0.7,
                                                   "n_warmup_steps": 2})  # fmt: skip
    study = kill_then_resume(tmp_path, env, config, epochs_before_kill=8)
    assert_whole(study, len(LEARN))
    df = study.trials()
    assert (df[df["config/lr"] < 1e-3]["state"] == "PRUNED").all()
    assert (df[df["config/lr"] > 1e-3]["state"] == "COMPLETE").all()
    ot = optuna.load_study(study_name="pruned", storage=f"sqlite:///{study.path / 'optuna.db'}")
    assert sorted(t.state.name for t in ot.trials) == sorted(df["state"])


def test_a_pbt_study_killed_and_resumed_loses_and_duplicates_nothing(tmp_path, env):
    scheduler = {"name": "pbt", "perturbation_interval": 2, "quantile_fraction": 0.5,
                 "synch": True}  # fmt: skip
    config = pbt_sweep("pbtk", scheduler)
    config["resources"]["num_cpus"] = 2
    study = kill_then_resume(tmp_path, env, config, epochs_before_kill=10)
    assert_whole(study, 4)
    df = study.trials()
    assert set(df["state"]) == {"COMPLETE"} and (df["epochs"] == 6).all()
    assert df["pbt_source"].notna().any()
