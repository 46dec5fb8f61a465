"""Zero padding across hosted trials (``trial/padding.py`` through ``trial/host_fusion.py``).

MLPs that differ only in hidden widths train as one padded stacked model: each member's
per-epoch metrics, final parameters and optimizer state equal the same trial hosted unfused
(within 1e-5; the batched matmuls sum in another order), the padded entries stay exactly
zero through Adam, AdamW and SGD with momentum and weight decay, a group whose padding would
cost too much is not formed (and the CPU pads nothing by default: ``pad_on_cpu`` lends it
the CUDA bound), and a checkpoint of a padded epoch restores into unfused trials. Sigmoid activations: a padded hidden unit outputs sigmoid(0) = 0.5, so only the
gradient mask keeps its outgoing weights at zero. Synthetic data, two small epochs.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from sweeper.trial import padding, resolve_trial
from sweeper.trial.host import Host
from sweeper.trial.host_fusion import TrialGroup, fusion_key, plan
from sweeper.trial.loop import TrialContext, train_trial
from sweeper.trial.padding import group_by_cost, pad_cost, param_shapes, width_family
from tests.support.synthetic import image_splits
from tests.test_host import assert_same_metrics, make_spec
from tests.test_host_fusion import alone, groups_trained, hosted, metrics

SIGMOID = {"name": "mlp", "args": {"depth": 2, "width": 32, "activation": "sigmoid"}}
# three widths, one per optimizer family (weight decay in each): padded, 1.40x their own
# parameters (within the CUDA bound, 1.5; 16/32/48 would be 1.52x)
WIDTHS = {
    "w24_adam": {"width": 24, "lr": 3e-3, "weight_decay": 1e-3},
    "w32_sgd": {
        "width": 32,
        "optimizer": "sgd",
        "lr": 0.05,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "lr_schedule": "step",
        "lr_step_size": 1,
    },
    "w48_adamw": {"width": 48, "optimizer": "adamw", "lr": 2e-3, "weight_decay": 0.05},
}


@pytest.fixture(scope="module")
def synthetic():
    return image_splits(train=600, val=200, test=200)


@pytest.fixture
def pad_on_cpu(monkeypatch):
    """The CUDA bound on the CPU too (by default the CPU pads nothing: it did not pay)."""
    monkeypatch.setitem(padding.MAX_PAD_COST, "cpu", padding.MAX_PAD_COST["cuda"])
    return padding.MAX_PAD_COST["cpu"]


def mlp_shapes(*widths, d_in=784, d_out=10):
    """Parameter shapes of an MLP with these hidden widths."""
    sizes = [d_in, *widths, d_out]
    return [s for a, b in zip(sizes, sizes[1:], strict=False) for s in ((b, a), (b,))]


def test_width_family_and_the_cost_rule():
    from sweeper.models import get_model

    def family(**args):
        return width_family(get_model("mlp", in_shape=(1, 28, 28), num_classes=10, **args))

    assert family(width=16) == family(width=48) is not None
    assert family(width=16) != family(width=16, depth=3)
    assert family(width=16) != family(width=16, activation="tanh")
    flatten_inside = nn.Sequential(nn.Linear(28, 8), nn.Flatten(), nn.Linear(8 * 28, 10))
    assert width_family(flatten_inside) is None  # padded units would interleave
    assert width_family(get_model("lenet", in_shape=(1, 28, 28), num_classes=10)) is None
    # 24/32/48 pad to 1.40x their own parameters, 16/32/48 to 1.52x, 16 with 256 to 1.91x
    assert pad_cost([mlp_shapes(w, w) for w in (24, 32, 48)]) == pytest.approx(1.402, abs=1e-3)
    assert pad_cost([mlp_shapes(w, w) for w in (16, 32, 48)]) == pytest.approx(1.519, abs=1e-3)
    assert pad_cost([mlp_shapes(w, w) for w in (32, 32)]) == 1.0
    assert pad_cost([mlp_shapes(w, w) for w in (16, 256)]) > padding.MAX_PAD_COST["cuda"]
    assert padding.pad_limit("cpu") == 1.0 and padding.pad_limit("cuda:0") == 1.5
    # one exact shape stays together; the widest go first; a class joins where it fits
    items = [256, 32, 32, 48, 16]
    groups = group_by_cost(items, lambda w: mlp_shapes(w, w), limit=1.6)
    assert groups == [[256], [32, 32, 48, 16]]
    assert group_by_cost(items, lambda w: mlp_shapes(w, w), limit=1.35) == [[256], [32, 32, 48], [16]]  # fmt: skip


def spec_of(epochs=2):
    return make_spec(epochs=epochs, model=SIGMOID)


def test_padded_group_equals_each_trial_unfused(synthetic, monkeypatch, pad_on_cpu):
    spec = spec_of()
    _, apart = hosted(synthetic, WIDTHS, fuse=False, spec=spec)
    sizes = groups_trained(monkeypatch)
    _, fused = hosted(synthetic, WIDTHS, fuse=True, spec=spec)
    assert sizes == [3, 3]  # both epochs of the three widths as one padded group
    for name, params in WIDTHS.items():
        assert_same_metrics(metrics(fused[name]), metrics(apart[name]))
        assert_same_metrics(metrics(fused[name]), alone(spec, synthetic, params))
        (want,), (got,) = apart[name][-1].state["runs"], fused[name][-1].state["runs"]
        for key, value in want["model"].items():  # the member's own shapes, not the padded
            torch.testing.assert_close(got["model"][key], value, rtol=0, atol=1e-5)
        assert got["optimizer"]["param_groups"] == want["optimizer"]["param_groups"]
        for i, entry in want["optimizer"]["state"].items():
            assert got["optimizer"]["state"][i].keys() == entry.keys()
            for key, value in entry.items():
                torch.testing.assert_close(got["optimizer"]["state"][i][key], value, rtol=0, atol=1e-5)  # fmt: skip


def padded_group(synthetic, mask=True):
    """A padded :class:`TrialGroup` of :data:`WIDTHS` after two epochs."""
    host = Host(synthetic, "cpu", fuse=True)
    for name, params in WIDTHS.items():
        host.add(name, resolve_trial(spec_of(), params))
    members = list(host._trials.values())
    assert len({fusion_key(m) for m in members}) == 1
    group = TrialGroup(members)
    assert group.padding.padded and group.pad_mask is not None
    if not mask:
        group.pad_mask = None
    for _ in range(2):
        group.train_epoch(host.data, host.task, 128)
    return group


def test_padded_entries_stay_exactly_zero(synthetic):
    group = padded_group(synthetic)
    pad, opt, a = group.pad_mask, group.optimizer, group.optimizer.a
    assert [m.cfg.optimizer for m in group.members] == ["adam", "adamw", "sgd"] and a == 2
    assert pad[0].any() and pad[2].any() and not pad[1].any()  # w24, w32 padded; w48 not
    assert torch.equal(group.flat[pad], torch.zeros_like(group.flat[pad]))
    for state in (opt.exp_avg, opt.exp_avg_sq):  # Adam's moments: rows [0, a)
        assert torch.equal(state[pad[:a]], torch.zeros_like(state[pad[:a]]))
    assert torch.equal(opt.buf[pad[a:]], torch.zeros_like(opt.buf[pad[a:]]))
    assert (opt.buf != 0).any() and (opt.exp_avg != 0).any()  # they did train
    # each member's own model holds its real blocks, in its own shapes
    for r, run in enumerate(group.runs):
        for i, name in enumerate(group.names):
            block = group.padding.blocks[r][i]
            assert torch.equal(run.model.get_parameter(name), group.params[name][r][block])


def test_without_the_mask_sigmoid_padding_moves(synthetic):
    # sigmoid(0) = 0.5: a padded unit's outgoing weights get a gradient; the mask stops it
    group = padded_group(synthetic, mask=False)
    pad = group.padding.mask("cpu")
    assert (group.flat[pad] != 0).any()


def test_a_group_whose_padding_costs_too_much_is_not_formed(synthetic, monkeypatch, pad_on_cpu):
    spec = make_spec(epochs=1)
    configs = {"narrow": {"width": 16}, "wide": {"width": 256}}
    sizes = groups_trained(monkeypatch)
    _, fused = hosted(synthetic, configs, fuse=True, spec=spec)
    assert sizes == []  # 1.91x the members' own parameters: each trains alone
    _, apart = hosted(synthetic, configs, fuse=False, spec=spec)
    for name in configs:
        assert_same_metrics(metrics(fused[name]), metrics(apart[name]))
    host = Host(synthetic, "cpu", fuse=True)
    for name, width in (("a", 256), ("b", 32), ("c", 32), ("d", 24)):
        host.add(name, resolve_trial(spec, {"width": width}))
    groups = plan(host._trials.values(), host._keys)
    assert [[t.trial_id for t in g] for g in groups] == [["b", "c", "d"]]
    assert pad_cost([param_shapes(t.runs[0].model) for t in groups[0]]) <= pad_on_cpu


def test_the_cpu_pads_nothing_by_default(synthetic):
    host = Host(synthetic, "cpu", fuse=True)
    for name, params in {**WIDTHS, "w32_again": {"width": 32}}.items():
        host.add(name, resolve_trial(spec_of(), params))
    groups = plan(host._trials.values(), host._keys)
    assert [[t.trial_id for t in g] for g in groups] == [["w32_sgd", "w32_again"]]


def test_checkpoint_of_a_padded_epoch_restores_unfused(synthetic, monkeypatch, pad_on_cpu):
    spec = spec_of()
    sizes = groups_trained(monkeypatch)
    _, fused = hosted(synthetic, WIDTHS, fuse=True, spec=spec)
    assert sizes == [3, 3]
    for name, params in WIDTHS.items():
        state = fused[name][0].state  # after the first (padded) epoch
        assert state["epoch"] == 1
        solo = Host(synthetic, "cpu")  # a fresh host, unfused
        solo.add(name, resolve_trial(spec, params), restore=copy.deepcopy(state))
        assert_same_metrics(metrics(list(solo.run())), metrics(fused[name][1:]))
        reports = []  # and a process trial (train_trial)
        ctx = TrialContext(
            synthetic, lambda m, s, out=reports: out.append(m), restore=copy.deepcopy(state)
        )
        train_trial(resolve_trial(spec, params), ctx)
        assert_same_metrics(reports, metrics(fused[name][1:]))
