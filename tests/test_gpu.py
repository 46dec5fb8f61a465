"""GPU checks (skipped without CUDA): trials train on the device, several per GPU, and the
train step captured as one CUDA graph trains like the eager loop (``compile: false``).

No data set is read: images are made in memory (``tests/support/synthetic.py``) and sweeps
use the noisy XOR, so a GPU machine with only the package bundle runs every test here. The
graph tests are quick (2,000 training images, 2 epochs, batches of 128 with a tail of 80):
the whole file's non-slow tests should take well under a minute on one GPU.
"""

from __future__ import annotations

import io
import logging
import math

import pytest
import torch

from sweeper.cli import main
from sweeper.spec import spec_from_dict
from sweeper.store import Study
from sweeper.trial import resolve_trial
from sweeper.trial import step as fast
from sweeper.trial.loop import DeviceData, TrialContext, make_runs, train_trial
from sweeper.trial.tasks import Classification, task_for
from tests.support.synthetic import image_splits

pytestmark = pytest.mark.gpu


def test_trial_trains_on_cuda():
    spec = spec_from_dict(
        {"name": "g", "model": {"name": "lenet5_v4"},
         "train": {"epochs": 2, "batch_size": 64, "device": "cuda"}},
        "test",
    )  # fmt: skip
    final = train_trial(resolve_trial(spec, {}), TrialContext(image_splits(), lambda m, s: None))
    assert final["val_acc"] > 0.5 and final["epoch"] == 2


AUTO_SWEEP = """
name: gpu_auto
method: grid
parameters: {width: {values: [16, 32, 64, 128]}}
model: {name: mlp, args: {depth: 2}}
data: {name: xor}
train: {epochs: 1}
resources: {cpus: 0.5}
"""


@pytest.mark.slow
def test_fractional_gpus_pack_trials(tmp_path, ray_session):
    sweep = tmp_path / "g.yaml"
    sweep.write_text(
        AUTO_SWEEP.replace("gpu_auto", "gpu_pack").replace("{cpus: 0.5}", "{cpus: 0.5, gpus: 0.25}")
    )
    assert main(["run", str(sweep), "--out", str(tmp_path)]) == 0
    df = Study.open("gpu_pack", tmp_path).trials()
    assert len(df) == 4 and set(df["state"]) == {"COMPLETE"}


# --- the captured train step ----------------------------------------------------------------

BATCHES = 16  # per epoch: 15 full batches of 128 and a tail of 80


def cuda_spec(model=None, **train):
    return spec_from_dict(
        {"name": "g", "model": model or {"name": "mlp", "args": {"depth": 2, "width": 64}},
         "train": {"epochs": 2, "batch_size": 128, "device": "cuda", **train}},
        "test",
    )  # fmt: skip


@pytest.fixture(scope="module")
def small():
    return image_splits()


def fit(spec, splits, restore=None):
    """Train one run as ``train_trial`` does; (run, [train + val metrics per epoch])."""
    cfg = resolve_trial(spec, {})
    device = torch.device("cuda")
    fast.configure_backends(device)
    data = DeviceData(splits, device)
    task = task_for(data.info.task, data.info.num_classes)
    (run,) = make_runs(cfg, data, device)
    if restore is not None:
        run.load(restore)
    history = []
    for _ in range(cfg.epochs - (1 if restore is not None else 0)):
        metrics = run.train_epoch(cfg, data, task)
        metrics.update(run.evaluate(run.val_set, cfg.eval_batch_size, task, "val"))
        history.append(metrics)
    return run, history


def eager(spec):
    return spec.model_copy(update={"train": spec.train.model_copy(update={"compile": False})})


def assert_close_metrics(a, b, rel=1e-3, acc=0.004):
    for ma, mb in zip(a, b, strict=True):
        for key in ("train_loss", "val_loss"):
            assert ma[key] == pytest.approx(mb[key], rel=rel), key
        for key in ("train_acc", "val_acc"):
            assert abs(ma[key] - mb[key]) <= acc, key  # 0.004: two validation images


def adam_steps(run):
    return {float(s["step"]) for s in run.optimizer.state_dict()["state"].values()}


@pytest.mark.parametrize(
    ("train", "captures"),
    [
        ({}, 1),
        ({"optimizer": "sgd", "lr": 0.05, "momentum": 0.9}, 1),
        ({"optimizer": "sgd", "lr": 0.1, "lr_schedule": "step", "lr_step_size": 1}, 2),
        ({"lr_schedule": "exponential", "lr_gamma": 0.5}, 2),
    ],
    ids=["adam", "sgd_momentum", "sgd_step_lr", "adam_exp_lr"],
)
def test_graphed_step_trains_like_the_eager_loop(small, train, captures):
    spec = cuda_spec(**train)
    graphed, history = fit(spec, small)
    plain, plain_history = fit(eager(spec), small)
    step = graphed.step
    assert step is not None and step.graphed and step.captures == captures
    assert plain.step is None  # compile: false is the eager loop
    assert_close_metrics(history, plain_history)
    assert graphed.lr() == plain.lr()
    tight = {"rtol": 1e-4, "atol": 1e-5} if train.get("optimizer") == "sgd" else {}
    for pg, pe in zip(graphed.model.parameters(), plain.model.parameters(), strict=True):
        torch.testing.assert_close(pg, pe, **(tight or {"rtol": 1e-3, "atol": 1e-3}))
    if train.get("optimizer", "adam") == "adam":
        assert adam_steps(graphed) == {2.0 * BATCHES}  # no update dropped or repeated


