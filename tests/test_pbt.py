"""PBT and PB2 on xor with real Ray Tune and Optuna: a trial that cannot learn copies a top
trial's checkpoint, continues from it with its new config, and its lineage is recorded."""

from __future__ import annotations

import pytest

from sweeper.engine.population import bounds, mutations
from sweeper.spec import spec_from_dict
from tests.test_schedulers_more import BAD, GOOD, run_sweep, xor_sweep

EPOCHS = 6


def test_mutations_come_from_the_spec_parameters():
    from ray import tune

    spec = spec_from_dict(
        {
            "name": "m",
            "method": "random",
            "parameters": {
                "lr": {"min": 1e-4, "max": 1e-1, "distribution": "log_uniform_values"},
                "width": {"values": [8, 16]},
                "depth": {"min": 1, "max": 3},
                "seed": {"value": 3},
            },
        },
        "m.yaml",
    )
    found = mutations(spec)
    assert set(found) == {"lr", "width", "depth"} and found["width"] == [8, 16]
    assert isinstance(found["lr"], tune.search.sample.Float) and found["lr"].lower == 1e-4
    assert isinstance(found["depth"], tune.search.sample.Integer) and found["depth"].upper == 4
    assert bounds(spec) == {"lr": [1e-4, 1e-1], "depth": [1.0, 3.0]}


class _Controller:
    """The parts of Ray's TuneController that PBT's result and choice rules read."""

    search_alg = None

    def __init__(self, trials: list) -> None:
        self.trials = trials

    def get_trials(self) -> list:
        return list(self.trials)

    def get_live_trials(self) -> list:
        return [t for t in self.trials if not t.is_finished()]

    def _schedule_trial_save(self, trial, result=None) -> None:
        return None  # no checkpoint: the bottom trial's copy is skipped


def _two_trials(fixed: bool) -> tuple:
    """Synchronous PBT (sweeper's or Ray's own) over two stub trials, every 2 epochs."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import PopulationBasedTraining

    from sweeper.engine.pbt_sync import SyncedPBT

    cls = SyncedPBT if fixed else PopulationBasedTraining
    pbt = cls(time_attr="epoch", metric="val_acc", mode="max", perturbation_interval=2,
              quantile_fraction=0.5, synch=True, hyperparam_mutations={"lr": [0.1, 0.01]})  # fmt: skip
    a, b = (Trial("xor", config={"lr": 0.1}, stub=True) for _ in range(2))
    controller = _Controller([a, b])
    for t in (a, b):
        pbt.on_trial_add(controller, t)
    return pbt, a, b, controller


@pytest.mark.parametrize("fixed", [False, True], ids=["ray", "sweeper"])
def test_a_resumed_synchronous_pbt_runs_on_when_every_trial_restarts_at_one_epoch(fixed):
    """After a resume Ray rebuilds PBT fresh (next sync at epoch 2) while both trials come
    back at epoch 5: Ray's own PBT then has no trial to run, and Ray Tune waits forever."""
    from ray.tune.experiment import Trial

    pbt, a, b, controller = _two_trials(fixed)
    a.set_status(Trial.RUNNING)
    assert pbt.on_trial_result(controller, a, {"epoch": 5, "val_acc": 0.8}) == "PAUSE"
    a.set_status(Trial.PAUSED)
    b.set_status(Trial.RUNNING)
    assert pbt.on_trial_result(controller, b, {"epoch": 5, "val_acc": 0.7}) == "PAUSE"
    b.set_status(Trial.PAUSED)
    chosen = pbt.choose_trial_to_run(controller)
    if fixed:
        assert chosen in (a, b) and pbt._next_perturbation_sync == 7
    else:  # Ray 2.60's bug (ray-project/ray#48616): when it is fixed, drop SyncedPBT
        assert chosen is None and pbt._next_perturbation_sync == 5


