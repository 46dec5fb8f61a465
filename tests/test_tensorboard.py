"""TensorBoard logs: each trial's scalars and HParams, read back by TensorBoard's own reader."""

from __future__ import annotations

import pytest

from sweeper.sinks.tensorboard import TensorBoardSink, make_sink
from sweeper.spec import spec_from_dict
from sweeper.store import Study

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
    out = TensorBoardSink(root, True, warnings.append)
    out.warnings = warnings  # type: ignore[attr-defined]
    return out


def test_scalars_per_epoch_and_hparams(tmp_path):
    from tensorboard.plugins.hparams import plugin_data_pb2

    tb = sink(tmp_path)
    params = {"lr": 0.01, "optimizer": "adam", "widths": [4, 8]}
    for epoch in (1, 2, 3):
        tb.log("t1", params, {"epoch": epoch, "val_acc": epoch / 10, "loss": 1.0 / epoch})
    row = {"trial_id": "t1", "state": "COMPLETE", "epochs": 3, "config/lr": 0.01,
           "val_acc": 0.3, "test_acc": 0.25}  # fmt: skip
    tb.finish("t1", params, row)
    tb.close()
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
    study = Study(tmp_path)
    first = sink(tmp_path)
    for epoch in (1, 2, 3):
        study.append_history("t1", epoch, {"val_acc": epoch / 10})
    first.log("t1", {"lr": 0.1}, {"epoch": 1, "val_acc": 0.1})
    first.log("t1", {"lr": 0.1}, {"epoch": 2, "val_acc": 0.2})
    first.close()  # SIGKILL: the history holds epoch 3, TensorBoard not; Ray's checkpoint: 2

    second = TensorBoardSink(tmp_path, True, print, resumed={"t1"}, history=study.history)
    for epoch in (3, 4):  # the callback voids epoch 3 in the history, then records it again
        if epoch == 3:
            study.history_file.restart("t1", 3)
        study.append_history("t1", epoch, {"val_acc": epoch / 10 + 0.5})
        second.log("t1", {"lr": 0.1}, {"epoch": epoch, "val_acc": epoch / 10 + 0.5})
    second.finish("t1", {"lr": 0.1}, {"state": "COMPLETE", "epochs": 4, "val_acc": 0.9})
    second.close()

    scalars, _ = read(tmp_path / "tensorboard" / "t1")
    assert scalars["val_acc"] == [(1, 0.1), (2, 0.2), (3, 0.8), (4, 0.9)]
    hist = study.history()
    assert list(hist["val_acc"].round(6)) == [v for _, v in scalars["val_acc"]]


def test_epoch_trained_again_in_one_session(tmp_path):
    tb = sink(tmp_path)
    for epoch, value in ((1, 0.1), (2, 0.2), (2, 0.25), (3, 0.3)):  # a restart after a failure
        tb.log("t1", {}, {"epoch": epoch, "val_acc": value})
    tb.close()
    scalars, _ = read(tmp_path / "tensorboard" / "t1")
    assert scalars["val_acc"] == [(1, 0.1), (2, 0.25), (3, 0.3)]


def test_forget_drops_trials_ray_does_not_know(tmp_path):
    tb = sink(tmp_path)
    for trial in ("keep", "gone"):
        tb.log(trial, {}, {"epoch": 1, "val_acc": 0.5})
    tb.forget({"keep"})
    tb.close()
    assert sorted(p.name for p in (tmp_path / "tensorboard").iterdir()) == ["keep"]


def test_off_with_tensorboard_false(tmp_path):
    spec = spec_from_dict({"name": "s", "model": {"name": "mlp"}, "tensorboard": False}, "t")
    tb = make_sink(Study(tmp_path), spec, print)
    tb.log("t1", {}, {"epoch": 1, "val_acc": 0.5})
    tb.close()
    assert not tb.enabled and not (tmp_path / "tensorboard").exists()
    on = spec_from_dict({"name": "s", "model": {"name": "mlp"}}, "t")
    assert on.tensorboard is True and make_sink(Study(tmp_path), on, print).enabled
