"""The trainer alone: determinism, checkpoint/restore, divergence, repeats."""

from __future__ import annotations

import copy
import math

import pytest

from sweeper.data import load_splits
from sweeper.spec import spec_from_dict
from sweeper.trial import resolve_trial
from sweeper.trial.loop import TrialContext, train_trial


@pytest.fixture(scope="module")
def tiny(data_root):
    spec = spec_from_dict(
        {
            "name": "t",
            "model": {"name": "mlp", "args": {"depth": 2, "width": 32}},
            "data": {"train_size": 1500, "val_size": 500, "test_size": 500},
            "train": {"epochs": 2, "batch_size": 128},
        },
        "test",
    )
    return spec, load_splits(spec.data, data_root)


def run(spec, splits, params, restore=None):
    reports = []
    ctx = TrialContext(
        splits, lambda m, s: reports.append((m, copy.deepcopy(s()) if s else None)), restore
    )
    final = train_trial(resolve_trial(spec, params), ctx)
    return final, reports


def strip_time(metrics):
    return {k: v for k, v in metrics.items() if k != "epoch_s"}


def test_reports_every_metric_each_epoch(tiny):
    spec, splits = tiny
    final, reports = run(spec, splits, {})
    assert [m["epoch"] for m, _ in reports] == [1, 2]
    for m, _ in reports:
        assert {"train_loss", "train_acc", "val_loss", "val_acc", "epoch_s", "params"} <= set(m)
    assert "test_acc" not in reports[0][0]
    assert 0.0 <= final["test_acc"] <= 1.0
    assert final["params"] == 784 * 32 + 32 + 32 * 32 + 32 + 32 * 10 + 10
    assert final["val_acc"] > 0.5  # 2 epochs of Adam on Fashion-MNIST learn something


def test_same_seed_same_metrics_on_cpu(tiny):
    spec, splits = tiny
    a, _ = run(spec, splits, {"optimizer": "sgd", "lr": 0.05})
    b, _ = run(spec, splits, {"optimizer": "sgd", "lr": 0.05})
    assert strip_time(a) == strip_time(b)


def test_restore_from_checkpoint_matches_uninterrupted_run(tiny):
    spec, splits = tiny
    full, reports = run(spec, splits, {})
    state_after_epoch_1 = reports[0][1]
    assert state_after_epoch_1["epoch"] == 1
    resumed, resumed_reports = run(spec, splits, {}, restore=state_after_epoch_1)
    assert [m["epoch"] for m, _ in resumed_reports] == [2]
    assert strip_time(resumed) == strip_time(full)


def test_divergence_is_a_normal_stop(tiny):
    spec, splits = tiny
    final, reports = run(spec, splits, {"optimizer": "sgd", "lr": 1e6})
    assert final["diverged"] == 1
    assert len(reports) == 1  # stopped after the epoch that diverged
    assert not math.isfinite(final["train_loss"])
    assert final["test_acc"] <= 0.2  # a collapsed net, recorded, not raised


def test_repeats_report_mean_and_std(tiny):
    spec, splits = tiny
    spec = spec.model_copy(
        update={"train": spec.train.model_copy(update={"repeats": 2, "epochs": 1})}
    )
    final, _ = run(spec, splits, {})
    assert "val_acc_std" in final and final["val_acc_std"] >= 0
    single = spec.model_copy(update={"train": spec.train.model_copy(update={"repeats": 1})})
    one, _ = run(single, splits, {})
    assert "val_acc_std" not in one


def test_optimizer_settings_layer_in_order():
    spec = spec_from_dict(
        {
            "name": "t",
            "model": {"name": "mlp"},
            "train": {"lr": 0.5, "optimizer_args": {"sgd": {"lr": 0.01, "momentum": 0.9}}},
        },
        "test",
    )
    assert resolve_trial(spec, {"optimizer": "sgd"}).optimizer_kwargs == {
        "lr": 0.01,
        "momentum": 0.9,
    }
    assert resolve_trial(spec, {"optimizer": "sgd", "lr": 0.2}).optimizer_kwargs["lr"] == 0.2
    assert resolve_trial(spec, {"optimizer": "adam"}).optimizer_kwargs == {"lr": 0.5}
    cfg = resolve_trial(spec, {"depth": 5, "width": 128, "batch_size": 64})
    assert cfg.model_args == {"depth": 5, "width": 128} and cfg.batch_size == 64
