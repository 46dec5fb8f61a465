"""Where trials run: ``resources.gpus`` auto, GPU shares from a probe, and the CPU untouched."""

from __future__ import annotations

import pytest

from sweeper.cli import main
from sweeper.engine.placement import (
    CONTEXT_BYTES,
    HEADROOM,
    fills_the_cpus,
    place,
    place_here,
    share,
    trials_per_gpu,
)
from sweeper.errors import SpecError
from sweeper.spec import spec_from_dict
from sweeper.trial.probe import GpuProbe, ProbeFailed, data_bytes

GiB = 2**30
H200 = GpuProbe("NVIDIA H200", 141 * GiB, 120 * 2**20)


def _spec(resources=None, train=None):
    return spec_from_dict(
        {
            "name": "p",
            "model": {"name": "mlp"},
            "train": {"epochs": 1, **(train or {})},
            "resources": resources or {},
        },
        "p.yaml",
    )


def test_gpus_default_to_auto_and_cpu_without_a_gpu():
    spec = _spec()
    assert spec.resources.gpus == "auto"
    p = place(spec, n_trials=8, num_cpus=2, num_gpus=0)
    assert (p.device, p.gpus, p.at_once) == ("cpu", 0.0, 2)
    assert p.describe() == "cpu: 2 trials at a time (1 CPU each, no GPU seen)"


@pytest.mark.parametrize(
    ("resources", "n_trials", "cpus", "fills"),
    [
        ({}, 8, 2, True),  # a trial per CPU, more trials than CPUs
        ({}, 1, 2, False),  # one trial: the second CPU's worker would wait for nothing
        ({"max_concurrent": 1}, 8, 2, False),
        ({"cpus": 2}, 8, 2, False),  # one trial takes both CPUs: one worker
        ({"cpus": 0.5}, 4, 2, True),  # four trials at once on two CPUs
        ({"cpus": 4}, 8, 2, False),  # does not fit: placement's one-line error, not this
    ],
)
def test_ray_starts_a_worker_per_cpu_only_when_the_trials_take_them_all(
    resources, n_trials, cpus, fills
):
    assert fills_the_cpus(_spec(resources), n_trials, cpus) is fills


def test_one_big_gpu_packs_up_to_the_cap():
    p = place(_spec(), n_trials=96, num_cpus=16, num_gpus=1, probe=H200, data_bytes=220 * 2**20)
    assert (p.device, p.trials_per_gpu, p.gpus, p.at_once, p.bound) == (
        "cuda", 8, 0.125, 8, "cap",
    )  # fmt: skip
    assert p.trial_bytes == CONTEXT_BYTES + 220 * 2**20 + int(HEADROOM * H200.peak_bytes)
    text = p.describe()
    assert "8 trials per GPU (0.125 GPU, 1 CPU each" in text and "NVIDIA H200 (141 GiB)" in text


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # a small GPU and a big step: memory decides
        (dict(gpu_bytes=8 * GiB, trial_bytes=3 * GiB, cpus_per_gpu=16, cpus=1, cap=8, trials=96),
         (2, "memory")),
        # 4 cores per GPU at 1 CPU a trial
        (dict(gpu_bytes=80 * GiB, trial_bytes=GiB, cpus_per_gpu=4, cpus=1, cap=8, trials=96),
         (4, "cpus")),
        # 3 trials need only 3 slots: each gets a third of the GPU
        (dict(gpu_bytes=80 * GiB, trial_bytes=GiB, cpus_per_gpu=16, cpus=1, cap=8, trials=3),
         (3, "trials")),
        # nothing fits by memory: still one trial per GPU
        (dict(gpu_bytes=GiB, trial_bytes=4 * GiB, cpus_per_gpu=16, cpus=1, cap=8, trials=9),
         (1, "memory")),
    ],
)  # fmt: skip
def test_trials_per_gpu_takes_the_tightest_limit(kwargs, expected):
    assert trials_per_gpu(**kwargs) == expected


def test_shares_never_add_up_past_one_gpu():
    for k in range(1, 65):
        assert k * share(k) <= 1.0
        assert int(1 / share(k) + 1e-9) == k  # Ray fits exactly k of them on one GPU


