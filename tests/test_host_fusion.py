"""Same-shape fusion across hosted trials (``trial/host_fusion.py``, ``Host(fuse=True)``).

The stacked optimizer against torch.optim (Adam, AdamW, SGD with momentum and weight decay,
each member its own hyperparameters); fused hosted trials against the same trials hosted
unfused and against ``train_trial`` (per-epoch metrics within 1e-5 on the CPU), members
that pause, leave or resume between epochs, checkpoints in the unfused format, and what
stays unfused. Synthetic data (no data set), a few small epochs. The GPU test (marked
``gpu``) checks the CUDA path against the unfused host.
"""

from __future__ import annotations

import copy

import pytest
import torch

from sweeper.errors import SpecError
from sweeper.trial import host_fusion, resolve_trial
from sweeper.trial.host import Host
from sweeper.trial.host_fusion import TrialGroup, fusion_key, why_not
from sweeper.trial.loop import TrialContext, train_trial
from sweeper.trial.stacked_optim import StackedOptimizer
from tests.support.synthetic import image_splits
from tests.test_fused import float64  # noqa: F401 - a fixture
from tests.test_host import assert_same_metrics, by_trial, make_spec

# one architecture (mlp depth 2, width 32), one batch size; own optimizer, lr, schedule
MEMBERS = {
    "adam": {},
    "adam_wd": {"lr": 3e-3, "weight_decay": 1e-3},
    "adamw_step": {"optimizer": "adamw", "lr": 2e-3, "lr_schedule": "step", "lr_step_size": 1},
    "sgd_mom": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4},
    "sgd": {"optimizer": "sgd", "lr": 0.1, "seed": 3, "lr_schedule": "exponential"},
}
TORCH = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}


@pytest.fixture(scope="module")
def synthetic():
    return image_splits(train=600, val=200, test=200)


def hosted(splits, configs, fuse, spec=None, device="cpu"):
    spec = spec or make_spec(epochs=3)
    host = Host(splits, device, fuse=fuse)
    for name, params in configs.items():
        assert host.add(name, resolve_trial(spec, params))
    return host, by_trial(host.run())


def alone(spec, splits, params):
    """``train_trial``'s metrics per epoch."""
    reports = []
    train_trial(resolve_trial(spec, params), TrialContext(splits, lambda m, s: reports.append(m)))
    return reports


def metrics(events):
    return [e.metrics for e in events]


def test_stacked_optimizer_matches_torch_optim():
    torch.manual_seed(0)
    members = [
        ("adam", {"lr": 1e-3}),
        ("adam", {"lr": 3e-3, "weight_decay": 1e-2}),
        ("adamw", {"lr": 2e-3, "weight_decay": 0.05}),
        ("sgd", {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3}),
        ("sgd", {"lr": 0.1}),
    ]
    shapes = [(6, 5), (6,)]
    start = [[torch.randn(s) for s in shapes] for _ in members]
    reference = []
    for (kind, kwargs), tensors in zip(members, start, strict=True):
        params = [t.clone().requires_grad_() for t in tensors]
        reference.append((params, getattr(torch.optim, TORCH[kind])(params, **kwargs)))
    flat = torch.stack([torch.cat([t.flatten() for t in tensors]) for tensors in start])  # (R, P)
    kinds = [k for k, _ in members]
    opt = StackedOptimizer(flat, shapes, kinds, [o.param_groups[0] for _, o in reference])
    for _ in range(30):
        grads = torch.randn_like(flat)
        for r, (params, optimizer) in enumerate(reference):
            for p, g in zip(params, grads[r].split([p.numel() for p in params]), strict=True):
                p.grad = g.view(p.shape).clone()
            optimizer.step()
        opt.step(grads)
    for r, (params, optimizer) in enumerate(reference):
        want = torch.cat([p.detach().flatten() for p in params])
        torch.testing.assert_close(flat[r], want, rtol=0, atol=1e-6)
        # the state goes back in torch's own format: the torch optimizer takes it as it is
        fresh = getattr(torch.optim, TORCH[members[r][0]])(params, **members[r][1])
        opt.store_member(r, fresh)
        want, got = optimizer.state_dict()["state"], fresh.state_dict()["state"]
        assert want.keys() == got.keys()
        for i in want:
            for key, value in want[i].items():
                torch.testing.assert_close(got[i][key], value, rtol=0, atol=1e-6)


def groups_trained(monkeypatch):
    """The sizes of the groups ``train_group`` trains, as they come."""
    sizes = []
    train = host_fusion.train_group

    def spy(members, *args):
        sizes.append(len(members))
        return train(members, *args)

    monkeypatch.setattr(host_fusion, "train_group", spy)
    return sizes


