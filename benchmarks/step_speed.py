"""Epoch time of the eager loop against the static-buffer step, and the CUDA-graphed step.

Seed-grid MLPs (depth 2/5/10, width 32-256, batch 256-2048, Adam 1e-3) on a Fashion-MNIST
slice that lives on the device. Per config and mode: one untimed epoch (warm-up and, on
CUDA, the capture), then the median of ``--repeats`` timed epochs (each ends with the
epoch's one device-to-host read of the metrics, so GPU work is included). Modes:

- ``eager``: ``compile: false``, the plain loop (one kernel launch per op, from Python);
- ``static``: :class:`~sweeper.trial.step.TrainStep` without capture (static buffers, sums
  on the device; on the CPU this is what ``compile: true`` runs, and should equal eager);
- ``graphed``: ``compile: true`` on CUDA: the whole step replayed as one CUDA graph.

Run unchanged on a CPU or a GPU machine (``graphed`` only where CUDA is present):
``.venv/bin/python benchmarks/step_speed.py [--train-size 10000] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from sweeper.data import load_splits
from sweeper.spec import spec_from_dict
from sweeper.trial import resolve_trial
from sweeper.trial import step as fast
from sweeper.trial.loop import DeviceData, make_runs, resolve_device
from sweeper.trial.tasks import task_for

# (depth, width, batch) from the seed's MLP grid
CONFIGS = ((2, 32, 256), (2, 256, 2048), (5, 128, 512), (10, 64, 256), (10, 256, 1024))


def make_cfg(depth: int, width: int, batch: int, train_size: int, compile_step: bool):
    spec = spec_from_dict(
        {"name": "bench", "model": {"name": "mlp", "args": {"depth": depth, "width": width}},
         "data": {"train_size": train_size, "val_size": 1000, "test_size": 1000},
         "train": {"batch_size": batch, "compile": compile_step}},
        "bench",
    )  # fmt: skip
    return spec, resolve_trial(spec, {})


def epoch_seconds(mode: str, config: tuple[int, int, int], splits, args) -> float:
    """Median seconds of one training epoch in ``mode`` (after one untimed epoch)."""
    _, eager_cfg = make_cfg(*config, args.train_size, compile_step=False)
    _, step_cfg = make_cfg(*config, args.train_size, compile_step=True)
    device = resolve_device("auto")
    data = DeviceData(splits, device)
    task = task_for(data.info.task, data.info.num_classes)
    # eager and static share the plain optimizer; graphed gets capturable Adam on CUDA
    (run,) = make_runs(step_cfg if mode == "graphed" else eager_cfg, data, device)
    if mode == "static":
        run.step = fast.TrainStep(run.model, run.optimizer, task, step_cfg.batch_size)
    cfg = eager_cfg if mode == "eager" else step_cfg
    times = []
    for _ in range(args.repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        run.train_epoch(cfg, data, task)
        times.append(time.perf_counter() - t0)
    if mode == "graphed":
        assert run.step is not None and run.step.graphed, "the step was not captured"
    return statistics.median(times[1:])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = os.environ.get("SWEEPER_DATA_DIR", "../shared/data")
    spec, _ = make_cfg(*CONFIGS[0], args.train_size, compile_step=True)
    splits = load_splits(spec.data, root)
    device = resolve_device("auto")
    fast.configure_backends(device)
    modes = ["eager", "static"] + (["graphed"] if device.type == "cuda" else [])
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {args.threads} thr"
    print(f"torch {torch.__version__}, {where}, {os.cpu_count()} cores, "
          f"{args.train_size} images, median of {args.repeats} epochs")  # fmt: skip
    head = " | ".join(f"{m} s" for m in modes)
    print(f"| depth | width | batch | steps | {head} | eager / {modes[-1]} |")
    print("|---" * (5 + len(modes)) + "|")
    for config in CONFIGS:
        secs = [epoch_seconds(mode, config, splits, args) for mode in modes]
        steps = -(-args.train_size // config[2])
        cells = " | ".join(f"{s:.3f}" for s in secs)
        print(f"| {config[0]} | {config[1]} | {config[2]} | {steps} | {cells} | "
              f"{secs[0] / secs[-1]:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
