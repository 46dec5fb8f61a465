"""Chaos: kill the driver (SIGKILL, SIGINT, SIGTERM) at random moments; resume loses nothing.

Every driver runs as ``python -m sweeper.cli`` in its own session with a private Ray temp
dir; after a SIGKILL the Ray processes of that session (and only those) are killed. The
harness is ``tests/support/chaos.py`` (``benchmarks/chaos.py`` runs its long form: 10
kills). The kill count here is ``$SWEEPER_CHAOS_KILLS`` (default 2, the short form CI runs).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sweeper.states import TrialState
from sweeper.store import Study
from tests.support import REPO, chaos
from tests.support.drivers import Driver, harness_env

pytestmark = pytest.mark.slow

EPOCHS = 4


@pytest.fixture
def env(data_root):
    """The drivers' environment, with a Ray temp dir of their own (removed afterwards)."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="swt", dir="/tmp"))
    yield harness_env(ray_tmp)
    shutil.rmtree(ray_tmp, ignore_errors=True)


def cli(env, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """A short sweeper command (status, a refused run/resume) to its end."""
    return subprocess.run(
        [sys.executable, "-m", "sweeper.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_until(cond, timeout: float, what: str, driver=None) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if driver is not None and driver.proc.poll() is not None:
            raise AssertionError(f"the driver exited ({driver.proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def mid_trial(study: Path) -> bool:
    """Some trial is running with at least one epoch done and at least two to go."""
    try:
        rows = Study(study).trials().to_dict(orient="records")
    except Exception:  # noqa: BLE001 - not written yet
        return False
    return any(r["state"] == TrialState.RUNNING and 1 <= r["epochs"] <= EPOCHS - 2 for r in rows)


def assert_study_complete(study: Path, planned: list[tuple], epochs: int = EPOCHS) -> None:
    """Every planned config once, COMPLETE, its epochs once each in the history; optuna.db too."""
    snap = chaos.read_study(study)
    assert snap.state == "finished"
    assert sorted(snap.configs()) == sorted(planned)  # each exactly once
    assert {r["state"] for r in snap.rows} == {TrialState.COMPLETE}
    assert all(int(r["epochs"]) == epochs for r in snap.rows)
    assert all(n == 1 for n in snap.history_pairs.values()), "an epoch recorded twice"
    for r in snap.rows:
        got = sorted({e for (t, e, _k) in snap.history_pairs if t == r["trial_id"]})
        assert got == list(range(1, epochs + 1)), (r["trial_id"], got)
    assert sorted(snap.optuna_ids) == sorted(r["trial_id"] for r in snap.rows)
    for r in snap.rows:  # TensorBoard's reader: each epoch once, however often it was killed
        steps = tensorboard_steps(study / "tensorboard" / str(r["trial_id"]))
        assert steps == list(range(1, epochs + 1)), (r["trial_id"], steps)


def tensorboard_steps(folder: Path) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return [e.step for e in acc.Scalars("val_acc")]


def test_sigkill_at_random_moments_then_resume_loses_and_duplicates_nothing(tmp_path, data_root):
    kills = int(os.environ.get("SWEEPER_CHAOS_KILLS", "2"))
    rng = random.Random(4)
    schedule = [
        chaos.Kill(rng.uniform(0.2, 2.5)),  # start-up: imports, study creation, ray.init
        chaos.Kill(rng.uniform(0.0, 0.2), epochs=rng.randint(2, 5), mid_trial=EPOCHS - 2),
    ]
    while len(schedule) < kills:
        schedule.append(chaos.Kill(rng.uniform(0.0, 0.3), epochs=rng.randint(1, 6)))
    outcome = chaos.run_chaos(
        tmp_path,
        schedule=schedule[:kills],
        widths=(16, 32),
        epochs=EPOCHS,
        train_size=10000,
        batch_size=16,
        final_timeout=300,
    )
    print(chaos.table(outcome))
    assert sum(c.killed for c in outcome.cycles) == kills
    assert outcome.final_exit == 0 and outcome.final_state == "finished"
    assert outcome.lost == 0 and outcome.duplicated == 0 and outcome.not_complete == 0
    assert all(c.lost == 0 and c.duplicated_at_kill == 0 for c in outcome.cycles)
    assert_study_complete(tmp_path / "runs" / "chaos", outcome.planned)
    # The mid-trial kill left trials with epochs done: each continued from its checkpoint.
    interrupted = sum(len(c.running_with_epochs) for c in outcome.cycles)
    assert interrupted >= 1
    dropped = sum(c.dropped for c in outcome.cycles)  # begun after Ray's snapshot: rare
    assert sum(c.resumed for c in outcome.cycles) + dropped == interrupted
    assert sum(c.resumed for c in outcome.cycles) >= 1
    assert sum(c.restarted for c in outcome.cycles) == 0
    assert sum(c.redone_epochs for c in outcome.cycles) == 0


def start(tmp_path: Path, env, widths=(16,)) -> tuple[Driver, Path, list[tuple]]:
    sweep, planned = chaos.write_sweep(
        tmp_path, widths=widths, epochs=EPOCHS, train_size=10000, batch_size=16
    )
    out = tmp_path / "runs"
    d = Driver(["run", str(sweep), "--out", str(out)], tmp_path / "driver.log", env, REPO)
    return d, out / "chaos", planned


def resume(tmp_path: Path, env) -> Driver:
    out = tmp_path / "runs"
    return Driver(["resume", "chaos", "--out", str(out)], tmp_path / "driver.log", env, REPO)


def test_second_driver_is_refused_and_a_killed_drivers_lock_is_taken_over(tmp_path, env):
    d, study, _planned = start(tmp_path, env)
    try:
        wait_until(lambda: (study / "lock").exists() and Study(study).holder(), 60, "lock", d)
        for args in (
            ["resume", "chaos", "--out", str(study.parent)],
            ["run", str(tmp_path / "chaos.yaml"), "--out", str(study.parent)],
            ["run", str(tmp_path / "chaos.yaml"), "--out", str(study.parent), "--force-new"],
        ):
            res = cli(env, *args)
            assert res.returncode == 2, (args, res.stderr)
            assert f"pid {d.pid}" in res.stderr, res.stderr
            assert len(res.stderr.strip().splitlines()) == 1  # one line
        wait_until(lambda: mid_trial(study), 120, "a trial mid-way", d)
        os.kill(d.pid, signal.SIGKILL)  # the driver only: its Ray processes live on
        d.proc.wait()
        # The lock died with its driver; study.json still says running.
        assert Study(study).holder() is None
        assert Study(study).meta()["state"] == "running"
        status = cli(env, "status", "chaos", "--out", str(study.parent))
        assert status.returncode == 0
        assert "interrupted: its driver is gone" in status.stdout
        assert "sweeper resume" in status.stdout
        # the rows still say RUNNING; status says what happened: nothing runs them
        assert TrialState.RUNNING in set(Study(study).trials()["state"])
        shown = json.loads(cli(env, "status", "chaos", "--out", str(study.parent), "--json").stdout)
        states = {t["state"] for t in shown["trials"]}
        assert TrialState.RUNNING not in states and TrialState.INTERRUPTED in states, states
        with Study(study).lock():  # taken over at once, orphans or not
            pass
    finally:
        d.kill()  # and the orphans of its session


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_one_sigint_or_sigterm_stops_cleanly_and_resume_completes(tmp_path, env, sig):
    d, study, planned = start(tmp_path, env)
    try:
        wait_until(lambda: mid_trial(study), 120, "a trial mid-way", d)
        d.signal(sig)
        code = d.wait(120)
    finally:
        d.kill()
    assert code == 130
    meta = Study(study).meta()
    assert meta["state"] == "interrupted" and meta["pid"] is None
    assert not (study / "lock").exists()
    status = cli(env, "status", "chaos", "--out", str(study.parent))
    assert status.returncode == 0 and "sweeper resume" in status.stdout
    assert "interrupted" in status.stdout
    status_json = json.loads(
        cli(env, "status", "chaos", "--out", str(study.parent), "--json").stdout
    )
    assert status_json["state"] == "interrupted"
    # the trial that was mid-way is INTERRUPTED in the table itself, none RUNNING
    recorded = set(Study(study).trials()["state"])
    assert TrialState.RUNNING not in recorded and TrialState.INTERRUPTED in recorded, recorded
    assert {t["state"] for t in status_json["trials"]} == recorded
    done_before = {
        t["trial_id"] for t in status_json["trials"] if t["state"] == TrialState.COMPLETE
    }
    if sig == signal.SIGTERM:
        return  # the same stop as SIGINT's; resuming it is the SIGINT case's job

    r = resume(tmp_path, env)
    assert r.wait(300) == 0
    assert_study_complete(study, planned)
    after = chaos.read_study(study)
    assert done_before <= after.complete()  # finished trials were kept, not rerun
    starts = chaos.starts(study)
    assert any(s[-1]["epoch"] > 0 for s in starts.values() if len(s) > 1)  # from a checkpoint
    assert all(s[-1]["epoch"] > 0 for s in starts.values() if len(s) > 1)
    # resumed on the same machine (a new Ray, new node ids): no node column
    final = json.loads(cli(env, "status", "chaos", "--out", str(study.parent), "--json").stdout)
    assert all("node" not in t for t in final["trials"]), final["trials"][0]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_start_up_marks_the_study_interrupted(tmp_path, env, sig):
    d, study, _planned = start(tmp_path, env)
    try:
        wait_until(lambda: (study / "study.json").exists(), 60, "the study", d)
        d.signal(sig)
        code = d.wait(120)
    finally:
        d.kill()
    assert code == 130
    assert Study(study).meta()["state"] == "interrupted"
    assert not (study / "lock").exists()
