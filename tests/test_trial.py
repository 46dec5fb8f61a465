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
    return {k: v for k, v in metrics.items() if k not in ("epoch_s", "train_s")}


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


def small_spec(**train):
    return spec_from_dict(
        {
            "name": "t",
            "model": {"name": "mlp", "args": {"depth": 1, "width": 16}},
            "data": {"train_size": 1500, "val_size": 500, "test_size": 500},
            "train": {"epochs": 2, "batch_size": 128, **train},
        },
        "test",
    )


def test_cross_validation_trains_one_run_per_fold(tiny):
    _, splits = tiny
    final, _ = run(small_spec(cv_folds=3, epochs=1), splits, {})
    assert {"val_acc_r0", "val_acc_r1", "val_acc_r2"} <= set(final)
    assert "val_acc_r3" not in final
    folds = [final[f"val_acc_r{i}"] for i in range(3)]
    assert final["val_acc"] == pytest.approx(sum(folds) / 3)


def test_step_schedule_halves_the_learning_rate(tiny):
    _, splits = tiny
    spec = small_spec(epochs=3, lr=0.01, lr_schedule="step", lr_step_size=1, lr_gamma=0.5)
    _, reports = run(spec, splits, {})
    assert [m["lr"] for m, _ in reports] == pytest.approx([0.01, 0.005, 0.0025])


def test_lenet_v1_preset_brings_its_step_schedule(tiny):
    spec = small_spec()
    cfg = resolve_trial(spec, {"model": "lenet5_v1"})
    assert (cfg.lr_schedule, cfg.lr_step_size, cfg.lr_gamma) == ("step", 5, 0.5)
    assert resolve_trial(spec, {"model": "lenet5"}).lr_schedule == "none"
    explicit = small_spec(lr_schedule="exponential")
    assert resolve_trial(explicit, {"model": "lenet5_v1"}).lr_schedule == "exponential"


def test_sequence_arguments_are_swept_by_index():
    spec = spec_from_dict({"name": "t", "model": {"name": "lenet"}}, "test")
    cfg = resolve_trial(spec, {"channels.1": 64, "fc.0": 200})
    assert cfg.model_args == {"channels": (6, 64), "fc": (200, 84)}


def test_per_class_test_accuracy_and_grad_mean(tiny):
    _, splits = tiny
    final, reports = run(small_spec(epochs=1, log_grad_mean=True), splits, {})
    per_class = [final[f"test_acc_class{c}"] for c in range(10)]
    assert all(0 <= a <= 1 for a in per_class)
    assert reports[0][0]["grad_mean"] > 0


@pytest.mark.parametrize("kind", ["flip", "seed"])
def test_augmentation_changes_training_not_evaluation(tiny, kind):
    _, splits = tiny
    plain, _ = run(small_spec(epochs=1), splits, {})
    augmented, _ = run(small_spec(epochs=1, augment=kind), splits, {})
    assert augmented["train_loss"] != plain["train_loss"]
    assert 0.3 < augmented["val_acc"] <= 1


def test_xor_depth_two_width_three_solves_xor(data_root):
    # 300 epochs: at the seed's 100 the outcome depends on the initialisation (see
    # docs/reproductions.md); with 300 every seed tried reaches 100%.
    from sweeper.data import load_splits

    spec = spec_from_dict(
        {"name": "x", "model": {"name": "xor_mlp"}, "data": {"name": "xor"},
         "train": {"epochs": 300, "batch_size": 128, "optimizer": "sgd", "lr": 0.1, "seed": 1}},
        "test",
    )  # fmt: skip
    final, _ = run(spec, load_splits(spec.data, data_root), {"depth": 2, "width": 3})
    assert final["test_acc"] >= 0.95


def test_unet_segmentation_reports_iou_and_dice(data_root):
    from sweeper.data import load_splits

    spec = spec_from_dict(
        {"name": "u", "model": {"name": "unet", "args": {"depth": 2, "base_filters": 4}},
         "data": {"name": "membrane", "image_size": 32, "train_size": 6, "val_size": 2},
         "metric": {"name": "val_iou"},
         "train": {"epochs": 2, "batch_size": 4, "augment": "flip"}},
        "test",
    )  # fmt: skip
    final, _ = run(spec, load_splits(spec.data, data_root), {})
    for key in ("train_loss", "val_loss", "val_iou", "val_dice", "test_iou", "test_dice"):
        assert math.isfinite(final[key]), key
    assert 0 <= final["val_iou"] <= final["val_dice"] <= 1
