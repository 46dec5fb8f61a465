"""Stacked forwards (trial/stacked.py): the MLP families without vmap, the same numbers."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from sweeper.models import get_model
from sweeper.trial.stacked import shared, stacked_forward

RUNS = 4


def stacked(models: list[nn.Module]) -> tuple[dict, dict, nn.Module]:
    params, buffers = stack_module_state(models)
    return params, buffers, copy.deepcopy(models[0]).to("meta")


def vmapped(base: nn.Module, in_dims=(0, 0, 0)):
    def forward(params, buffers, x):
        return functional_call(base, (params, buffers), (x,))

    return vmap(forward, in_dims=in_dims, randomness="different")


@pytest.mark.parametrize(
    ("model", "args", "in_shape"),
    [
        ("mlp", {"depth": 2, "width": 16}, (1, 28, 28)),
        ("mlp", {"depth": 0}, (1, 28, 28)),
        ("mlp", {"depth": 3, "width": 8, "activation": "gelu"}, (1, 28, 28)),
        ("xor_mlp", {"depth": 2, "width": 3}, (2,)),
    ],
)
def test_stacked_forward_and_gradients_equal_vmap(model, args, in_shape):
    torch.manual_seed(0)
    models = [
        get_model(model, in_shape=in_shape, num_classes=2 if model == "xor_mlp" else 10, **args)
        for _ in range(RUNS)
    ]
    params, buffers, base = stacked(models)
    direct = stacked_forward(base)
    assert direct is not None
    x = torch.randn(RUNS, 5, *in_shape)
    ours = direct(params, buffers, x)
    theirs = vmapped(base)(params, buffers, x)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    grads = torch.autograd.grad(ours.square().sum(), list(params.values()))
    want = torch.autograd.grad(theirs.square().sum(), list(params.values()))
    for g, w in zip(grads, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)
    # one batch every run sees (evaluation): (R, B, C), each run its own model's logits
    one = x[0]
    out = shared(direct)(params, buffers, one)
    assert out.shape == (RUNS, 5, ours.shape[-1])
    for r, m in enumerate(models):
        torch.testing.assert_close(out[r], m(one), rtol=1e-5, atol=1e-6)


def test_dropout_follows_train_and_eval_mode():
    torch.manual_seed(0)
    models = [
        get_model("mlp", in_shape=(1, 28, 28), num_classes=10, depth=1, width=64, dropout=0.5)
        for _ in range(RUNS)
    ]
    params, buffers, base = stacked(models)
    direct = stacked_forward(base)
    x = torch.randn(1, 8, 1, 28, 28).expand(RUNS, -1, -1, -1, -1)
    base.eval()
    torch.testing.assert_close(direct(params, buffers, x), vmapped(base)(params, buffers, x))
    base.train()
    a, b = direct(params, buffers, x), direct(params, buffers, x)
    assert not torch.equal(a, b)  # a new mask each call
    # the same input and weights per run would give equal outputs: the masks differ per run
    same = {k: v[:1].expand_as(v).contiguous() for k, v in params.items()}
    c = direct(same, buffers, x)
    assert not torch.equal(c[0], c[1])


class MyLinear(nn.Linear):
    def forward(self, x):  # a subclass may change forward: never taken as a Linear
        return super().forward(x) * 2


@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.BatchNorm1d(3)),  # buffers
        nn.Sequential(nn.Conv2d(1, 2, 3)),  # not a known layer
        nn.Sequential(MyLinear(4, 2)),
        nn.Sequential(nn.ReLU()),  # no parameters
    ],
)
def test_other_models_keep_vmap(model):
    assert stacked_forward(model) is None


def test_the_fused_group_picks_its_path():
    from sweeper.spec import spec_from_dict
    from sweeper.trial import resolve_trial
    from sweeper.trial.fused import FusedGroup

    def how(model: dict) -> str:
        spec = spec_from_dict({"name": "s", "model": model, "train": {"repeats": 2}}, "t")
        cfg = resolve_trial(spec, {})
        runs = [_run(cfg, seed) for seed in range(2)]
        return FusedGroup(runs, [0, 1], cfg, task=None).how

    assert how({"name": "mlp", "args": {"depth": 1, "width": 8}}) == "stacked"
    assert how({"name": "lenet5"}) == "vmap"


def _run(cfg, seed):
    from types import SimpleNamespace

    torch.manual_seed(seed)
    model = get_model(cfg.model, in_shape=(1, 28, 28), num_classes=10, **cfg.model_args)
    return SimpleNamespace(model=model)  # all a group's constructor reads of a run