def test_fused_trials_equal_unfused_and_train_trial(synthetic, monkeypatch):
    spec = make_spec(epochs=3)
    _, apart = hosted(synthetic, MEMBERS, fuse=False)
    sizes = groups_trained(monkeypatch)
    host, fused = hosted(synthetic, MEMBERS, fuse=True)
    assert sizes == [len(MEMBERS)] * 3  # every epoch of every trial in one group
    for name, params in MEMBERS.items():
        assert_same_metrics(metrics(fused[name]), metrics(apart[name]))
        assert_same_metrics(metrics(fused[name]), alone(spec, synthetic, params))
        assert [e.done for e in fused[name]] == [False, False, True]
        # the checkpoint is the unfused one: same keys, same tensors within 1e-5
        want, got = apart[name][-1].state, fused[name][-1].state
        assert got["epoch"] == want["epoch"] == 3
        (run_want,), (run_got,) = want["runs"], got["runs"]
        assert run_got.keys() == run_want.keys()
        for key, value in run_want["model"].items():
            torch.testing.assert_close(run_got["model"][key], value, rtol=0, atol=1e-5)
        opt_want, opt_got = run_want["optimizer"], run_got["optimizer"]
        assert opt_got["param_groups"] == opt_want["param_groups"]
        for i, entry in opt_want["state"].items():
            for key, value in entry.items():
                torch.testing.assert_close(opt_got["state"][i][key], value, rtol=0, atol=1e-5)


def test_members_leave_pause_and_rejoin_between_epochs(synthetic, monkeypatch):
    spec = make_spec(epochs=3)
    sizes = groups_trained(monkeypatch)
    names = ["adam", "sgd_mom", "adamw_step"]
    host = Host(synthetic, "cpu", fuse=True)
    for name in names:
        host.add(name, resolve_trial(spec, MEMBERS[name]))
    seen = host.step()  # one round: the three trained epoch 1 as one group
    assert sorted(e.trial_id for e in seen) == sorted(names)
    host.remove("adamw_step")  # its scheduler stopped it: the others go on
    host.pause("sgd_mom")
    seen += host.step()  # adam alone: unfused
    state = host.state("sgd_mom")
    host.resume("sgd_mom")  # one epoch behind adam: both run (apart or together)
    seen += list(host.run())
    assert sizes[0] == 3 and 2 in sizes[1:]  # adam and sgd_mom fused again, epochs apart
    events = by_trial(seen)
    assert len(events["adamw_step"]) == 1 and len(events["adam"]) == len(events["sgd_mom"]) == 3
    for name in ("adam", "sgd_mom"):
        assert_same_metrics(metrics(events[name]), alone(spec, synthetic, MEMBERS[name]))
    # a fused member's checkpoint resumes unfused, in a fresh host, to the same numbers
    solo = Host(synthetic, "cpu")
    solo.add("sgd_mom", resolve_trial(spec, MEMBERS["sgd_mom"]), restore=copy.deepcopy(state))
    assert_same_metrics(metrics(list(solo.run())), metrics(events["sgd_mom"][1:]))
    # and a process trial (train_trial) resumes from it too
    reports = []
    ctx = TrialContext(synthetic, lambda m, s: reports.append(m), restore=copy.deepcopy(state))
    train_trial(resolve_trial(spec, MEMBERS["sgd_mom"]), ctx)
    assert_same_metrics(reports, metrics(events["sgd_mom"][1:]))


@pytest.mark.usefixtures("float64")
def test_conv_trials_with_batch_norm_fuse_through_vmap(synthetic, monkeypatch):
    # float64 (as tests/test_fused.py): in float32 a few steps of batch norm at lr 0.1 move
    # val_loss by ~1e-4 under any change of rounding (batched convolutions round their own way)
    lenet = {"name": "lenet", "args": {"channels": [4, 8], "fc": [16], "batch_norm": True}}
    spec = make_spec(epochs=2, model=lenet)
    # SGD only: a conv bias before batch norm has a zero gradient up to rounding, which
    # Adam's g / sqrt(v) turns into full steps of noise (fused or not, any rounding moves it)
    configs = {k: MEMBERS[k] for k in ("sgd_mom", "sgd")}
    _, apart = hosted(synthetic, configs, fuse=False, spec=spec)
    sizes = groups_trained(monkeypatch)
    _, fused = hosted(synthetic, configs, fuse=True, spec=spec)
    assert sizes == [2, 2]
    for name in configs:
        assert_same_metrics(metrics(fused[name]), metrics(apart[name]))
        want, got = apart[name][-1].state["runs"][0], fused[name][-1].state["runs"][0]
        for key, value in want["model"].items():  # batch-norm statistics included
            torch.testing.assert_close(got["model"][key], value, rtol=0, atol=1e-5)


