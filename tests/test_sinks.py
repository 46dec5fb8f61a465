"""The sink contract: every registered sink through the same events, no Ray.

Two driver sessions on one study folder. The first: trial ``a`` completes (3 epochs), ``b``
is pruned after one, ``c`` fails before its first result, ``d`` is running when the run
stops (interrupted), ``e`` completes after Ray's last snapshot. The second is a resume:
Ray restored a-d (``e`` is dropped: its config runs again as ``f``), ``d`` trains epoch 2
again and completes. Each sink's own output must then say exactly that.
"""

from __future__ import annotations

import pytest

from sweeper.errors import SweeperError
from sweeper.sinks import SINKS, BaseSink, Sink, SinkRegistry
from sweeper.spec import spec_from_dict
from sweeper.store import Study
from tests.support import sweep_config
from tests.support.sinks import Player

EPOCHS = 3
ENDED = {"a": "COMPLETE", "b": "PRUNED", "c": "FAIL", "d": "COMPLETE", "f": "COMPLETE"}


def make_study(path, **overrides) -> Study:
    config = sweep_config("sinks", epochs=EPOCHS, **overrides)
    return Study.create(path, spec_from_dict(config, "sinks.yaml"), "sinks.yaml", n_trials=5)


def acc(trial: str, epoch: int) -> float:
    return round(0.1 * epoch + 0.01 * "abcdef".index(trial), 4)


def first_session(player: Player) -> None:
    player.start()
    for trial, width in zip("abcde", (16, 32, 16, 32, 16), strict=True):
        player.started(trial, {"width": width, "optimizer": "adam"})
    for epoch in range(1, EPOCHS + 1):
        player.result("a", epoch=epoch, val_acc=acc("a", epoch), train_loss=1.0 / epoch)
        player.result("e", epoch=epoch, val_acc=acc("e", epoch), train_loss=1.0 / epoch)
    player.result("a", test_acc=0.25)  # the closing result: no epoch
    player.ended("a")
    player.result("b", epoch=1, val_acc=acc("b", 1), train_loss=1.0)
    player.ended("b")  # stopped before its 3 epochs: PRUNED
    player.ended("c", error="ValueError: width=16 is not allowed")
    player.result("d", epoch=1, val_acc=acc("d", 1), train_loss=1.0)
    player.result("d", epoch=2, val_acc=0.0, train_loss=9.0)  # lost: Ray's checkpoint is 1
    player.ended("e")
    player.close()  # Ctrl-C: d is interrupted


def second_session(player: Player) -> None:
    start = player.start(known=list("abcd"))
    assert start.resumed and start.dropped == {"e"}
    assert start.history_epochs["d"] == 2
    player.started("d", {"width": 32, "optimizer": "adam"})
    player.started("f", {"width": 16, "optimizer": "adam"})
    for epoch in (2, 3):
        player.result("d", epoch=epoch, val_acc=acc("d", epoch), train_loss=1.0 / epoch)
    player.ended("d")
    for epoch in (1, 2, 3):
        player.result("f", epoch=epoch, val_acc=acc("f", epoch), train_loss=1.0 / epoch)
    player.ended("f")
    player.close()


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    """The study after both sessions, with every registered sink, and each session's
    warnings and progress text."""
    study = make_study(tmp_path_factory.mktemp("sinks") / "sinks")
    first = Player(study, 5)
    assert [s.name for s in first.sinks.sinks] == SINKS.names()  # every sink is on
    first_session(first)
    second = Player(study, 5)
    second_session(second)
    return study, first, second


# -- each sink's own output -----------------------------------------------------------------
def check_table(study, first, second):
    trials = study.trials()
    assert dict(trials[["trial_id", "state"]].values) == ENDED
    c = trials.set_index("trial_id").loc["c"]
    assert c["error"] == "ValueError: width=16 is not allowed" and c["epochs"] == 0
    assert trials.set_index("trial_id").loc["a", "test_acc"] == 0.25
    hist = study.history()
    assert not study.history_file.long().duplicated(["trial_id", "epoch", "key"]).any()
    got = {(t, int(e)): round(v, 4) for t, e, v in hist[["trial_id", "epoch", "val_acc"]].values}
    ran = (("a", 3), ("b", 1), ("d", 3), ("f", 3))
    want = {(t, e): acc(t, e) for t, n in ran for e in range(1, n + 1)}
    assert got == want  # e's epochs voided, d's lost epoch 2 replaced


def check_mirror(study, first, second):
    import optuna

    trials = optuna.load_study(study_name="sinks", storage=study.optuna_url).get_trials()
    states = {t.user_attrs["trial_id"]: t.state.name for t in trials}
    assert states == ENDED  # e was mirrored in the first session, dropped on resume
    a = next(t for t in trials if t.user_attrs["trial_id"] == "a")
    assert a.value == acc("a", 3) and a.params == {"width": 16, "optimizer": "adam"}
    assert a.intermediate_values == {e: acc("a", e) for e in (1, 2, 3)}


def check_wandb(study, first, second):
    from sweeper.sinks.wandb import run_id
    from sweeper.sinks.wandb.offline import offline_runs

    runs = offline_runs(study.path / "wandb")
    assert set(runs) == {run_id("sinks", t) for t in "abcdf"}  # e's run deleted on resume
    a, b, c, d = (runs[run_id("sinks", t)] for t in "abcd")
    assert a.steps() == [1, 2, 3] and a.summary["state"] == "COMPLETE" and a.exit_code == 0
    assert a.summary["test_acc"] == 0.25 and a.config["width"] == 16
    assert b.summary["state"] == "PRUNED" and b.steps() == [1]
    assert c.summary["state"] == "FAIL" and c.exit_code == 1 and c.history == []
    # resumed from epoch 1: a step W&B holds is never written again (its lost epoch 2 stays)
    assert d.steps() == [1, 2, 3] and [r["val_acc"] for r in d.history] == [
        acc("d", 1),
        0.0,
        acc("d", 3),
    ]
    assert d.summary["state"] == "COMPLETE" and d.summary["epochs"] == 3


