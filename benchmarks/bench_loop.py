"""Epoch time of the seed's DataLoader loop against sweeper's device-resident batching.

The seed notebooks wrap Fashion-MNIST in a torchvision Dataset with ToTensor + Normalize and
iterate a DataLoader; sweeper keeps the normalised tensors on the trial's device and batches
by index. Same model (MLP depth 2, width 128), optimizer (Adam 1e-3) and data (50,000
training images), one thread. Prints a table; run: .venv/bin/python benchmarks/bench_loop.py
"""

from __future__ import annotations

import os
import statistics
import time

import torch
from torch.nn import functional as F


def seed_style_epoch(root: str, batch_size: int) -> float:
    from torch.utils.data import DataLoader, Subset
    from torchvision import transforms
    from torchvision.datasets import FashionMNIST

    from sweeper.data.fashion_mnist import torchvision_root
    from sweeper.models import get_model

    tv_root, _ = torchvision_root(__import__("pathlib").Path(root))
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.286,), (0.353,))])
    train = Subset(FashionMNIST(str(tv_root), train=True, transform=tf), range(50_000))
    loader = DataLoader(train, batch_size=batch_size, shuffle=True, num_workers=0)
    torch.manual_seed(0)
    model = get_model("mlp", in_shape=(1, 28, 28), num_classes=10, depth=2, width=128)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def sweeper_epoch(root: str, batch_size: int) -> float:
    from sweeper.data import load_splits
    from sweeper.spec import spec_from_dict
    from sweeper.trial import resolve_trial
    from sweeper.trial.loop import DeviceData, Run
    from sweeper.trial.tasks import Classification

    spec = spec_from_dict(
        {"name": "b", "model": {"name": "mlp", "args": {"depth": 2, "width": 128}},
         "train": {"batch_size": batch_size}},
        "bench",
    )  # fmt: skip
    cfg = resolve_trial(spec, {})
    data = DeviceData(load_splits(spec.data, root), torch.device("cpu"))
    run = Run(cfg, data, 0, torch.device("cpu"), (*data.train, None), (*data.val, None))
    t0 = time.perf_counter()
    run.train_epoch(cfg, data, Classification(10))
    return time.perf_counter() - t0


def main() -> None:
    torch.set_num_threads(1)
    root = os.environ.get("SWEEPER_DATA_DIR", "../shared/data")
    repeats = int(os.environ.get("BENCH_REPEATS", "3"))
    print(f"torch {torch.__version__}, 1 thread, {os.cpu_count()} cores, median of {repeats}")
    print(
        f"{'batch':>6} | {'DataLoader loop (s)':>20} | {'device-resident (s)':>20} | {'speed-up':>8}"
    )
    print("-" * 64)
    for bs in (256, 1024):
        a = statistics.median(seed_style_epoch(root, bs) for _ in range(repeats))
        b = statistics.median(sweeper_epoch(root, bs) for _ in range(repeats))
        print(f"{bs:>6} | {a:>20.2f} | {b:>20.2f} | {a / b:>7.1f}x")


if __name__ == "__main__":
    main()
