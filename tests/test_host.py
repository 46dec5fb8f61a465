"""The host (``trial/host.py``): many trials in one process, each as it would train alone.

On the CPU a hosted trial's per-epoch metrics must equal ``train_trial``'s for the same
config and seed (within 1e-5; in fact bit for bit): several configs hosted together against
each alone, trials joining and leaving between epochs, a checkpoint restored into a fresh
host, and a trial that raises failing alone. The GPU tests (marked ``gpu``, synthetic data)
check the CUDA path: graphed hosted trials against the eager loop, one stream per trial,
and a model that cannot be captured training eagerly inside the host.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math

import pytest
import torch

from sweeper.data import load_splits
from sweeper.spec import spec_from_dict
from sweeper.trial import resolve_trial
from sweeper.trial import step as fast
from sweeper.trial.host import Host
from sweeper.trial.lanes import Lane
from sweeper.trial.loop import TrialContext, train_trial
from tests.support.synthetic import image_splits

TIME_KEYS = ("epoch_s", "train_s")
DATA = {"train_size": 600, "val_size": 200, "test_size": 200}
# widths, optimizers, lrs, batch sizes, a schedule, dropout, the eager loop, fused repeats
CONFIGS = {
    "adam": {},
    "sgd": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "width": 64, "batch_size": 100},
    "adamw_step": {
        "optimizer": "adamw",
        "lr": 3e-3,
        "width": 16,
        "batch_size": 256,
        "lr_schedule": "step",
        "lr_step_size": 1,
    },
    "dropout": {"dropout": 0.3, "batch_size": 64},
}


def make_spec(data=None, model=None, **train):
    return spec_from_dict(
        {
            "name": "h",
            "model": model or {"name": "mlp", "args": {"depth": 2, "width": 32}},
            "data": data or DATA,
            "train": {"epochs": 2, "batch_size": 128, **train},
        },
        "test",
    )


@pytest.fixture(scope="module")
def splits(data_root):
    return load_splits(make_spec().data, data_root)


def alone(spec, splits, params, restore=None):
    """``train_trial``'s reports: [(metrics, checkpoint copy)] per epoch."""
    reports = []
    ctx = TrialContext(
        splits, lambda m, s: reports.append((m, copy.deepcopy(s()) if s else None)), restore
    )
    train_trial(resolve_trial(spec, params), ctx)
    return reports


def by_trial(events):
    out: dict[str, list] = {}
    for event in events:
        out.setdefault(event.trial_id, []).append(event)
    return out


def assert_same_metrics(hosted, reference):
    """Per epoch: the same keys, every value within 1e-5 (time aside)."""
    assert len(hosted) == len(reference)
    for got, want in zip(hosted, reference, strict=True):
        assert set(got) == set(want)
        for key in set(want) - set(TIME_KEYS):
            a, b = got[key], want[key]
            if isinstance(b, float) and math.isnan(b):
                assert math.isnan(a), key
            else:
                assert a == pytest.approx(b, rel=0, abs=1e-5), key


def test_trials_hosted_together_equal_each_alone(splits):
    spec = make_spec(epochs=2)
    host = Host(splits, "cpu")
    for name, params in CONFIGS.items():
        assert host.add(name, resolve_trial(spec, params))
    host.add("repeats", resolve_trial(make_spec(epochs=2, repeats=2), {"width": 8}))
    assert host.trials() == dict.fromkeys([*CONFIGS, "repeats"], "running")
    events = by_trial(host.run())
    assert not host.busy and host.trials() == {}
    for name, params in CONFIGS.items():
        reference = alone(spec, splits, params)
        assert_same_metrics([e.metrics for e in events[name]], [m for m, _ in reference])
        assert [e.done for e in events[name]] == [False, True]
        assert events[name][-1].state["epoch"] == 2
    reference = alone(make_spec(epochs=2, repeats=2), splits, {"width": 8})  # fused repeats
    assert_same_metrics([e.metrics for e in events["repeats"]], [m for m, _ in reference])
    assert "val_acc_r1" in events["repeats"][-1].metrics