def test_tail_batch_is_trained_and_counted(small):
    graphed, history = fit(cuda_spec(batch_size=300), small)  # 6 x 300 and a tail of 200
    assert graphed.step.graphed
    assert int(graphed.step.sums["n"]) == 2000
    assert adam_steps(graphed) == {2.0 * 7}
    assert all(math.isfinite(m["train_loss"]) for m in history)


def test_conv_model_captured_in_channels_last(small):
    lenet = {"name": "lenet", "args": {"channels": [8, 16], "fc": [64], "batch_norm": True}}
    spec = cuda_spec(model=lenet)  # channels_last: auto -> on for a conv model on CUDA
    graphed, history = fit(spec, small)
    _, plain_history = fit(eager(spec), small)
    conv = next(m for m in graphed.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert graphed.channels_last
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert graphed.step.static[0].is_contiguous(memory_format=torch.channels_last)
    assert graphed.step.graphed
    assert_close_metrics(history, plain_history, rel=1e-2, acc=0.02)  # cuDNN: not bitwise


def test_bf16_step_is_captured_and_finite(small):
    spec = cuda_spec(precision="bf16")
    graphed, history = fit(spec, small)
    _, plain_history = fit(eager(spec), small)
    assert graphed.step.graphed
    assert all(math.isfinite(m["train_loss"]) for m in history)
    assert history[-1]["val_acc"] > 0.5
    assert_close_metrics(history, plain_history, rel=2e-2, acc=0.02)


def test_resume_from_checkpoint_recaptures_and_continues(small):
    spec = cuda_spec()
    ctx_reports = []
    ctx = TrialContext(small, lambda m, s: ctx_reports.append((m, _to_cpu(s()))))
    full = train_trial(resolve_trial(spec, {}), ctx)
    after_one = ctx_reports[0][1]  # as the trainable loads it: map_location="cpu"
    assert after_one["runs"][0]["optimizer"]["state"][0]["step"].is_cpu
    ctx = TrialContext(small, lambda m, s: None, restore=after_one)
    resumed = train_trial(resolve_trial(spec, {}), ctx)
    for key in ("train_loss", "val_loss", "test_loss"):
        assert resumed[key] == pytest.approx(full[key], rel=1e-4), key
    run, _ = fit(spec, small, restore=after_one["runs"][0])
    steps = [s["step"] for s in run.optimizer.state.values()]
    assert all(s.is_cuda and s.dtype == torch.float32 for s in steps)
    assert run.optimizer.param_groups[0]["capturable"] is True
    assert run.step.graphed and adam_steps(run) == {2.0 * BATCHES}


def _to_cpu(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, map_location="cpu", weights_only=False)


class _Syncs(torch.nn.Module):
    """A model that reads a value to the host in forward: it cannot be captured."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, x):
        if float(x.sum()) > -1e30:  # a device-to-host copy: illegal while capturing
            return self.fc(x)
        return self.fc(-x)


def test_uncapturable_model_falls_back_to_eager_with_one_line(caplog):
    torch.manual_seed(0)
    model = _Syncs().cuda()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, capturable=True)
    step = fast.TrainStep(model, optimizer, Classification(3), 16, graphs=fast.CudaGraphs())
    x, y = torch.randn(100, 8, device="cuda"), torch.randint(0, 3, (100,), device="cuda")
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 100, 16)]
    with caplog.at_level(logging.WARNING, logger="sweeper.trial.step"):
        first = step.epoch(batches)
        second = step.epoch(batches)
    lines = [r.getMessage() for r in caplog.records if r.name == "sweeper.trial.step"]
    assert len(lines) == 1 and "not captured" in lines[0], lines
    assert not step.graphed and int(first["n"]) == int(second["n"]) == 100
    assert math.isfinite(float(second["loss"])) and float(second["loss"]) < float(first["loss"])
    assert adam_steps(step) == {14.0}  # 2 epochs x 7 batches, the failed capture trained nothing


def test_probe_measures_a_train_step():
    from sweeper.trial.probe import probe_gpu

    spec = spec_from_dict({"name": "p", "model": {"name": "mlp"}}, "test")
    probe = probe_gpu(spec, {}, image_splits(100, 10, 10).info)
    assert 0 < probe.peak_bytes < probe.total_bytes and probe.name


def test_probe_in_a_fresh_process_initialises_cuda_first():
    """On the H200 the probe's first CUDA call was ``reset_peak_memory_stats``, which raised
    "Invalid device argument" in a process where nothing had made a CUDA context yet."""
    import subprocess
    import sys

    code = (
        "from sweeper.spec import spec_from_dict\n"
        "from sweeper.trial.probe import probe_gpu\n"
        "from tests.support.synthetic import image_splits\n"
        "spec = spec_from_dict({'name': 'p', 'model': {'name': 'mlp'}}, 'test')\n"
        "p = probe_gpu(spec, {}, image_splits(100, 10, 10).info)\n"
        "assert 0 < p.peak_bytes < p.total_bytes, p\n"
    )
    from tests.support import REPO

    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


# --- random numbers on the device after captures -----------------------------------------------


def _fail_a_capture() -> None:
    """A train step whose capture fails (its model syncs with the host in forward)."""
    model = _Syncs().cuda()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, capturable=True)
    step = fast.TrainStep(model, optimizer, Classification(3), 16, graphs=fast.CudaGraphs())
    x, y = torch.randn(64, 8, device="cuda"), torch.randint(0, 3, (64,), device="cuda")
    step.epoch([(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)])
    assert step.captures == 0 and not step.graphed  # the capture was tried and failed


def _assert_device_draws_work() -> None:
    torch.manual_seed(1)
    a = torch.randn(1000, device="cuda")
    drop = torch.nn.functional.dropout(torch.ones(1000, device="cuda"), 0.5)
    torch.manual_seed(1)
    assert torch.equal(a, torch.randn(1000, device="cuda"))  # seeded draws repeat
    assert 300 < int((drop == 0).sum()) < 700


def test_a_failed_capture_leaves_the_device_generator_usable():
    """A failed capture left torch's default CUDA generator in capture mode: the next draw on
    the device raised "Offset increment outside graph capture encountered unexpectedly"."""
    _fail_a_capture()
    _assert_device_draws_work()


def test_two_graphed_trials_then_a_probe_in_one_process():
    """A reused Ray actor runs trial after trial in one process, as here: two graphed
    trials whose models draw dropout noise on the device inside their graphs, a model
    that cannot be captured, then the placement probe (which draws on the device)."""
    from sweeper.trial.probe import probe_gpu

    splits = image_splits(600, 100, 100)
    model = {"name": "mlp", "args": {"depth": 2, "width": 64, "dropout": 0.2}}
    for seed in (0, 1):
        spec = cuda_spec(model=model, seed=seed, epochs=1)
        _, history = fit(spec, splits)
        assert math.isfinite(history[-1]["train_loss"])
    _fail_a_capture()
    _assert_device_draws_work()
    probe = probe_gpu(cuda_spec(), {}, splits.info)
    assert 0 < probe.peak_bytes < probe.total_bytes


def test_check_prints_the_gpu_placement(tmp_path, capsys):
    sweep = tmp_path / "g.yaml"
    sweep.write_text(AUTO_SWEEP)
    assert main(["check", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "resources    cuda: 1 host (GPU each, " in out and "executor host" in out
    assert main(["check", str(sweep), "--set", "resources.executor=process"]) == 0
    assert "trials per GPU" in capsys.readouterr().out


@pytest.mark.slow
def test_auto_gpus_pack_trials_from_a_probe(tmp_path, ray_session):
    """gpus: auto (the default): 2 CPUs at 0.5 a trial and 4 trials -> 4 trials per GPU."""
    sweep = tmp_path / "g.yaml"
    sweep.write_text(AUTO_SWEEP)
    assert main(["run", str(sweep), "--out", str(tmp_path)]) == 0
    study = Study.open("gpu_auto", tmp_path)
    placement = study.meta()["placement"]
    assert placement["device"] == "cuda" and placement["trials_per_gpu"] == 4
    assert placement["gpus"] == 0.25 and placement["trial_bytes"] > 0
    assert placement["executor"] == "host" and placement["hosts"]["hosts"] == 1
    df = study.trials()
    assert len(df) == 4 and set(df["state"]) == {"COMPLETE"}


@pytest.mark.slow
def test_a_failed_probe_still_runs_the_study(tmp_path, ray_session, monkeypatch, capsys):
    """The probe's task fails: one warning line, the fallback share, every trial runs."""
    from sweeper.engine import placement
    from sweeper.trial.probe import ProbeFailed

    monkeypatch.setattr(
        placement, "_probe_on_ray", lambda spec, info: ProbeFailed("RuntimeError: injected")
    )
    sweep = tmp_path / "g.yaml"
    sweep.write_text(AUTO_SWEEP.replace("gpu_auto", "gpu_fallback"))
    assert main(["run", str(sweep), "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: the GPU probe failed (RuntimeError: injected)") == 1
    study = Study.open("gpu_fallback", tmp_path)
    placement_meta = study.meta()["placement"]
    assert placement_meta["bound"] == "fallback" and placement_meta["gpus"] == 0.125
    assert set(study.trials()["state"]) == {"COMPLETE"}