@pytest.mark.parametrize("fixed", [False, True], ids=["ray", "sweeper"])
def test_a_restarted_trials_restored_result_does_not_pause_it_again(fixed):
    """A restarted trial reports its checkpoint's epoch again first: Ray's synchronous PBT
    paused it at once and chose it to run again, the same epoch each time, forever."""
    from ray.tune.experiment import Trial

    pbt, a, b, controller = _two_trials(fixed)
    pbt._next_perturbation_sync = 6  # as after a sync at epoch 4 (b waits at 4)
    pbt._trial_state[b].last_train_time = 4
    a.set_status(Trial.RUNNING)
    assert pbt.on_trial_result(controller, a, {"epoch": 5, "val_acc": 0.8}) == "PAUSE"
    a.set_status(Trial.PAUSED)
    assert pbt.choose_trial_to_run(controller) in (a, b)  # 5 < 6: a runs again
    a.set_status(Trial.RUNNING)  # restored from its epoch-5 checkpoint, epoch 5 again
    again = pbt.on_trial_result(controller, a, {"epoch": 5, "val_acc": 0.8})
    assert again == ("CONTINUE" if fixed else "PAUSE")  # Ray: paused, chosen, forever


@pytest.mark.parametrize("fixed", [False, True], ids=["ray", "sweeper"])
def test_a_trial_that_fails_before_the_sync_does_not_hold_the_others_there(fixed):
    """a and b wait paused at the sync (epoch 2); c, the last to come, fails at epoch 1.
    Ray's synchronous PBT syncs only on the last trial's result: it then ran nothing,
    forever (a hosted study on CI). Now the sync happens and a paused trial runs."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import PopulationBasedTraining

    from sweeper.engine.pbt_sync import SyncedPBT

    cls = SyncedPBT if fixed else PopulationBasedTraining
    pbt = cls(time_attr="epoch", metric="val_acc", mode="max", perturbation_interval=2,
              quantile_fraction=0.5, synch=True, hyperparam_mutations={"lr": [0.1, 0.01]},
              log_config=False)  # fmt: skip
    a, b, c = (Trial("xor", config={"lr": 0.1}, stub=True) for _ in range(3))
    controller = _Controller([a, b, c])
    for t in (a, b, c):
        pbt.on_trial_add(controller, t)
        t.set_status(Trial.RUNNING)
    assert pbt.on_trial_result(controller, c, {"epoch": 1, "val_acc": 0.6}) == "CONTINUE"
    for t, acc in ((a, 0.9), (b, 0.5)):
        assert pbt.on_trial_result(controller, t, {"epoch": 2, "val_acc": acc}) == "PAUSE"
        t.set_status(Trial.PAUSED)
    c.set_status(Trial.ERROR)
    chosen = pbt.choose_trial_to_run(controller)
    if not fixed:  # Ray 2.60: nothing to run, the study never ends
        assert chosen is None and pbt._next_perturbation_sync == 2
        return
    assert chosen in (a, b) and pbt._next_perturbation_sync == 4
    assert pbt._trial_state[b].last_perturbation_time == 2  # synced (a's copy: no checkpoint)
    assert pbt.choose_trial_to_run(controller) in (a, b)  # and it stays chosen


def test_a_running_trial_still_syncs_the_others_itself():
    """While one trial still runs toward the sync, the paused ones wait for its result."""
    from ray.tune.experiment import Trial

    pbt, a, b, controller = _two_trials(fixed=True)
    a.set_status(Trial.RUNNING)
    assert pbt.on_trial_result(controller, a, {"epoch": 2, "val_acc": 0.8}) == "PAUSE"
    a.set_status(Trial.PAUSED)
    b.set_status(Trial.RUNNING)
    pbt._trial_state[b].last_train_time = 1
    assert pbt.choose_trial_to_run(controller) is None and pbt._next_perturbation_sync == 2


def _ray_controller(trials: list) -> object:
    """Ray's own TuneController pause and stop code over stub trials, each running on an
    actor that is kept for reuse (sweeper sets ``reuse_actors``); no Ray is started."""
    from collections import defaultdict

    from ray.tune.execution.tune_controller import TuneController

    c = object.__new__(TuneController)
    c._trials, c._live_trials, c._search_alg = list(trials), set(trials), None
    c._cached_trial_decisions, c._trials_to_cache = {}, set()
    c._pending_trials, c._pending_trials_list = set(), []
    c._running_trials, c._paused_trials = set(trials), set()
    c._stopped_trials, c._failed_trials = set(), set()
    c._resources_to_pending_trials = defaultdict(set)
    c._trial_to_actor = {t: object() for t in trials}
    c._actor_manager = type("Actors", (), {"clear_actor_task_futures": lambda s, **k: None})()
    c._maybe_cache_trial_actor = lambda t: c._trial_to_actor.pop(t) is not None
    c._schedule_trial_save = lambda t, result=None: "the top trial's checkpoint"
    for t in trials:
        t.set_status("RUNNING")
    return c


@pytest.mark.parametrize("fixed", [False, True], ids=["ray", "sweeper"])
def test_a_trial_exploited_while_saving_is_not_stopped_after_its_copy(fixed):
    """b reaches the sync first and is paused: Ray saves it on the way (b still RUNNING).
    a's result then starts the sync before that save is back, and b copies a. Ray's stop
    cached a STOP for the save it discarded: the copy's next save then ended b."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import PopulationBasedTraining

    from sweeper.engine.pbt_sync import SyncedPBT

    cls = SyncedPBT if fixed else PopulationBasedTraining
    pbt = cls(time_attr="epoch", metric="val_acc", mode="max", perturbation_interval=2,
              quantile_fraction=0.5, synch=True, hyperparam_mutations={"lr": [0.1, 0.01]},
              log_config=False)  # fmt: skip
    a, b = (Trial("xor", config={"lr": 0.1}, stub=True) for _ in range(2))
    controller = _ray_controller([a, b])
    for t in (a, b):
        pbt.on_trial_add(controller, t)
    assert pbt.on_trial_result(controller, b, {"epoch": 2, "val_acc": 0.5}) == "PAUSE"
    controller._cached_trial_decisions[b.trial_id] = "PAUSE"  # Ray's pause_trial, saving
    b.temporary_state.saving_to = "b's save in flight"
    pbt.on_trial_result(controller, a, {"epoch": 2, "val_acc": 0.9})  # the sync: b copies a
    assert b.status == Trial.PAUSED and b.checkpoint == "the top trial's checkpoint"
    stale = controller._cached_trial_decisions.get(b.trial_id)
    assert stale == (None if fixed else "STOP")  # Ray 2.60: STOP at the copy's next save


