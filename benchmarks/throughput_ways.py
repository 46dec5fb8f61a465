"""The four ways of :mod:`sweep_throughput`, each run in its own interpreter (``--child``).

The seed-style trainer (torchvision Dataset, ToTensor + Normalize, DataLoader, batches moved
to the device each step), plain Ray Tune around it, and the bare loop (sweeper's training by
hand: resident tensors, batches by index). Models, optimizers, configs and the data split
are sweeper's own (``sweeper.models``, ``sweeper.registry.optimizers``, ``resolve_trial``,
``sweeper.data``), so every way trains the same networks on the same images.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any


def job_spec(job: dict[str, Any]) -> Any:
    """The sweep file's spec with the job's epochs, data slice and data root."""
    from sweeper.plan import resolve_data_root
    from sweeper.spec import load_spec

    overrides = [f"train.epochs={job['epochs']}"]
    if job["train_size"]:
        overrides.append(f"data.train_size={job['train_size']}")
    spec = load_spec(job["sweep"], overrides)
    root, _ = resolve_data_root(spec, job["data_dir"])
    return spec.model_copy(update={"data": spec.data.model_copy(update={"root": root})})


def seed_loaders(spec: Any) -> tuple[Any, Any, Any]:
    """torchvision datasets (ToTensor + Normalize) over sweeper's own split of the images."""
    import numpy as np
    from torch.utils.data import Subset
    from torchvision import transforms
    from torchvision.datasets import FashionMNIST

    from sweeper.data._api import split_train_val, subsample
    from sweeper.data.fashion_mnist import INFO, torchvision_root

    d = spec.data
    tv_root, download = torchvision_root(Path(d.root))
    tf = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((INFO.mean,), (INFO.std,))]
    )
    train = FashionMNIST(str(tv_root), train=True, transform=tf, download=download)
    test = FashionMNIST(str(tv_root), train=False, transform=tf, download=download)
    # sweeper's split, applied to the indices: the same images in every way
    idx, n_test = np.arange(len(train)), np.arange(len(test))
    tr, _, va, _ = split_train_val(idx, idx, d.val_size, d.split_seed, d.train_size)
    te, _ = subsample(n_test, n_test, d.test_size, d.split_seed)
    return Subset(train, tr.tolist()), Subset(train, va.tolist()), Subset(test, te.tolist())


def seed_trial(spec: Any, params: dict[str, Any], sets: tuple, report: Any = None) -> dict:
    """The seed-style loop: DataLoader batches moved to the device each step."""
    import torch
    from torch.nn import functional as F
    from torch.utils.data import DataLoader

    from sweeper.models import get_model
    from sweeper.registry.optimizers import build_optimizer
    from sweeper.trial import resolve_trial

    cfg = resolve_trial(spec, params)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)
    model = get_model(cfg.model, in_shape=(1, 28, 28), num_classes=10, **cfg.model_args).to(dev)
    opt = build_optimizer(cfg.optimizer, model.parameters(), cfg.optimizer_kwargs)
    train, val, test = sets
    loader = DataLoader(train, batch_size=cfg.batch_size, shuffle=True)

    def accuracy(split: Any) -> float:
        model.eval()
        hits = 0
        with torch.no_grad():
            for x, y in DataLoader(split, batch_size=cfg.eval_batch_size):
                hits += int((model(x.to(dev)).argmax(1) == y.to(dev)).sum())
        model.train()
        return hits / len(split)

    out: dict[str, Any] = {}
    for epoch in range(cfg.epochs):
        for x, y in loader:
            loss = F.cross_entropy(model(x.to(dev)), y.to(dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
        out = {"epoch": epoch + 1, "val_acc": accuracy(val)}
        if epoch + 1 == cfg.epochs:
            out["test_acc"] = accuracy(test)
        if report is not None:
            report(out)
    return {"params": params, **out}


def bare_trial(spec: Any, params: dict[str, Any], data: Any) -> dict:
    """sweeper's training without sweeper: resident tensors, batches by index."""
    import torch
    from torch.nn import functional as F

    from sweeper.models import get_model
    from sweeper.registry.optimizers import build_optimizer
    from sweeper.trial import resolve_trial

    cfg = resolve_trial(spec, params)
    (x, y), (xv, yv), (xt, yt) = data
    torch.manual_seed(cfg.seed)
    model = get_model(cfg.model, in_shape=(1, 28, 28), num_classes=10, **cfg.model_args)
    model = model.to(x.device)
    opt = build_optimizer(cfg.optimizer, model.parameters(), cfg.optimizer_kwargs)
    gen = torch.Generator().manual_seed(cfg.seed)

    @torch.inference_mode()
    def accuracy(xs: Any, ys: Any) -> float:
        model.eval()
        hits = sum(
            int((model(xs[i : i + cfg.eval_batch_size]).argmax(1) == ys[i : i + cfg.eval_batch_size]).sum())
            for i in range(0, len(xs), cfg.eval_batch_size)
        )  # fmt: skip
        model.train()
        return hits / len(xs)

    out: dict[str, Any] = {}
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(x), generator=gen).to(x.device)
        for start in range(0, len(x), cfg.batch_size):
            batch = order[start : start + cfg.batch_size]
            loss = F.cross_entropy(model(x[batch]), y[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        out = {"epoch": epoch + 1, "val_acc": accuracy(xv, yv)}
    out["test_acc"] = accuracy(xt, yt)
    return {"params": params, **out}


def resident(spec: Any) -> tuple:
    """The splits as normalised float tensors on the device (sweeper's DeviceData, by hand)."""
    import torch

    from sweeper.data import load_splits

    s = load_splits(spec.data, spec.data.root)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def tensors(x: Any, y: Any) -> tuple:
        x = torch.from_numpy(x).to(dev).float().div_(255).sub_(s.info.mean).div_(s.info.std)
        return x, torch.from_numpy(y).to(dev).long()

    return tensors(s.x_train, s.y_train), tensors(s.x_val, s.y_val), tensors(s.x_test, s.y_test)


def run_ray(spec: Any, configs: list[dict[str, Any]]) -> list[dict]:
    """Plain Ray Tune, default settings: a grid over the configs, the seed trainer."""
    import ray
    import torch
    from ray import cloudpickle, tune

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers lack benchmarks/
    ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    gpus = 1 if torch.cuda.is_available() else 0

    def trainable(config: dict[str, Any]) -> None:
        seed_trial(spec, config["params"], seed_loaders(spec), report=tune.report)

    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1, "gpu": gpus}),
        param_space={"params": tune.grid_search(configs)},
        tune_config=tune.TuneConfig(metric="val_acc", mode="max"),
        run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(prefix="plain-ray-"), verbose=0),
    )
    results = [
        {"params": r.config["params"], **{k: r.metrics.get(k) for k in ("val_acc", "test_acc")}}
        for r in tuner.fit()
    ]
    ray.shutdown()
    return results


def run_way(way: str, job: dict[str, Any]) -> list[dict]:
    """Train the job's configs one way (in this interpreter); returns each config's result."""
    configs = job["configs"]
    if job.get("threads"):
        import torch

        torch.set_num_threads(job["threads"])
    spec = job_spec(job)
    if way == "ray":
        return run_ray(spec, configs)
    if way == "seed":
        sets = seed_loaders(spec)
        return [seed_trial(spec, c, sets) for c in configs]
    data = resident(spec)
    return [bare_trial(spec, c, data) for c in configs]
