"""Fused runs (``trial/fused.py``): the vmapped stack trains each run as the loop does.

Tolerances. Float32: the fused path computes the same sums as the loop, but batched
kernels (``bmm`` for a stack of ``mm``) add in another order, so values drift by rounding
(~1e-7 relative per step); over a few epochs of an MLP that stays within rel 1e-5. Batch
norm models are compared in float64 (1e-9 asserted; they agree to ~1e-14): in float32 the
loop's first conv of a 1-channel image returns a channels-last tensor, and PyTorch's CPU
batch norm over channels-last is less precise (~1e-4 relative on a low-variance channel,
measured against float64) than over the contiguous layout the fused stack has, so the two
float32 paths part by up to ~1e-1 in val loss after an epoch of SGD with momentum (the
fused batch-norm output is the closer to float64, checked on one batch). Dropout draws differ by design (one draw per run under
``vmap``, not the loop's sequence), so dropout is checked for per-run masks, not equality.
"""

from __future__ import annotations

import copy
import logging
import math

import pytest
import torch

from sweeper.data import load_splits
from sweeper.spec import spec_from_dict
from sweeper.trial import loop, resolve_trial
from sweeper.trial.fused import (
    FusedGroup,
    equal_length_groups,
    make_units,
    stack_optimizer_state,
    unstack_optimizer_state,
)
from sweeper.trial.loop import DeviceData, TrialContext, make_runs, train_trial
from sweeper.trial.run import RunList
from sweeper.trial.tasks import task_for

TIME_KEYS = ("epoch_s", "train_s")
FP32 = dict(rel=1e-5, abs=1e-6)
FP64 = dict(rel=1e-9, abs=1e-12)
FASHION = {"train_size": 600, "val_size": 200, "test_size": 200}
XOR_TRAIN = {"epochs": 5, "batch_size": 128, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9}
SMALL_BN_LENET = {"name": "lenet", "args": {"channels": [4, 8], "fc": [16], "batch_norm": True}}


def make_spec(model: dict, data: dict, **train):
    return spec_from_dict({"name": "f", "model": model, "data": data, "train": train}, "test")


@pytest.fixture(scope="module")
def fashion(data_root):
    return load_splits(make_spec({"name": "mlp"}, FASHION).data, data_root)


@pytest.fixture(scope="module")
def xor(data_root):
    return load_splits(make_spec({"name": "xor_mlp"}, {"name": "xor"}).data, data_root)


@pytest.fixture
def float64(monkeypatch):
    """Models built and data held in float64 (see the module's docstring)."""
    init = DeviceData.__init__

    def double(self, splits, device):
        init(self, splits, device)
        self.train, self.val, self.test = (
            (x.double(), y) for x, y in (self.train, self.val, self.test)
        )

    monkeypatch.setattr(DeviceData, "__init__", double)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def train(spec, splits, fuse: bool, restore=None, **train):
    """``train_trial`` with ``train.fuse`` (and any train keys) set: final metrics, reports."""
    spec = spec.model_copy(update={"train": spec.train.model_copy(update={"fuse": fuse, **train})})
    reports = []
    ctx = TrialContext(
        splits, lambda m, s: reports.append((m, copy.deepcopy(s()) if s else None)), restore
    )
    return train_trial(resolve_trial(spec, {}), ctx), reports


def assert_same_metrics(a: dict, b: dict, tol: dict) -> None:
    assert set(a) == set(b)
    for key in a:
        if key not in TIME_KEYS:
            assert a[key] == pytest.approx(b[key], **tol), key


def fused_and_loop(spec, splits, tol, **train_keys):
    fused, fused_reports = train(spec, splits, True, **train_keys)
    plain, plain_reports = train(spec, splits, False, **train_keys)
    assert_same_metrics(fused, plain, tol)
    for (m_f, _), (m_p, _) in zip(fused_reports, plain_reports, strict=True):
        assert_same_metrics(m_f, m_p, tol)
    return fused, fused_reports


def units_for(spec, splits):
    cfg = resolve_trial(spec, {})
    data = DeviceData(splits, torch.device("cpu"))
    task = task_for(data.info.task, data.info.num_classes)
    runs = make_runs(cfg, data, torch.device("cpu"))
    return make_units(cfg, runs, task), runs


# -- fused equals the loop, run by run ----------------------------------------------------


def test_xor_repeats_sgd_momentum_match_the_loop(xor):
    spec = make_spec({"name": "xor_mlp", "args": {"depth": 2, "width": 3}}, {"name": "xor"},
                     repeats=4, **XOR_TRAIN)  # fmt: skip
    final, _ = fused_and_loop(spec, xor, FP32)
    assert final["val_loss_r0"] != final["val_loss_r1"]  # four different runs
    units, _ = units_for(spec, xor)
    assert [type(u) for u in units] == [FusedGroup]