def test_trials_join_and_leave_between_epochs(splits):
    spec = make_spec(epochs=3)
    cfg_a = resolve_trial(spec, CONFIGS["sgd"])
    cfg_b = resolve_trial(spec, CONFIGS["dropout"])
    host = Host(splits, "cpu")
    host.add("a", cfg_a)
    seen = []
    while host.epoch("a") < 1:
        seen += host.step()
    host.add("b", cfg_b)  # joins while a is in its second epoch
    while "b" not in {e.trial_id for e in seen}:
        seen += host.step()
    host.remove("a")  # leaves mid-epoch: its epoch under way is lost
    assert host.trials() == {"b": "running"}
    seen += list(host.run())
    events = by_trial(seen)
    reference_a = [m for m, _ in alone(spec, splits, CONFIGS["sgd"])]
    got_a = [e.metrics for e in events["a"]]
    assert 1 <= len(got_a) < 3 and not events["a"][-1].done
    assert_same_metrics(got_a, reference_a[: len(got_a)])
    assert_same_metrics(
        [e.metrics for e in events["b"]], [m for m, _ in alone(spec, splits, CONFIGS["dropout"])]
    )
    with pytest.raises(KeyError, match="no hosted trial 'a'"):
        host.remove("a")


def test_pause_holds_a_trial_at_its_epoch_boundary(splits):
    spec = make_spec(epochs=2, checkpoint=False)
    host = Host(splits, "cpu")
    host.add("a", resolve_trial(spec, {}))
    host.add("b", resolve_trial(spec, CONFIGS["sgd"]))
    host.step()
    host.pause("a")  # mid-epoch: pausing until its epoch ends
    assert host.trials()["a"] == "pausing"
    with pytest.raises(RuntimeError, match="inside an epoch"):
        host.state("a")
    seen = list(host.run())  # b finishes; a stops after its first epoch
    assert host.trials() == {"a": "paused"} and host.epoch("a") == 1
    assert [e.trial_id for e in seen if e.trial_id == "a"] == ["a"]
    assert all(e.state is None for e in seen)  # checkpoint: false
    assert host.state("a")["epoch"] == 1
    host.resume("a")
    seen += list(host.run())
    assert_same_metrics(
        [e.metrics for e in by_trial(seen)["a"]], [m for m, _ in alone(spec, splits, {})]
    )


def test_hold_pauses_after_every_epoch(splits):
    spec = make_spec(epochs=2, checkpoint=False)
    host = Host(splits, "cpu")
    host.add("a", resolve_trial(spec, {}), hold=True)
    (first,) = list(host.run())
    assert first.metrics["epoch"] == 1 and host.trials() == {"a": "paused"}
    host.resume("a")
    (second,) = list(host.run())
    assert second.done and host.trials() == {}
    assert_same_metrics([first.metrics, second.metrics], [m for m, _ in alone(spec, splits, {})])


def test_checkpoint_restored_into_a_fresh_host_continues_identically(splits):
    spec = make_spec(epochs=3)
    params = CONFIGS["adamw_step"]
    host = Host(splits, "cpu")
    host.add("a", resolve_trial(spec, params))
    host.add("other", resolve_trial(spec, CONFIGS["sgd"]))
    first = next(e for e in host.run() if e.trial_id == "a")
    state = {**first.state, "metrics": first.metrics}  # as the trainable saves it
    fresh = Host(splits, "cpu")
    fresh.add("a", resolve_trial(spec, params), restore=copy.deepcopy(state))
    assert fresh.epoch("a") == 1
    rest = [e.metrics for e in fresh.run()]
    reference = alone(spec, splits, params)
    assert_same_metrics([first.metrics, *rest], [m for m, _ in reference])
    assert rest[-1]["train_s"] > first.metrics["train_s"]  # carried over the restore
    # the process path resumes from a hosted checkpoint alike
    resumed = alone(spec, splits, params, restore=copy.deepcopy(state))
    assert_same_metrics([m for m, _ in resumed], [m for m, _ in reference[1:]])


