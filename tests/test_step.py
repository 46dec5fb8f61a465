"""The fast train step on the CPU: the same numbers as the eager loop, bit for bit.

``compile: true`` trains through :class:`TrainStep` (static buffers; a CUDA graph on CUDA),
``compile: false`` through the plain eager loop. On the CPU both must give the same metrics
and weights exactly. A stand-in capture backend (``ReplayGraphs``) exercises the CUDA path's
bookkeeping here: warm-up steps, a capture that trains nothing, replays over the static
buffers, the eager tail batch, re-capture when the lr changes, and the fallback.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math

import pytest
import torch

from sweeper.data import load_splits
from sweeper.errors import SpecError
from sweeper.spec import spec_from_dict
from sweeper.trial import resolve_trial
from sweeper.trial import step as fast
from sweeper.trial.loop import DeviceData, TrialContext, make_runs, train_trial
from sweeper.trial.tasks import task_for

# 1000 training images in batches of 128: 7 full batches and a tail of 104.
DATA = {"train_size": 1000, "val_size": 300, "test_size": 300}


def make_spec(model=None, data=None, **train):
    return spec_from_dict(
        {
            "name": "s",
            "model": model or {"name": "mlp", "args": {"depth": 2, "width": 32}},
            "data": data or DATA,
            "train": {"epochs": 2, "batch_size": 128, **train},
        },
        "test",
    )


@pytest.fixture(scope="module")
def splits(data_root):
    return load_splits(make_spec().data, data_root)


def run(spec, splits, params=None, restore=None):
    """(final metrics, [(metrics, checkpoint)] per epoch)."""
    reports = []
    ctx = TrialContext(
        splits, lambda m, s: reports.append((m, copy.deepcopy(s()) if s else None)), restore
    )
    final = train_trial(resolve_trial(spec, params or {}), ctx)
    return final, reports


def untimed(metrics):
    return {k: v for k, v in metrics.items() if k not in ("epoch_s", "train_s")}


def assert_same_tensors(a, b, where=""):
    """Nested checkpoints equal exactly: every tensor bitwise, everything else =="""
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def assert_step_equals_eager(spec, splits, params=None):
    step_final, step_reports = run(spec, splits, params)
    eager_spec = spec.model_copy(update={"train": spec.train.model_copy(update={"compile": False})})
    eager_final, eager_reports = run(eager_spec, splits, params)
    assert [untimed(m) for m, _ in step_reports] == [untimed(m) for m, _ in eager_reports]
    assert_same_tensors(step_reports[-1][1], eager_reports[-1][1], "checkpoint")
    return step_final


@pytest.mark.parametrize(
    "train",
    [
        {},  # Adam
        {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9},
        {"optimizer": "adamw", "weight_decay": 0.05},
        {"optimizer": "sgd", "lr": 0.1, "lr_schedule": "step", "lr_step_size": 1, "epochs": 3},
        {"lr_schedule": "exponential", "lr_gamma": 0.7, "augment": "seed", "epochs": 3},
    ],
    ids=["adam", "sgd_momentum", "adamw", "sgd_step_lr", "adam_exp_lr_augment"],
)
def test_step_path_equals_eager_loop_bitwise(splits, train):
    final = assert_step_equals_eager(make_spec(**train), splits)
    assert final["val_acc"] > 0.4


def test_repeats_and_folds_each_get_their_own_step(splits):
    assert_step_equals_eager(make_spec(epochs=1, cv_folds=2, repeats=2), splits)


def test_bf16_trains_and_stays_finite(splits):
    fp32, _ = run(make_spec(), splits)
    bf16 = assert_step_equals_eager(make_spec(precision="bf16"), splits)
    for key in ("train_loss", "val_loss", "test_loss"):
        assert math.isfinite(bf16[key]), key
    assert bf16["val_acc"] > 0.5
    assert bf16["train_loss"] != fp32["train_loss"]  # autocast really ran in bf16


def test_conv_model_in_channels_last(splits):
    lenet = {"name": "lenet", "args": {"channels": [4, 8], "fc": [32], "batch_norm": True}}
    assert_step_equals_eager(make_spec(model=lenet, epochs=1, channels_last=True), splits)


def test_unet_segmentation_step_equals_eager(data_root):
    """Bit for bit on torch's default threads here (2). On one thread the second epoch's
    ``train_loss`` differs in its last float32 bit (1.45752021 against 1.45752035) while
    every weight and optimizer state stays bitwise equal: a loss statistic's rounding, not
    the training (tests/conftest.py puts each test's thread count back, so no other test
    leaves this one on one thread)."""
    spec = make_spec(
        model={"name": "unet", "args": {"depth": 2, "base_filters": 4}},
        data={"name": "membrane", "image_size": 32, "train_size": 7, "val_size": 2},
        batch_size=3,
        augment="flip",
    )
    assert_step_equals_eager(spec, load_splits(spec.data, data_root))


def test_restore_on_the_step_path_continues_like_the_eager_loop(splits):
    spec = make_spec(optimizer="sgd", lr=0.05, momentum=0.9, lr_schedule="step", lr_step_size=1)
    _, reports = run(spec, splits)
    resumed, _ = run(spec, splits, restore=reports[0][1])
    eager = spec.model_copy(update={"train": spec.train.model_copy(update={"compile": False})})
    full, _ = run(eager, splits)
    assert untimed(resumed) == untimed(full)


# --- the CUDA path's bookkeeping, with a capture backend that replays Python -------------


class ReplayGraphs:
    """Stands in for :class:`fast.CudaGraphs`: "capture" keeps the step without running it
    (as a CUDA capture records without executing); "replay" runs it on the static buffers
    with the lr it was captured with (a CUDA graph holds the lr as a kernel argument)."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail, self.captured, self.replays = fail, 0, 0

    def side(self):
        return contextlib.nullcontext()

    def sync(self) -> None:
        pass

    def capture(self, fn):
        if self.fail is not None:
            raise self.fail
        self.captured += 1
        groups = self.optimizer_groups
        frozen = [g["lr"] for g in groups]

        def replay() -> None:
            self.replays += 1
            now = [g["lr"] for g in groups]
            for g, lr in zip(groups, frozen, strict=True):
                g["lr"] = lr
            fn()
            for g, lr in zip(groups, now, strict=True):
                g["lr"] = lr

        return replay