def test_mlp_repeats_adam_with_step_schedule_match_the_loop(fashion):
    spec = make_spec({"name": "mlp", "args": {"depth": 2, "width": 32}}, FASHION,
                     epochs=3, batch_size=128, repeats=3, lr=0.01, lr_schedule="step",
                     lr_step_size=1, lr_gamma=0.5)  # fmt: skip
    _, reports = fused_and_loop(spec, fashion, FP32)
    assert [m["lr"] for m, _ in reports] == pytest.approx([0.01, 0.005, 0.0025])


def test_cv_folds_of_unequal_length_fuse_in_groups(fashion):
    # 800 pooled examples in 3 folds: validation chunks of 267, 267, 266
    spec = make_spec({"name": "mlp", "args": {"depth": 1, "width": 16}}, FASHION,
                     epochs=2, batch_size=128, repeats=2, cv_folds=3, optimizer="adamw",
                     augment="flip")  # fmt: skip
    units, runs = units_for(spec, fashion)
    assert equal_length_groups(runs) == [[0, 1, 3, 4], [2, 5]]
    assert [(type(u), u.indices) for u in units] == [
        (FusedGroup, [0, 1, 3, 4]),
        (FusedGroup, [2, 5]),
    ]
    final, _ = fused_and_loop(spec, fashion, FP32)
    assert {f"val_acc_r{i}" for i in range(6)} <= set(final)


def test_grad_mean_is_logged_per_run(fashion):
    spec = make_spec({"name": "mlp", "args": {"depth": 1, "width": 16}}, FASHION,
                     epochs=1, batch_size=128, repeats=2, log_grad_mean=True)  # fmt: skip
    final, _ = fused_and_loop(spec, fashion, FP32)
    assert final["grad_mean"] > 0 and final["grad_mean_std"] > 0


def test_batch_norm_lenet_matches_the_loop_and_keeps_stats_per_run(fashion, float64):
    spec = make_spec(SMALL_BN_LENET, FASHION, epochs=2, batch_size=64, repeats=3,
                     optimizer="sgd", lr=0.05, momentum=0.9)  # fmt: skip
    _, fused = fused_and_loop(spec, fashion, FP64)
    _, plain = train(spec, fashion, False)
    fused_runs, plain_runs = fused[-1][1]["runs"], plain[-1][1]["runs"]
    for f_run, p_run in zip(fused_runs, plain_runs, strict=True):
        for key, value in p_run["model"].items():
            torch.testing.assert_close(f_run["model"][key], value, rtol=1e-9, atol=1e-12)
    means = [run["model"]["stages.0.1.running_mean"] for run in fused_runs]
    assert not torch.equal(means[0], means[1])  # each run's own statistics ...
    assert all(m.abs().sum() > 0 for m in means)  # ... updated from their zero start
    assert int(fused_runs[0]["model"]["stages.0.1.num_batches_tracked"]) == 2 * 10


# -- checkpoints: the loop's format, either way round --------------------------------------


@pytest.mark.parametrize("first,then", [(True, False), (False, True), (True, True)])
def test_checkpoint_resumes_across_paths(fashion, first, then):
    spec = make_spec({"name": "mlp", "args": {"depth": 1, "width": 16}}, FASHION,
                     epochs=2, batch_size=128, repeats=2, lr_schedule="step",
                     lr_step_size=1)  # fmt: skip
    full, _ = train(spec, fashion, then)
    _, reports = train(spec, fashion, first)
    state = reports[0][1]
    assert state["epoch"] == 1 and len(state["runs"]) == 2
    assert set(state["runs"][0]) == {"model", "optimizer", "scheduler", "generator", "grad"}
    resumed, resumed_reports = train(spec, fashion, then, restore=state)
    assert [m["epoch"] for m, _ in resumed_reports] == [2]
    assert_same_metrics(resumed, full, FP32)


def test_fused_state_has_the_loop_format(fashion):
    spec = make_spec({"name": "mlp", "args": {"depth": 1, "width": 16}}, FASHION,
                     epochs=1, batch_size=128, repeats=2)  # fmt: skip
    _, fused = train(spec, fashion, True)
    _, plain = train(spec, fashion, False)
    f_run, p_run = fused[0][1]["runs"][1], plain[0][1]["runs"][1]
    assert list(f_run["model"]) == list(p_run["model"])
    f_opt, p_opt = f_run["optimizer"], p_run["optimizer"]
    assert f_opt["param_groups"] == p_opt["param_groups"]
    for i, entry in p_opt["state"].items():
        assert set(f_opt["state"][i]) == set(entry)
        for key, value in entry.items():
            assert f_opt["state"][i][key].shape == value.shape, (i, key)
    assert torch.equal(f_run["generator"], p_run["generator"])  # same data order drawn