def check_tensorboard(study, first, second):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = study.path / "tensorboard"
    assert sorted(p.name for p in folder.iterdir()) == list("abcdf")  # e's deleted
    for trial, n in (("a", 3), ("b", 1), ("d", 3), ("f", 3)):
        reader = EventAccumulator(str(folder / trial), size_guidance={"scalars": 0})
        reader.Reload()
        got = [(e.step, round(e.value, 4)) for e in reader.Scalars("val_acc")]
        assert got == [(e, acc(trial, e)) for e in range(1, n + 1)], trial
        assert "_hparams_/session_end_info" in reader.PluginTagToContent("hparams")


def check_progress(study, first, second):
    # the line at the stop (d interrupted, e not yet dropped), then at the resumed end
    assert (
        first.out.getvalue()
        .splitlines()[-1]
        .startswith(
            "sinks: 4/5 trials done, 0 running, 1 failed, 1 stopped early, best val_acc 0.3400  ["
        )
    )
    assert (
        second.out.getvalue()
        .splitlines()[-1]
        .startswith(
            "sinks: 5/5 trials done, 0 running, 1 failed, 1 stopped early, best val_acc 0.3500  ["
        )
    )


CHECKS = {
    "table": check_table,
    "mirror": check_mirror,
    "wandb": check_wandb,
    "tensorboard": check_tensorboard,
    "progress": check_progress,
}


def test_every_registered_sink_has_its_check():
    assert set(SINKS.names()) == set(CHECKS)


@pytest.mark.parametrize("name", SINKS.names())
def test_each_sink_records_the_study(name, played):
    study, first, second = played
    for player in (first, second):
        assert "warning" not in player.out.getvalue(), player.out.getvalue()
        assert isinstance(player.sinks.get(name), Sink) and player.sinks.get(name).name == name
    CHECKS[name](study, first, second)


# -- failures ---------------------------------------------------------------------------------
class Broken(BaseSink):
    name = "broken"

    def __init__(self, essential: bool = False) -> None:
        self.essential = essential
        self.calls = 0

    def _fail(self, *args) -> None:
        self.calls += 1
        raise OSError(f"disk full ({self.calls})")

    start = trial_started = trial_result = trial_ended = tick = flush = close = _fail


def test_a_failing_sink_is_one_warning_and_never_fails_the_study(tmp_path):
    from sweeper.sinks.progress import make_sink
    from sweeper.sinks.table import TableSink

    study = make_study(tmp_path / "s")
    broken = Broken()
    player = Player(study, 5, sinks=[])
    player.sinks.sinks = [broken, TableSink(study), make_sink(player.context)]
    first_session(player)
    lines = player.out.getvalue().splitlines()
    warnings = [ln for ln in lines if "warning" in ln]
    assert warnings == [
        "sweeper: warning: the broken sink failed (start: OSError: disk full (1)); "
        "the study goes on, and so does the sink",
        f"sweeper: warning: the broken sink failed {broken.calls} times in this run",
    ]
    assert broken.calls > 10  # kept being tried
    assert [ln for ln in lines if ln.startswith("sinks: 4/5 trials done")]  # progress went on
    assert len(study.trials()) == 5 and set(study.history()["trial_id"]) == {"a", "b", "d", "e"}


def test_an_essential_sinks_failure_stops_the_study_after_the_others_had_the_event(tmp_path):
    from sweeper.sinks.table import TableSink

    study = make_study(tmp_path / "s")
    player = Player(study, 5, sinks=[])
    player.sinks.sinks = [Broken(essential=True), TableSink(study)]
    with pytest.raises(OSError, match="disk full"):
        player.start()
    assert (study.path / "trials.csv").exists()  # the table got the start all the same
    with pytest.raises(OSError):
        player.close()


def test_a_sink_that_cannot_start_is_left_out_unless_essential(tmp_path):
    def fails(context):
        raise RuntimeError("no such server")

    registry = SinkRegistry()
    registry.register("table", "sweeper.sinks.table:make_sink", essential=True)
    registry.register("remote", fails)
    player = Player(make_study(tmp_path / "s"), 5, sinks=[])
    assert [s.name for s in registry.build(player.context)] == ["table"]
    assert "the remote sink did not start (RuntimeError: no such server)" in player.out.getvalue()
    registry.register("needed", fails, essential=True)
    with pytest.raises(RuntimeError, match="no such server"):
        registry.build(player.context)


# -- the registry and the spec's switches -------------------------------------------------------
def test_a_duplicate_name_raises_and_an_unknown_one_lists_the_valid_ones_and_the_closest():
    with pytest.raises(ValueError, match="'wandb' is already registered"):
        SINKS.register("wandb", lambda context: None)
    with pytest.raises(SweeperError) as err:
        SINKS.get("tensorbord")
    message = str(err.value)
    assert message.startswith("unknown sink 'tensorbord'; expected one of ")
    assert message.endswith("did you mean 'tensorboard'?")
    listed = message.split("expected one of ")[1].split(";")[0].split(", ")
    assert listed == SINKS.names()


def test_the_spec_turns_tensorboard_and_wandb_off(tmp_path):
    study = make_study(tmp_path / "s", tensorboard=False, wandb={"mode": "disabled"})
    names = [s.name for s in Player(study, 5).sinks.sinks]
    assert names == ["table", "mirror", "progress"]