def test_the_schedulers_sweeper_builds_are_the_fixed_ones():
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.schedulers.pb2 import PB2

    from sweeper.engine.population import build_population

    lr = {"lr": {"min": 0.01, "max": 0.5}}
    spec = spec_from_dict({**pbt_sweep("p", {"name": "pbt"}, lr), "method": "random"}, "p.yaml")
    pbt = build_population("pbt", spec, {"synch": True})
    assert type(pbt).__name__ == "SyncedPBT" and isinstance(pbt, PopulationBasedTraining)
    pb2 = build_population("pb2", spec, {})
    assert type(pb2).__name__ == "SyncedPB2" and isinstance(pb2, PB2)


def pbt_sweep(name: str, scheduler: dict, parameters: dict | None = None) -> dict:
    config = xor_sweep(name, [GOOD, GOOD * 0.8, BAD, BAD * 2], EPOCHS, scheduler=scheduler)
    if parameters is not None:
        config["parameters"] = parameters
    config["resources"] = {"cpus": 0.5, "max_concurrent": 4}
    return config


def check_lineage(study, df, explore_keeps: bool) -> None:
    """Some trial copied another at an epoch and then continued from the copy's state.

    That it continued from the source's state shows in its start (``starts.jsonl`` names
    the source's checkpoint of that epoch) and in its next epoch: where the copy kept the
    source's lr, that epoch is the source's own next one (the same state, the same step);
    and where PBT's explored values cannot undo learning on xor (``explore_keeps``: lrs that
    learn, or barely move), it is at least as good as the source's at the copy. PB2
    explores lr up to 0.05, which from a half-trained xor state loses up to 0.2 of val_acc
    in one epoch (the source's epoch-4 state, 0.722: 0.536 at lr 0.05), so PB2's copies
    are not held to that.
    """
    import json

    assert set(df["state"]) == {"COMPLETE"} and (df["epochs"] == EPOCHS).all()
    copies = df[df["pbt_source"].notna() & (df["pbt_source"] != "")]
    assert len(copies) >= 1, df
    hist = study.history()
    ids = set(df["trial_id"])
    for row in copies.itertuples():
        assert row.pbt_source in ids and row.pbt_source != row.trial_id
        at = int(row.pbt_epoch)
        assert 1 <= at < EPOCHS
        own = hist[hist["trial_id"] == row.trial_id].sort_values("epoch")
        assert list(own["epoch"]) == list(range(1, EPOCHS + 1))  # each epoch once
        logs = list(study.tune_dir.glob(f"*{row.trial_id}*/starts.jsonl"))
        starts = [json.loads(line) for log in logs for line in log.read_text().splitlines()]
        copied = [s for s in starts if s["epoch"] == at and "copied_from" in s]
        assert copied and all(row.pbt_source in s["copied_from"] for s in copied), starts
        src = hist[hist["trial_id"] == row.pbt_source].set_index("epoch")
        after = own.set_index("epoch").loc[at + 1]
        if after["lr"] == pytest.approx(src.loc[at + 1, "lr"], rel=1e-3):
            assert after["val_acc"] == pytest.approx(src.loc[at + 1, "val_acc"], abs=0.02)
        if explore_keeps:  # the copy's next epoch starts from the source's state
            assert after["val_acc"] >= float(src.loc[at, "val_acc"]) - 0.1, (row, own, src)