def test_what_does_not_fuse_trains_unfused(synthetic, monkeypatch):
    spec = make_spec(epochs=2)
    sizes = groups_trained(monkeypatch)
    others = {
        "dropout": {"dropout": 0.2},
        "wide": {"width": 256},  # another width: alone (too wide to pad with the 32s anyway)
        "batch": {"batch_size": 64},
        "adam": {},
        "adam2": {"lr": 2e-3},
    }
    host, fused = hosted(synthetic, others, fuse=True, spec=spec)
    assert sizes == [2, 2]  # adam and adam2; the others alone
    _, apart = hosted(synthetic, others, fuse=False, spec=spec)
    for name in others:
        assert_same_metrics(metrics(fused[name]), metrics(apart[name]))
    trial = Host(synthetic, "cpu", fuse=True)
    trial.add("d", resolve_trial(spec, others["dropout"]))
    trial.add("r", resolve_trial(make_spec(epochs=2, repeats=2), {}))
    assert why_not(trial._trials["d"]) == "dropout"
    assert why_not(trial._trials["r"]) == "several runs (repeats or folds)"
    assert fusion_key(trial._trials["d"]) is None


def test_a_group_that_raises_trains_its_members_unfused(synthetic, monkeypatch):
    configs = {k: MEMBERS[k] for k in ("adam", "sgd_mom")}
    _, apart = hosted(synthetic, configs, fuse=False)

    def broken(self, data, task, batch_size):
        next(iter(self.runs)).order()  # draws, then fails: the draw is put back
        raise RuntimeError("stacked step failed")

    monkeypatch.setattr(TrialGroup, "train_epoch", broken)
    host, fused = hosted(synthetic, configs, fuse=True)
    for name in configs:
        assert_same_metrics(metrics(fused[name]), metrics(apart[name]))
        assert all(e.error is None for e in fused[name])


def test_spec_key_fuse_trials():
    assert make_spec().train.fuse_trials is False
    assert make_spec(fuse_trials=True).train.fuse_trials is True
    with pytest.raises(SpecError, match="fuse_trials") as err:
        make_spec(fuse_trials="yes")
    assert len(str(err.value).strip().splitlines()) == 1


@pytest.mark.gpu
def test_fused_trials_on_cuda_match_unfused(synthetic, monkeypatch):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    spec = make_spec(epochs=3, device="cuda")
    # two other widths: the seven train as one zero-padded group (trial/padding.py)
    configs = {**MEMBERS, "w24": {"width": 24}, "w40_sgd": {"width": 40, **MEMBERS["sgd_mom"]}}
    _, apart = hosted(synthetic, configs, fuse=False, spec=spec, device="cuda")
    sizes = groups_trained(monkeypatch)
    _, fused = hosted(synthetic, configs, fuse=True, spec=spec, device="cuda")
    assert sizes == [len(configs)] * 3
    for name in configs:
        for got, want in zip(metrics(fused[name]), metrics(apart[name]), strict=True):
            for key in ("train_loss", "val_loss"):
                assert got[key] == pytest.approx(want[key], rel=1e-3), key
            for key in ("train_acc", "val_acc"):
                assert abs(got[key] - want[key]) <= 0.01, key


@pytest.mark.slow
def test_a_hosted_study_with_fuse_trials_trains_each_config_as_alone(tmp_path, data_root):
    from sweeper.cli import main
    from sweeper.store import Study
    from tests.support.sweeps import write_sweep
    from tests.test_hosted import alone as alone_on_disk

    path = write_sweep(
        tmp_path,
        name="fusedhosts",
        epochs=2,
        parameters={"width": None, "optimizer": {"values": ["adam", "sgd"]}},
        train={"fuse_trials": True},
        resources={"executor": "host", "num_cpus": 2},
        data={"train_size": 1000, "val_size": 300, "test_size": 300},
    )
    runs = tmp_path / "runs"
    assert main(["run", str(path), "--runs", str(runs), "--wandb", "disabled"]) == 0
    study = Study.open("fusedhosts", runs)
    rows = study.trials()
    assert list(rows["state"]) == ["COMPLETE"] * 2
    history, spec = study.history(), study.spec()
    assert spec.train.fuse_trials is True
    for _, row in rows.iterrows():
        want = alone_on_disk(spec, {"optimizer": row["config/optimizer"]})
        got = history[history["trial_id"] == row["trial_id"]].sort_values("epoch")
        for (_, epoch), metrics in zip(got.iterrows(), want, strict=True):
            for key in ("train_loss", "val_loss", "val_acc"):
                assert epoch[key] == pytest.approx(metrics[key], abs=1e-5), key
