"""A plain W&B training script: Fashion-MNIST, a small MLP, hyperparameters from wandb.config.

Nothing here knows about sweeper. Run it by hand (``python train.py --lr 0.003``), with
W&B's own agent, or as the trials of ``sweeper run sweep.yaml``: each trial runs it with
W&B's agent environment, so ``wandb.config`` holds the trial's values and every
``wandb.log`` call reaches the sweep.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import time
from pathlib import Path

import torch
import wandb
from torch import nn
from torchvision.datasets import FashionMNIST

# torchvision wants all four files, even for the training set alone.
RAW = tuple(
    f"{s}-{k}-idx{d}-ubyte" for s in ("train", "t10k") for k, d in (("images", 3), ("labels", 1))
)


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train_size", type=int, default=6000)
    p.add_argument("--val_size", type=int, default=2000)
    p.add_argument("--data_dir", default=os.environ.get("SWEEPER_DATA_DIR", "data"))
    return p.parse_args()


def torchvision_root(data_dir: Path) -> Path:
    """torchvision reads uncompressed IDX files; gunzip ``.gz`` ones into a cache once."""
    raw = data_dir / "FashionMNIST" / "raw"
    if all((raw / name).is_file() for name in RAW):
        return data_dir
    cache = Path(os.environ.get("SWEEPER_CACHE_DIR") or Path.home() / ".cache" / "sweeper")
    cache = cache / "own_script"  # beside sweeper's own unpacked copies
    out = cache / "FashionMNIST" / "raw"
    out.mkdir(parents=True, exist_ok=True)
    for name in RAW:
        if not (out / name).is_file():
            tmp = out / f".{name}.{os.getpid()}"
            with gzip.open(raw / f"{name}.gz", "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(tmp, out / name)  # trials running at once never see half a file
    return cache


def load(cfg: wandb.Config, data_dir: Path) -> tuple[torch.Tensor, ...]:
    data = FashionMNIST(str(torchvision_root(data_dir)), train=True, download=False)
    x = data.data.float().div(255).flatten(1)  # (N, 784)
    y = data.targets
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(y), generator=g)
    train, val = order[: cfg.train_size], order[cfg.train_size : cfg.train_size + cfg.val_size]
    return x[train], y[train], x[val], y[val]


def main() -> None:
    args = arguments()
    run = wandb.init(config=vars(args))  # a sweep's values override these defaults
    cfg = run.config
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x, y, xv, yv = load(cfg, Path(args.data_dir))
    model = nn.Sequential(nn.Linear(784, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 10))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        total, n = 0.0, 0
        for i in torch.randperm(len(y)).split(cfg.batch_size):
            loss = nn.functional.cross_entropy(model(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + loss.item() * len(i), n + len(i)
        model.eval()
        with torch.no_grad():
            val_acc = (model(xv).argmax(1) == yv).float().mean().item()
        wandb.log(
            {"epoch": epoch + 1, "loss": total / n, "val_acc": val_acc,
             "epoch_s": time.perf_counter() - t0}
        )  # fmt: skip
    run.finish()


if __name__ == "__main__":
    main()