@pytest.mark.slow
def test_pbt_copies_a_top_trial_and_records_its_lineage(tmp_path, ray_session):
    scheduler = {"name": "pbt", "perturbation_interval": 2, "quantile_fraction": 0.5,
                 "synch": True}  # fmt: skip
    study, df = run_sweep(tmp_path, pbt_sweep("pbt", scheduler))
    check_lineage(study, df, explore_keeps=True)  # lrs 0.05, 0.04 learn; 1e-7, 2e-7 keep
    hist = study.history()
    for row in df[df["pbt_source"].notna()].itertuples():
        changes = row.pbt_changes if isinstance(row.pbt_changes, str) else ""
        if not changes.startswith("lr: "):
            continue  # PBT may keep a categorical's value: nothing changed
        new_lr = float(changes.split("-> ")[-1])
        own = hist[(hist["trial_id"] == row.trial_id) & (hist["epoch"] == row.pbt_epoch + 1)]
        assert own["lr"].iloc[0] == pytest.approx(new_lr)  # the optimizer took the new lr


@pytest.mark.slow
def test_pb2_copies_a_top_trial_and_records_its_lineage(tmp_path, ray_session):
    pytest.importorskip("GPy")
    pytest.importorskip("sklearn")
    params = {"lr": {"min": 1e-7, "max": 0.05, "distribution": "log_uniform_values"}}
    scheduler = {"name": "pb2", "perturbation_interval": 2, "quantile_fraction": 0.5,
                 "synch": True}  # fmt: skip
    config = pbt_sweep("pb2", scheduler, params)
    config["method"] = "random"
    config["run_cap"] = 4
    config["train"]["seed"] = 1
    study, df = run_sweep(tmp_path, config)
    check_lineage(study, df, explore_keeps=False)


@pytest.mark.slow
def test_pbt_copies_between_hosted_trials(tmp_path, ray_session):
    """The same PBT study on a host (``resources.executor: host``): each epoch's state goes
    back to Ray as a checkpoint the host writes, an exploit continues from the source's."""
    scheduler = {"name": "pbt", "perturbation_interval": 2, "quantile_fraction": 0.5,
                 "synch": True}  # fmt: skip
    config = pbt_sweep("pbt_hosted", scheduler)
    config["resources"]["executor"] = "host"
    study, df = run_sweep(tmp_path, config)
    assert study.meta()["placement"]["executor"] == "host"
    check_lineage(study, df, explore_keeps=True)
    leftovers = list(study.tune_dir.glob("*/.report-*"))
    assert leftovers == []  # each reported checkpoint folder was removed