def test_two_gpus_split_the_trials_and_the_cap_is_the_specs():
    spec = _spec({"max_trials_per_gpu": 2})
    p = place(spec, n_trials=96, num_cpus=32, num_gpus=2, probe=H200)
    assert (p.trials_per_gpu, p.gpus, p.at_once, p.bound) == (2, 0.5, 4, "cap")
    p = place(_spec(), n_trials=6, num_cpus=32, num_gpus=2, probe=H200)
    assert (p.trials_per_gpu, p.at_once, p.bound) == (3, 6, "trials")


def test_a_number_is_used_as_it_is_and_max_concurrent_still_bounds():
    p = place(_spec({"gpus": 0.25, "max_concurrent": 3}), n_trials=10, num_cpus=8, num_gpus=1)
    assert (p.device, p.gpus, p.trials_per_gpu, p.at_once, p.bound) == (
        "cuda", 0.25, 4, 3, "spec",
    )  # fmt: skip
    p = place(_spec({"gpus": 0}), n_trials=10, num_cpus=8, num_gpus=4)
    assert (p.device, p.gpus, p.at_once) == ("cpu", 0.0, 8)
    assert "no GPU seen" not in p.describe()


def test_cpu_trials_on_a_gpu_machine_take_no_share():
    p = place(_spec(train={"device": "cpu"}), n_trials=4, num_cpus=4, num_gpus=1)
    assert (p.device, p.gpus) == ("cpu", 0.0)


@pytest.mark.parametrize(
    ("resources", "train", "gpus", "key", "words"),
    [
        ({"gpus": 0.5}, {}, 0, "resources.gpus", "a trial asks for 0.5 GPUs, but 0 are seen"),
        ({}, {"device": "cuda"}, 0, "train.device", "cuda needs a GPU share"),
        ({"gpus": 0}, {"device": "cuda"}, 1, "train.device", "resources.gpus is 0"),
        ({"gpus": 1}, {"device": "cpu"}, 1, "resources.gpus", "reserves a GPU for trials"),
        ({"cpus": 4}, {}, 0, "resources.cpus", "a trial asks for 4 CPUs but Ray has 2"),
    ],
)
def test_impossible_placements_are_one_line_errors(resources, train, gpus, key, words):
    with pytest.raises(SpecError) as err:
        place(_spec(resources, train), n_trials=4, num_cpus=2, num_gpus=gpus, probe=H200)
    assert err.value.key == key and words in err.value.message


def test_check_names_the_file_and_prints_the_plan(sweep_file, capsys):
    path = sweep_file()
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "  resources    cpu: " in out and "1 CPU each" in out
    assert main(["check", str(path), "--set", "resources.gpus=0.5"]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"sweeper: error: {path}: resources.gpus: a trial asks for 0.5 GPUs, but 0 are seen\n"
    )


def test_cpu_trials_never_touch_cuda(monkeypatch, data_root):
    """``gpus: 0`` (or no GPU): no CUDA context is made, nor are devices counted.

    (torch's own optimizers ask ``torch.cuda.is_available()``, which makes no context.)"""
    import torch

    from sweeper.data import load_splits
    from sweeper.trial import resolve_trial
    from sweeper.trial.loop import TrialContext, train_trial

    def refuse(*args, **kwargs):
        raise AssertionError("CUDA was touched")

    for name in ("device_count", "init", "_lazy_init", "current_device"):
        monkeypatch.setattr(torch.cuda, name, refuse)
    spec = spec_from_dict(
        {"name": "c", "model": {"name": "mlp", "args": {"depth": 1, "width": 8}},
         "data": {"train_size": 256, "val_size": 64, "test_size": 64},
         "train": {"epochs": 1, "batch_size": 64}, "resources": {"gpus": 0}},
        "c.yaml",
    )  # fmt: skip
    splits = load_splits(spec.data, data_root)
    assert place_here(spec, 1, lambda: splits, "c.yaml").device == "cpu"
    out = train_trial(
        resolve_trial(spec, {}), TrialContext(splits, lambda m, s: None, device="cpu")
    )
    assert out["epoch"] == 1 and not torch.cuda.is_initialized()