def test_checkpoint_of_a_finished_or_diverged_trial_trains_nothing(splits):
    spec = make_spec(epochs=1)
    host = Host(splits, "cpu")
    host.add("a", resolve_trial(spec, {}))
    (last,) = list(host.run())
    assert not host.add("a", resolve_trial(spec, {}), restore=last.state)
    diverged = {**last.state, "metrics": {**last.metrics, "diverged": 1}}
    assert not host.add("b", resolve_trial(make_spec(epochs=2), {}), restore=diverged)
    events = host.step()
    assert [e.trial_id for e in events] == ["a", "b"] and host.trials() == {}
    assert all(e.done and e.error is None and e.metrics is None for e in events)


class _KeepStep:
    """Stands in for the lane's CUDA graphs on the CPU: "capture" keeps the step function,
    "replay" runs it on the static buffers (as a graph replays its kernels); with ``fail``,
    every capture raises it."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.captures, self.fail = 0, fail

    def side(self):
        return contextlib.nullcontext()

    def sync(self) -> None:
        pass

    def capture(self, fn):
        if self.fail is not None:
            raise self.fail
        self.captures += 1
        return fn


def test_hosted_steps_go_through_the_lanes_graphs(splits, monkeypatch):
    """The CUDA path's bookkeeping, on the CPU: each run's step warms up, is captured by its
    lane's backend, replays, re-captures when the schedule changes the lr; same numbers."""
    spec = make_spec(epochs=2)
    params = {"plain": {}, "step_lr": {**CONFIGS["adamw_step"], "batch_size": 128}}
    reference = {name: alone(spec, splits, p) for name, p in params.items()}
    backends = []

    def graphs(lane):
        backends.append(_KeepStep())
        return backends[-1]

    monkeypatch.setattr(fast, "wants_graph", lambda cfg, device: fast.uses_step(cfg))
    monkeypatch.setattr(fast, "optimizer_options", lambda cfg, device: {})  # no capturable
    monkeypatch.setattr(Lane, "graphs", graphs)
    host = Host(splits, "cpu")
    for name, p in params.items():
        host.add(name, resolve_trial(spec, p))
    steps = {name: t.runs[0] for name, t in host._trials.items()}
    events = by_trial(host.run())
    for name in params:
        assert_same_metrics([e.metrics for e in events[name]], [m for m, _ in reference[name]])
        assert steps[name].step.graphed
    assert [b.captures for b in backends] == [1, 2]  # step_lr: the lr changed after epoch 1


def test_a_failed_capture_trains_eagerly_with_one_line_naming_the_trial(
    splits, monkeypatch, caplog
):
    spec = make_spec(epochs=2)
    reference = alone(spec, splits, {})
    monkeypatch.setattr(fast, "wants_graph", lambda cfg, device: fast.uses_step(cfg))
    monkeypatch.setattr(fast, "optimizer_options", lambda cfg, device: {})
    monkeypatch.setattr(Lane, "graphs", lambda lane: _KeepStep(RuntimeError("no capture\nhere")))
    caplog.set_level(logging.WARNING, logger="sweeper.trial.step")
    host = Host(splits, "cpu")
    host.add("t7", resolve_trial(spec, {}))
    events = list(host.run())
    lines = [r.getMessage() for r in caplog.records if r.name == "sweeper.trial.step"]
    assert lines == [
        "trial t7: train step not captured as a CUDA graph (RuntimeError: no capture); "
        "training eagerly"
    ]
    assert_same_metrics([e.metrics for e in events], [m for m, _ in reference])