def test_optimizer_state_stacks_and_unstacks():
    params = [torch.zeros(3, 2, requires_grad=True), torch.zeros(3, requires_grad=True)]
    opt = torch.optim.Adam(params)
    sum((p + torch.arange(3.0).view(3, *[1] * (p.dim() - 1))).square().sum() for p in params).backward()  # fmt: skip
    opt.step()
    stacked = opt.state_dict()
    shapes = [(3, 2), (3,)]
    per_run = [unstack_optimizer_state(stacked, r, shapes) for r in range(3)]
    assert per_run[1]["state"][0]["exp_avg"].shape == (2,)
    assert per_run[1]["state"][1]["exp_avg"].shape == ()
    assert per_run[2]["state"][0]["step"] == stacked["state"][0]["step"]
    again = stack_optimizer_state(per_run, [(2,), ()])
    for i in (0, 1):
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(again["state"][i][key], stacked["state"][i][key]), (i, key)


# -- when the loop trains instead -----------------------------------------------------------


class _Branchy(torch.nn.Module):
    """Data-dependent Python control flow: what ``vmap`` cannot trace."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(x.flatten(1))
        if out.sum() > 0:
            return out
        return -out


@pytest.fixture
def branchy(monkeypatch):
    """A model ``branchy`` registered for this test only."""
    from sweeper.models import _api, register_model

    monkeypatch.setattr(_api, "_MODELS", _api._MODELS.copy())

    @register_model("branchy", doc={"branchy": "test: if on a tensor's value"})
    def build(*, in_shape: tuple[int, ...] = (2,), num_classes: int = 2) -> torch.nn.Module:
        """A linear layer whose forward branches on its output's value."""
        return _Branchy(math.prod(in_shape), num_classes)

    return "branchy"


def test_model_vmap_cannot_take_falls_back_with_one_line(xor, branchy, caplog):
    spec = make_spec({"name": branchy}, {"name": "xor"}, repeats=3, **XOR_TRAIN)
    with caplog.at_level(logging.INFO, logger="sweeper.trial.fused"):
        fused, _ = train(spec, xor, True)
    lines = [r.getMessage() for r in caplog.records if r.name == "sweeper.trial.fused"]
    assert len(lines) == 1 and "vmap cannot train model branchy" in lines[0]
    assert "its 3 runs train one after another" in lines[0] and "\n" not in lines[0]
    plain, _ = train(spec, xor, False)
    assert {k: v for k, v in fused.items() if k not in TIME_KEYS} == {
        k: v for k, v in plain.items() if k not in TIME_KEYS
    }


def test_fuse_false_and_single_runs_train_in_the_plain_loop(xor, caplog):
    spec = make_spec({"name": "xor_mlp"}, {"name": "xor"}, repeats=3, fuse=False, **XOR_TRAIN)
    with caplog.at_level(logging.INFO, logger="sweeper.trial.fused"):
        units, runs = units_for(spec, xor)
    assert [(type(u), u.indices) for u in units] == [(RunList, [0, 1, 2])]
    single = make_spec({"name": "xor_mlp"}, {"name": "xor"}, **XOR_TRAIN)
    units, _ = units_for(single, xor)
    assert [(type(u), u.indices) for u in units] == [(RunList, [0])]
    assert not [r for r in caplog.records if r.name == "sweeper.trial.fused"]  # a choice
    assert resolve_trial(make_spec({"name": "mlp"}, {}), {}).fuse is True  # the default


def test_dropout_draws_differently_per_run(fashion):
    spec = make_spec({"name": "mlp", "args": {"depth": 1, "width": 32, "dropout": 0.5}},
                     FASHION, epochs=1, batch_size=128, repeats=2)  # fmt: skip
    units, _ = units_for(spec, fashion)
    (group,) = units
    with torch.no_grad():
        for t in group.params.values():
            t[1] = t[0]  # both runs the same weights
    x = loop.DeviceData(fashion, torch.device("cpu")).train[0][:16]
    xb = torch.stack([x, x])  # (2, 16, 1, 28, 28): the same batch for both
    group.base.train()
    train_out = group._forward(group.params, group.buffers, xb)
    assert not torch.equal(train_out[0], train_out[1])  # a dropout mask each
    group.base.eval()
    eval_out = group._forward(group.params, group.buffers, xb)
    torch.testing.assert_close(eval_out[0], eval_out[1])
    final, _ = train(spec, fashion, True)
    assert math.isfinite(final["train_loss"]) and final["train_loss_std"] > 0