def test_data_bytes_counts_what_a_trial_keeps_on_its_device(data_root):
    from sweeper.data import load_splits

    spec = _spec()
    spec = spec.model_copy(
        update={
            "data": spec.data.model_copy(
                update={"train_size": 100, "val_size": 50, "test_size": 20}
            )
        }
    )
    splits = load_splits(spec.data, data_root)
    assert data_bytes(splits) == 170 * 784 * 4 + 170 * 8


# --- a probe that fails never stops a study --------------------------------------------------

XOR_AUTO = """
name: xor_auto
method: grid
parameters: {width: {values: [8, 16]}}
model: {name: mlp, args: {depth: 1}}
data: {name: xor}
train: {epochs: 1}
"""


def test_a_failed_probe_falls_back_to_one_share_per_cap():
    spec = _spec({"max_trials_per_gpu": 8})
    failed = ProbeFailed("RuntimeError: Invalid device argument")
    p = place(spec, n_trials=96, num_cpus=16, num_gpus=1, probe=failed)
    assert (p.device, p.gpus, p.trials_per_gpu, p.bound) == ("cuda", 0.125, 8, "fallback")
    assert p.as_dict()["bound"] == "fallback" and p.trial_bytes is None
    assert p.warning == (
        "warning: the GPU probe failed (RuntimeError: Invalid device argument); each trial "
        "gets 1/8 of a GPU (resources.max_trials_per_gpu)"
    )
    assert "set by fallback" in p.describe()
    assert place(spec, n_trials=4, num_cpus=16, num_gpus=1, probe=H200).warning is None


def test_check_prints_the_fallback_when_the_probe_raises(tmp_path, capsys, monkeypatch):
    """A machine that counts a GPU whose probe fails (here: this CPU-only machine, whose
    CUDA build finds no driver): ``check`` says so in one line and plans the fallback."""
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    sweep = tmp_path / "x.yaml"
    sweep.write_text(XOR_AUTO)
    assert main(["check", str(sweep)]) == 0
    out, err = capsys.readouterr()
    warnings = [line for line in err.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("warning: the GPU probe failed ("), err
    assert "1/8 of a GPU" in warnings[0] and "Traceback" not in err
    # the default executor on a GPU is the host: it holds what the fallback allows
    assert "resources    cuda: 1 host (GPU each, 2 trials at a time each; set by fallback)" in out
    assert "executor host" in out
    assert main(["check", str(sweep), "--set", "resources.executor=process"]) == 0
    out = capsys.readouterr().out
    assert "resources    cuda: 1 x GPU, 8 trials per GPU (0.125 GPU" in out
    assert "set by fallback" in out and "executor process" in out


def test_a_raising_probe_is_named_in_the_warning(tmp_path, capsys, monkeypatch):
    import torch

    from sweeper.trial import probe

    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(probe, "probe_gpu", oom)
    sweep = tmp_path / "x.yaml"
    sweep.write_text(XOR_AUTO)
    assert main(["check", str(sweep), "--set", "resources.max_trials_per_gpu=4",
                 "--set", "resources.executor=process"]) == 0  # fmt: skip
    out, err = capsys.readouterr()
    assert err.strip() == (
        "warning: the GPU probe failed (OutOfMemoryError: CUDA out of memory. Tried to "
        "allocate 2.00 GiB); each trial gets 1/4 of a GPU (resources.max_trials_per_gpu)"
    )
    assert "4 trials per GPU (0.25 GPU" in out


@pytest.mark.slow
def test_a_probe_that_fails_in_its_ray_worker_falls_back(monkeypatch, ray_session):
    """The probe's Ray task really runs and really fails (no driver on this machine)."""
    import ray

    from sweeper.data import load_splits
    from sweeper.engine import placement

    spec = spec_from_dict({"name": "r", "model": {"name": "mlp"}, "data": {"name": "xor"}}, "r")
    splits = load_splits(spec.data, ".")
    seen = ray.cluster_resources()
    monkeypatch.setattr(ray, "cluster_resources", lambda: {**seen, "GPU": 1.0})
    monkeypatch.setattr(placement, "PROBE_TASK", {"num_cpus": 0, "max_calls": 1})  # no GPU here
    p = placement.place_on_ray(spec, 16, splits, "r.yaml")
    assert (p.device, p.bound, p.gpus, p.trials_per_gpu) == ("cuda", "fallback", 0.125, 8)
    assert p.probe_error and p.warning.startswith("warning: the GPU probe failed (")