class _Raises(torch.nn.Module):
    """A linear model whose forward raises from its ``after``-th training call on."""

    def __init__(self, n_in: int, n_out: int, after: int) -> None:
        super().__init__()
        self.fc, self.after, self.calls = torch.nn.Linear(n_in, n_out), after, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
            if self.calls >= self.after:
                raise RuntimeError("the model broke\nsecond line")
        return self.fc(x.flatten(1))


@pytest.fixture
def faulty(monkeypatch):
    """Models ``raises_in_step`` and ``raises_at_build``, registered for this test only."""
    from sweeper.models import _api, register_model

    monkeypatch.setattr(_api, "_MODELS", _api._MODELS.copy())

    @register_model("raises_in_step", doc={"raises_in_step": "test: forward raises"})
    def build(*, in_shape: tuple[int, ...] = (1, 28, 28), num_classes: int = 10) -> torch.nn.Module:
        """A linear layer whose 3rd training forward raises."""
        return _Raises(math.prod(in_shape), num_classes, after=3)

    @register_model("raises_at_build", doc={"raises_at_build": "test: builder raises"})
    def broken(
        *, in_shape: tuple[int, ...] = (1, 28, 28), num_classes: int = 10
    ) -> torch.nn.Module:
        """A builder that raises."""
        raise ValueError("no such layer")


def test_a_trial_that_raises_fails_alone(splits, faulty, caplog):
    caplog.set_level(logging.WARNING, logger="sweeper.trial.host")
    spec = make_spec(epochs=2)
    host = Host(splits, "cpu")
    host.add("good", resolve_trial(spec, {}))
    host.add("bad", resolve_trial(make_spec(model={"name": "raises_in_step"}, epochs=2), {}))
    joined = host.add("unbuilt", resolve_trial(make_spec(model={"name": "raises_at_build"}), {}))
    assert not joined and "unbuilt" not in host.trials()
    events = by_trial(host.run())
    (bad,) = events["bad"]
    assert bad.done and bad.metrics is None and bad.error == "RuntimeError: the model broke"
    (unbuilt,) = events["unbuilt"]
    assert unbuilt.error == "ValueError: no such layer"
    lines = [r.getMessage() for r in caplog.records if r.name == "sweeper.trial.host"]
    assert lines == [
        "hosted trial unbuilt failed: ValueError: no such layer",
        "hosted trial bad failed: RuntimeError: the model broke",
    ]
    assert_same_metrics(
        [e.metrics for e in events["good"]], [m for m, _ in alone(spec, splits, {})]
    )


def test_bad_calls_say_what_is_wrong(splits):
    host = Host(splits, "cpu")
    cfg = resolve_trial(make_spec(), {})
    host.add("a", cfg)
    with pytest.raises(ValueError, match="already hosted"):
        host.add("a", cfg)
    with pytest.raises(KeyError, match=r"no hosted trial 'x' \(hosted: a\)"):
        host.pause("x")


# --- the CUDA path: streams and graphs (synthetic data, no data set) -------------------------


def cuda_spec(**train):
    return make_spec(epochs=2, device="cuda", **train)


@pytest.fixture(scope="module")
def synthetic():
    return image_splits()


def eager(spec):
    return spec.model_copy(update={"train": spec.train.model_copy(update={"compile": False})})


def assert_close(hosted, reference, rel=1e-3, acc=0.004):
    for got, want in zip(hosted, reference, strict=True):
        for key in ("train_loss", "val_loss"):
            assert got[key] == pytest.approx(want[key], rel=rel), key
        for key in ("train_acc", "val_acc"):
            assert abs(got[key] - want[key]) <= acc, key


