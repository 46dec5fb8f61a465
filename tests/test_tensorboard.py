"""TensorBoard logs: each trial's scalars and HParams, read back by TensorBoard's own reader."""

from __future__ import annotations

import pytest

from sweeper.sinks import StudyEnd, TrialEnded, TrialResult
from sweeper.sinks.table import TableSink
from sweeper.sinks.tensorboard import TensorBoardSink
from sweeper.spec import spec_from_dict
from sweeper.store import PARAM_PREFIX, Study
from tests.support.sinks import Player

pytest.importorskip("tensorboard")


def read(folder):
    """TensorBoard's reader over one trial's folder: (scalars by tag, hparams plugin tags)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    scalars = {
        tag: [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)]
        for tag in acc.Tags()["scalars"]
    }
    return scalars, acc.PluginTagToContent("hparams")


def sink(root) -> TensorBoardSink:
    warnings: list[str] = []
    out = TensorBoardSink(root, warnings.append)
    out.warnings = warnings  # type: ignore[attr-defined]
    return out


def row(params, **values):
    return {**{f"{PARAM_PREFIX}{k}": v for k, v in params.items()}, **values}


def log(tb, trial_id, params, metrics):
    tb.trial_result(TrialResult(trial_id, {}, row(params), metrics))


def finish(tb, trial_id, params, values):
    tb.trial_ended(TrialEnded(trial_id, {}, row(params, **values)))


def played(tmp_path, sinks, known=None):
    """A study in ``tmp_path`` whose events go to ``sinks``, started with Ray knowing
    ``known``."""
    spec = spec_from_dict({"name": "s", "model": {"name": "mlp"}}, "s.yaml")
    study = Study(tmp_path) if (tmp_path / "study.json").exists() else None
    study = study or Study.create(tmp_path, spec, "s.yaml", n_trials=2)
    player = Player(study, 2, sinks=sinks)
    player.start(known)
    return player


def test_scalars_per_epoch_and_hparams(tmp_path):
    from tensorboard.plugins.hparams import plugin_data_pb2

    tb = sink(tmp_path)
    params = {"lr": 0.01, "optimizer": "adam", "widths": [4, 8]}
    for epoch in (1, 2, 3):
        log(tb, "t1", params, {"epoch": epoch, "val_acc": epoch / 10, "loss": 1.0 / epoch})
    values = {"trial_id": "t1", "state": "COMPLETE", "epochs": 3, "val_acc": 0.3,
              "test_acc": 0.25}  # fmt: skip
    finish(tb, "t1", params, values)
    tb.close(StudyEnd({}))
    assert tb.warnings == []

    scalars, hp = read(tmp_path / "tensorboard" / "t1")
    assert scalars["val_acc"] == [(1, 0.1), (2, 0.2), (3, 0.3)]
    assert [s for s, _ in scalars["loss"]] == [1, 2, 3]
    assert scalars["test_acc"] == [(3, 0.25)]  # a final-only metric at the last epoch
    assert set(hp) == {"_hparams_/experiment", "_hparams_/session_start_info",
                       "_hparams_/session_end_info"}  # fmt: skip
    start = plugin_data_pb2.HParamsPluginData.FromString(hp["_hparams_/session_start_info"])
    got = start.session_start_info.hparams
    assert got["lr"].number_value == pytest.approx(0.01)
    assert got["optimizer"].string_value == "adam"
    assert got["widths"].string_value == "[4, 8]"
    exp = plugin_data_pb2.HParamsPluginData.FromString(hp["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in exp.metric_infos} == {"val_acc", "test_acc"}


def test_resume_writes_each_epoch_once_as_the_history_holds_it(tmp_path):
    first = played(tmp_path, [TableSink(Study(tmp_path)), sink(tmp_path)])
    study = first.study
    first.started("t1", {"lr": 0.1})
    first.result("t1", epoch=1, val_acc=0.1)
    first.result("t1", epoch=2, val_acc=0.2)
    study.append_history("t1", 3, {"val_acc": 0.3})
    first.close()  # SIGKILL: the history holds epoch 3, TensorBoard not; Ray's checkpoint: 2

    tb = TensorBoardSink(tmp_path, print, history=study.history)
    second = played(tmp_path, [TableSink(study), tb], ["t1"])
    second.started("t1", {"lr": 0.1})
    for epoch in (3, 4):  # the table voids epoch 3 in the history, then records it again
        second.result("t1", epoch=epoch, val_acc=epoch / 10 + 0.5)
    second.ended("t1")
    second.close()

    scalars, _ = read(tmp_path / "tensorboard" / "t1")
    assert scalars["val_acc"] == [(1, 0.1), (2, 0.2), (3, 0.8), (4, 0.9)]
    hist = study.history()
    assert list(hist["val_acc"].round(6)) == [v for _, v in scalars["val_acc"]]


def test_epoch_trained_again_in_one_session(tmp_path):
    tb = sink(tmp_path)
    for epoch, value in ((1, 0.1), (2, 0.2), (2, 0.25), (3, 0.3)):  # a restart after a failure
        log(tb, "t1", {}, {"epoch": epoch, "val_acc": value})
    tb.close(StudyEnd({}))
    scalars, _ = read(tmp_path / "tensorboard" / "t1")
    assert scalars["val_acc"] == [(1, 0.1), (2, 0.25), (3, 0.3)]


def test_a_resume_drops_the_trials_ray_does_not_know(tmp_path):
    first = played(tmp_path, [TableSink(Study(tmp_path)), sink(tmp_path)])
    for trial in ("keep", "gone"):
        first.started(trial)
        first.result(trial, epoch=1, val_acc=0.5)
    first.close()
    played(tmp_path, [TableSink(first.study), tb := sink(tmp_path)], ["keep"]).close()
    assert tb.warnings == []
    assert sorted(p.name for p in (tmp_path / "tensorboard").iterdir()) == ["keep"]


def test_off_with_tensorboard_false(tmp_path):
    from sweeper.sinks.tensorboard import make_sink

    spec = spec_from_dict({"name": "s", "model": {"name": "mlp"}, "tensorboard": False}, "t")
    player = Player(Study.create(tmp_path / "off", spec, "t", 1), 1)
    assert make_sink(player.context) is None and player.sinks.get("tensorboard") is None
    on = spec_from_dict({"name": "s", "model": {"name": "mlp"}}, "t")
    assert on.tensorboard is True
    assert isinstance(make_sink(Player(Study.create(tmp_path / "on", on, "t", 1), 1).context),
                      TensorBoardSink)  # fmt: skip
