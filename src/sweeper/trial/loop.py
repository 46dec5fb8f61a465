"""``train_trial(config, context)``: build, train and evaluate one config.

Everything comes in through the arguments (no globals), so the same function runs in a
Ray worker, in a test, or in a notebook. The data live on the trial's device for the whole
trial and are batched by index; all repeats of a config train in lockstep, so the metrics
reported per epoch are means over repeats (with ``*_std`` beside them when repeats > 1).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from sweeper.data import Splits
from sweeper.models import count_params, get_model
from sweeper.optimizers import build_optimizer
from sweeper.trial.config import TrialConfig

Report = Callable[[dict[str, Any], "Callable[[], dict[str, Any]] | None"], None]


@dataclass
class TrialContext:
    """What the caller hands a trial.

    Attributes:
        data: the dataset's splits (numpy, uint8 images).
        report: ``report(metrics, state_fn)`` once per epoch; ``state_fn()`` returns the
            checkpoint to save (or is None when checkpoints are off).
        restore: a checkpoint from ``state_fn`` to continue from, or None.
        num_threads: CPU threads for torch (the CPUs the scheduler gave this trial).
    """

    data: Splits
    report: Report
    restore: dict[str, Any] | None = None
    num_threads: int | None = None


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when there is one."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


class DeviceData:
    """The splits as tensors on one device: images normalised to float32, labels int64."""

    def __init__(self, splits: Splits, device: torch.device) -> None:
        info = splits.info
        self.info = info

        def images(x: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(np.ascontiguousarray(x)).to(device)
            if t.dtype == torch.uint8:
                return t.float().div_(255.0).sub_(info.mean).div_(info.std)
            return t.float()

        def labels(y: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(y)).to(device).long()

        self.train = (images(splits.x_train), labels(splits.y_train))
        self.val = (images(splits.x_val), labels(splits.y_val))
        self.test = (images(splits.x_test), labels(splits.y_test))


class Run:
    """One repeat of a config: a model, its optimizer and its shuffling generator."""

    def __init__(self, cfg: TrialConfig, data: DeviceData, seed: int, device: torch.device):
        torch.manual_seed(seed)
        self.model = get_model(
            cfg.model,
            in_shape=data.info.in_shape,
            num_classes=data.info.num_classes,
            **cfg.model_args,
        ).to(device)
        self.optimizer = build_optimizer(
            cfg.optimizer, self.model.parameters(), cfg.optimizer_kwargs
        )
        self.generator = torch.Generator().manual_seed(seed)
        self.device = device

    def train_epoch(self, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> dict[str, float]:
        """One pass over (x, y) in shuffled mini-batches; returns mean loss and accuracy."""
        self.model.train()
        n = len(x)
        order = torch.randperm(n, generator=self.generator).to(self.device)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            xb, yb = x[idx], y[idx]
            logits = self.model(xb)  # (B, classes)
            loss = F.cross_entropy(logits, yb)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.detach().argmax(1) == yb).sum()
        return {"train_loss": loss_sum.item() / n, "train_acc": correct.item() / n}

    @torch.inference_mode()
    def evaluate(
        self, x: torch.Tensor, y: torch.Tensor, batch_size: int, prefix: str
    ) -> dict[str, float]:
        """Mean loss and accuracy on (x, y), in eval mode."""
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            logits = self.model(xb)
            loss_sum += F.cross_entropy(logits, yb, reduction="sum")
            correct += (logits.argmax(1) == yb).sum()
        n = max(len(x), 1)
        return {f"{prefix}_loss": loss_sum.item() / n, f"{prefix}_acc": correct.item() / n}

    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])


def aggregate(per_repeat: list[dict[str, float]]) -> dict[str, float]:
    """Mean over repeats; ``<key>_std`` (population std) beside each when there are several."""
    out: dict[str, float] = {}
    for key in per_repeat[0]:
        values = np.array([r[key] for r in per_repeat], dtype=float)
        out[key] = float(values.mean())
        if len(per_repeat) > 1:
            out[f"{key}_std"] = float(values.std())
    return out


def train_trial(cfg: TrialConfig, ctx: TrialContext) -> dict[str, Any]:
    """Train ``cfg`` for its epochs (continuing from ``ctx.restore``) and report each epoch.

    Per epoch: ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``, ``epoch_s``,
    ``epoch``; after the last epoch also ``test_loss``, ``test_acc``; always ``params``.
    A non-finite training loss ends the trial with ``diverged = 1`` (a normal stop).

    Returns:
        The last metrics reported.
    """
    if ctx.num_threads:
        torch.set_num_threads(max(1, int(ctx.num_threads)))
    device = resolve_device(cfg.device)
    data = DeviceData(ctx.data, device)
    runs = [Run(cfg, data, cfg.seed + r, device) for r in range(cfg.repeats)]
    start_epoch = 0
    if ctx.restore is not None:
        start_epoch = int(ctx.restore["epoch"])
        for run, state in zip(runs, ctx.restore["runs"], strict=True):
            run.load(state)
    n_params = count_params(runs[0].model)
    metrics: dict[str, Any] = {}
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        results = []
        for run in runs:
            res = run.train_epoch(*data.train, cfg.batch_size)
            res.update(run.evaluate(*data.val, cfg.eval_batch_size, "val"))
            results.append(res)
        diverged = any(not math.isfinite(r["train_loss"]) for r in results)
        if epoch + 1 == cfg.epochs or diverged:
            for run, res in zip(runs, results, strict=True):
                res.update(run.evaluate(*data.test, cfg.eval_batch_size, "test"))
        metrics = aggregate(results)
        metrics.update(
            epoch=epoch + 1,
            epoch_s=time.perf_counter() - t0,
            params=n_params,
            diverged=int(diverged),
        )
        done = epoch + 1

        def state_fn(done: int = done) -> dict[str, Any]:
            return {"epoch": done, "runs": [run.state() for run in runs]}

        ctx.report(metrics, state_fn if cfg.checkpoint else None)
        if diverged:
            break
    return metrics