@pytest.mark.gpu
def test_graphed_hosted_trials_train_like_the_eager_loop_on_two_streams(synthetic):
    spec = cuda_spec()
    params = {"adam": {}, "sgd": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "width": 64}}
    host = Host(synthetic, "cuda")
    for name, p in params.items():
        host.add(name, resolve_trial(spec, p))
    trials = dict(host._trials)
    streams = {t.lane.stream for t in trials.values()}
    assert len(streams) == 2 and torch.cuda.default_stream() not in streams
    events = by_trial(host.run())
    for name, p in params.items():
        (run,) = trials[name].runs
        assert run.step is not None and run.step.graphed and run.step.captures == 1
        reference = alone(eager(spec), synthetic, p)
        assert_close([e.metrics for e in events[name]], [m for m, _ in reference])
        together = [e.metrics for e in events[name]]
        solo = Host(synthetic, "cuda")
        solo.add(name, resolve_trial(spec, p))
        assert_close(together, [e.metrics for e in solo.run()], rel=1e-5, acc=0.0)


@pytest.mark.gpu
def test_hosted_dropout_draws_its_own_numbers_on_cuda(synthetic):
    spec = cuda_spec(batch_size=100)
    drop = {"dropout": 0.3}
    host = Host(synthetic, "cuda")
    host.add("drop", resolve_trial(spec, drop))
    host.add("other", resolve_trial(spec, {"dropout": 0.5, "width": 64}))
    together = [e.metrics for e in host.run() if e.trial_id == "drop"]
    solo = Host(synthetic, "cuda")
    solo.add("drop", resolve_trial(spec, drop))
    assert_close(together, [e.metrics for e in solo.run()], rel=1e-5, acc=0.0)


@pytest.mark.gpu
def test_hosted_checkpoint_continues_on_cuda(synthetic):
    spec = cuda_spec(optimizer="sgd", lr=0.05, momentum=0.9)
    host = Host(synthetic, "cuda")
    host.add("a", resolve_trial(spec, {}))
    first, second = list(host.run())
    assert first.state["runs"][0]["order_generator"].is_cpu  # the device-side order's state
    fresh = Host(synthetic, "cuda")
    fresh.add("a", resolve_trial(spec, {}), restore=first.state)
    (resumed,) = list(fresh.run())
    assert resumed.metrics["epoch"] == 2
    assert_close([resumed.metrics], [second.metrics], rel=1e-4, acc=0.002)


class _Syncs(torch.nn.Module):
    """Reads a value to the host in forward: it cannot be captured."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(n_in, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if float(x.sum()) > -1e30:  # a device-to-host copy: illegal while capturing
            return self.fc(x)
        return self.fc(-x)


@pytest.mark.gpu
def test_uncapturable_model_trains_eagerly_in_the_host(synthetic, monkeypatch, caplog):
    from sweeper.models import _api, register_model

    monkeypatch.setattr(_api, "_MODELS", _api._MODELS.copy())

    @register_model("syncs", doc={"syncs": "test: syncs in forward"})
    def build(*, in_shape: tuple[int, ...] = (1, 28, 28), num_classes: int = 10) -> torch.nn.Module:
        """A linear layer that reads a sum to the host."""
        return _Syncs(math.prod(in_shape), num_classes)

    spec = cuda_spec()
    host = Host(synthetic, "cuda")
    host.add("syncs", resolve_trial(make_spec(model={"name": "syncs"}, device="cuda"), {}))
    host.add("mlp", resolve_trial(spec, {}))
    trials = dict(host._trials)
    with caplog.at_level(logging.WARNING, logger="sweeper.trial.step"):
        events = by_trial(host.run())
    lines = [r.getMessage() for r in caplog.records if r.name == "sweeper.trial.step"]
    assert len(lines) == 1 and lines[0].startswith("trial syncs: train step not captured")
    assert not trials["syncs"].runs[0].step.graphed and trials["mlp"].runs[0].step.graphed
    assert [e.metrics["epoch"] for e in events["syncs"]] == [1, 2]
    assert all(math.isfinite(e.metrics["train_loss"]) for e in events["syncs"])
    assert_close(
        [e.metrics for e in events["mlp"]], [m for m, _ in alone(eager(spec), synthetic, {})]
    )
    x = torch.rand(4, device="cuda")  # the device's generator still draws after the failure
    assert x.shape == (4,)