def train_runs(spec, splits, graphs=None):
    """Train the spec's runs by hand (``graphs``: a backend for each run's step, or None)."""
    cfg = resolve_trial(spec, {})
    device = torch.device("cpu")
    data = DeviceData(splits, device)
    task = task_for(data.info.task, data.info.num_classes)
    runs = make_runs(cfg, data, device)
    assert graphs is None or len(runs) == 1  # one backend, one optimizer
    for r in runs:
        if graphs is not None:
            graphs.optimizer_groups = r.optimizer.param_groups
            r.step = fast.TrainStep(r.model, r.optimizer, task, cfg.batch_size, graphs=graphs)
    history = [[r.train_epoch(cfg, data, task) for r in runs] for _ in range(cfg.epochs)]
    return runs, history


def test_captured_step_warms_up_then_replays_and_recaptures_on_lr_change(splits):
    spec = make_spec(optimizer="sgd", lr=0.1, momentum=0.9, lr_schedule="step", lr_step_size=1)
    spec = spec.model_copy(update={"train": spec.train.model_copy(update={"epochs": 3})})
    graphs = ReplayGraphs()
    (graphed,), history = train_runs(spec, splits, graphs)
    eager_spec = spec.model_copy(update={"train": spec.train.model_copy(update={"compile": False})})
    (eager,), eager_history = train_runs(eager_spec, splits)
    assert history == eager_history
    assert_same_tensors(graphed.state(), eager.state(), "state")
    step = graphed.step
    assert step.warm == fast.WARMUP_STEPS  # real steps on real batches, then capture
    assert graphs.captured == step.captures == 3  # epoch 1, then once per new lr
    assert graphs.replays == 3 * 7 - fast.WARMUP_STEPS  # every full batch after warm-up
    assert step.graphed


def test_adam_steps_count_every_batch_including_the_tail(splits):
    (graphed,), _ = train_runs(make_spec(), splits, ReplayGraphs())
    steps = {float(s["step"]) for s in graphed.optimizer.state_dict()["state"].values()}
    assert steps == {2 * 8.0}  # 2 epochs x (7 full batches + the tail): none dropped, none extra


def test_failed_capture_logs_once_and_trains_eagerly(splits, caplog):
    graphs = ReplayGraphs(fail=RuntimeError("operation not permitted when stream is capturing"))
    with caplog.at_level(logging.WARNING, logger="sweeper.trial.step"):
        (graphed,), history = train_runs(make_spec(), splits, graphs)
    (eager,), eager_history = train_runs(
        make_spec(compile=False), splits
    )  # the same numbers: the failed capture trained nothing
    assert history == eager_history
    assert_same_tensors(graphed.state(), eager.state(), "state")
    lines = [r.getMessage() for r in caplog.records if r.name == "sweeper.trial.step"]
    assert len(lines) == 1 and "operation not permitted" in lines[0], lines
    assert not graphed.step.graphed


# --- settings, checkpoint state and spec keys ---------------------------------------------


def test_checkpoint_format_is_unchanged(splits):
    _, reports = run(make_spec(epochs=1), splits)
    state = reports[0][1]
    assert set(state) == {"epoch", "runs"}
    assert set(state["runs"][0]) == {"model", "optimizer", "scheduler", "generator", "grad"}
    assert all(torch.is_tensor(v) for v in state["runs"][0]["model"].values())


def test_loaded_optimizer_state_follows_the_runs_capturable_flag():
    p = torch.nn.Parameter(torch.ones(3))
    saved = torch.optim.Adam([p], lr=0.1)
    p.grad = torch.ones(3)
    saved.step()
    opt = torch.optim.Adam([p], lr=0.1)
    opt.load_state_dict(saved.state_dict())
    fast.match_capturable(opt, True)
    assert opt.param_groups[0]["capturable"] is True
    assert opt.state[p]["step"].dtype == torch.float32 and opt.state[p]["step"].device == p.device
    fast.match_capturable(opt, False)
    assert opt.param_groups[0]["capturable"] is False and opt.state[p]["step"].is_cpu
    sgd = torch.optim.SGD([p], lr=0.1)
    fast.match_capturable(sgd, True)  # no capturable flag: left alone
    assert "capturable" not in sgd.param_groups[0]


def test_channels_last_auto_means_conv_models_on_cuda():
    from sweeper.models import get_model

    shape = {"in_shape": (1, 28, 28), "num_classes": 10}
    conv, mlp = get_model("lenet5", **shape), get_model("mlp", **shape)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert fast.channels_last_for("auto", conv, cuda) is True
    assert fast.channels_last_for("auto", conv, cpu) is False
    assert fast.channels_last_for("auto", mlp, cuda) is False
    assert fast.channels_last_for(True, mlp, cpu) is True
    assert fast.channels_last_for(False, conv, cuda) is False


def test_graphs_only_for_the_step_path_on_cuda():
    cfg = resolve_trial(make_spec(), {})
    cuda = torch.device("cuda")
    assert fast.wants_graph(cfg, cuda) and not fast.wants_graph(cfg, torch.device("cpu"))
    assert fast.optimizer_options(cfg, cuda) == {"capturable": True}
    assert fast.optimizer_options(cfg, torch.device("cpu")) == {}
    sgd = resolve_trial(make_spec(optimizer="sgd"), {})
    assert fast.wants_graph(sgd, cuda) and fast.optimizer_options(sgd, cuda) == {}
    grads = resolve_trial(make_spec(log_grad_mean=True), {})
    assert not fast.uses_step(grads)  # host syncs every step: the eager loop
    off = resolve_trial(make_spec(compile=False), {})
    assert not fast.uses_step(off) and not fast.wants_graph(off, cuda)


def test_spec_keys_and_defaults():
    train = make_spec().train
    assert (train.compile, train.precision, train.channels_last) == (True, "fp32", "auto")
    train = make_spec(compile=False, precision="bf16", channels_last=True).train
    assert (train.compile, train.precision, train.channels_last) == (False, "bf16", True)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("precision", "fp16", "train.precision: expected one of 'fp32' or 'bf16', got 'fp16'"),
        ("compile", "yes", "train.compile: expected true or false, got a string 'yes'"),
        ("channels_last", 1, "train.channels_last: expected true, false or 'auto', got int 1"),
    ],
)
def test_bad_spec_values_are_one_line_errors(key, value, message):
    with pytest.raises(SpecError) as err:
        make_spec(**{key: value})
    assert message in str(err.value) and "\n" not in str(err.value)
