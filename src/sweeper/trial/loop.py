"""``train_trial(config, context)``: build, train and evaluate one config.

Everything comes in through the arguments (no globals), so the same function runs in a
Ray worker, in a test, or in a notebook. The data live on the trial's device for the whole
trial and are batched by index. All runs of a config (``repeats`` seeds x ``cv_folds``
folds) train in lockstep, so each epoch reports means over runs, with ``*_std`` beside
them when there are several, and the last epoch adds each run's own values (``*_r<i>``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sweeper.data import Splits
from sweeper.models import count_params, get_model
from sweeper.optimizers import build_optimizer
from sweeper.trial import step as fast
from sweeper.trial.augment import augment_images, augment_pairs
from sweeper.trial.config import TrialConfig
from sweeper.trial.tasks import task_for

Report = Callable[[dict[str, Any], "Callable[[], dict[str, Any]] | None"], None]
GRAD_STEPS = 100  # log_grad_mean averages the first this-many steps
PER_RUN_KEYS = (
    "val_loss",
    "val_acc",
    "val_iou",
    "val_dice",
    "test_loss",
    "test_acc",
    "test_iou",
    "test_dice",
)


@dataclass
class TrialContext:
    """What the caller hands a trial.

    Attributes:
        data: the dataset's splits (numpy, uint8 images).
        report: ``report(metrics, state_fn)`` once per epoch; ``state_fn()`` returns the
            checkpoint to save (or is None when checkpoints are off).
        restore: a checkpoint from ``state_fn`` to continue from, or None.
        num_threads: CPU threads for torch (the CPUs the scheduler gave this trial).
        device: where the placement put the trial (``cpu``/``cuda``), or None to follow
            ``train.device`` (``auto`` picks CUDA when there is one).
    """

    data: Splits
    report: Report
    restore: dict[str, Any] | None = None
    num_threads: int | None = None
    device: str | None = None


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when there is one."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


class DeviceData:
    """The splits as tensors on one device: images normalised to float32.

    Labels are int64 class indices, or float masks for segmentation.
    """

    def __init__(self, splits: Splits, device: torch.device) -> None:
        info = self.info = splits.info
        self.is_image = len(info.in_shape) == 3

        def inputs(x: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(np.ascontiguousarray(x)).to(device)
            if t.dtype == torch.uint8:
                return t.float().div_(255.0).sub_(info.mean).div_(info.std)
            return t.float()

        def labels(y: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(np.ascontiguousarray(y)).to(device)
            return t.float() if info.task == "segmentation" else t.long()

        self.train = (inputs(splits.x_train), labels(splits.y_train))
        self.val = (inputs(splits.x_val), labels(splits.y_val))
        self.test = (inputs(splits.x_test), labels(splits.y_test))

    def folds(
        self, k: int, seed: int
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]:
        """The train+val pool and k (train_idx, val_idx) splits of it, drawn with ``seed``."""
        x = torch.cat([self.train[0], self.val[0]])
        y = torch.cat([self.train[1], self.val[1]])
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed)).to(x.device)
        chunks = perm.chunk(k)
        splits = [
            (torch.cat([c for j, c in enumerate(chunks) if j != i]), chunks[i]) for i in range(k)
        ]
        return (x, y), splits

    def augment(
        self, xb: torch.Tensor, yb: torch.Tensor, kind: str, g: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if kind == "none" or not self.is_image:
            return xb, yb
        if self.info.task == "segmentation":
            return augment_pairs(xb, yb, g)
        mean, std = self.info.mean, self.info.std
        return (augment_images(xb * std + mean, kind, g) - mean) / std, yb


class Run:
    """One run of a config (a seed, and a fold under cross-validation)."""

    def __init__(
        self,
        cfg: TrialConfig,
        data: DeviceData,
        seed: int,
        device: torch.device,
        train: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
        val: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
    ) -> None:
        torch.manual_seed(seed)
        info = data.info
        model = get_model(
            cfg.model, in_shape=info.in_shape, num_classes=info.num_classes, **cfg.model_args
        ).to(device)
        self.channels_last = fast.channels_last_for(cfg.channels_last, model, device)
        self.model = fast.prepare_model(model, self.channels_last)
        self.capture_opts = fast.optimizer_options(cfg, device)  # capturable Adam when graphed
        self.optimizer = build_optimizer(
            cfg.optimizer, self.model.parameters(), {**cfg.optimizer_kwargs, **self.capture_opts}
        )
        self.step: fast.TrainStep | None = None  # made at the first epoch (needs the task)
        self.scheduler = _scheduler(cfg, self.optimizer)
        self.generator = torch.Generator().manual_seed(seed)
        self.device = device
        self.train_set, self.val_set = train, val
        self.grad_sum, self.grad_steps = 0.0, 0

    def train_epoch(self, cfg: TrialConfig, data: DeviceData, task: Any) -> dict[str, float]:
        """One pass over the training set in shuffled mini-batches.

        With ``compile`` the batches go through :class:`~sweeper.trial.step.TrainStep`
        (one CUDA graph per step on CUDA); else, and with ``log_grad_mean``, the eager loop.
        """
        self.model.train()
        batches = self._batches(cfg, data)
        if fast.uses_step(cfg):
            if self.step is None:
                self.step = fast.make_step(
                    cfg, self.model, self.optimizer, task, self.channels_last
                )
            sums = self.step.epoch(batches)
        else:
            sums = self._eager_epoch(cfg, task, batches)
        if self.scheduler is not None:
            self.scheduler.step()
        out = task.metrics(sums, "train")
        if cfg.log_grad_mean and self.grad_steps:
            out["grad_mean"] = self.grad_sum / self.grad_steps
        return out

    def _batches(self, cfg: TrialConfig, data: DeviceData) -> Iterator[tuple[torch.Tensor, ...]]:
        """Shuffled, augmented mini-batches ``(b, ...)``; the last may be smaller."""
        x, y, idx = self.train_set
        n = len(idx) if idx is not None else len(x)
        order = torch.randperm(n, generator=self.generator).to(self.device)
        if idx is not None:
            order = idx[order]
        for start in range(0, n, cfg.batch_size):
            batch = order[start : start + cfg.batch_size]
            yield data.augment(x[batch], y[batch], cfg.augment, self.generator)

    def _eager_epoch(
        self, cfg: TrialConfig, task: Any, batches: Iterator[tuple[torch.Tensor, ...]]
    ) -> dict[str, torch.Tensor]:
        sums: dict[str, torch.Tensor] = {}
        for xb, yb in batches:
            xb = fast.to_format(xb, self.channels_last)
            with fast.autocast(cfg.precision, self.device.type):
                logits = self.model(xb)
                loss = task.loss(logits, yb)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.log_grad_mean and self.grad_steps < GRAD_STEPS:
                self._log_grad()
            self.optimizer.step()
            _add(sums, task.stats(logits.detach().float(), yb))
        return sums

    def _log_grad(self) -> None:
        grads = [p.grad.abs().mean() for p in self.model.parameters() if p.grad is not None]
        self.grad_sum += float(torch.stack(grads).mean())
        self.grad_steps += 1

    @torch.inference_mode()
    def evaluate(
        self, split: tuple, batch_size: int, task: Any, prefix: str, per_class: bool = False
    ) -> dict[str, float]:
        """Loss and task metrics on a split, in eval mode."""
        self.model.eval()
        x, y, idx = split if len(split) == 3 else (*split, None)
        n = len(idx) if idx is not None else len(x)
        sums: dict[str, torch.Tensor] = {}
        for start in range(0, n, batch_size):
            sel = (
                slice(start, start + batch_size) if idx is None else idx[start : start + batch_size]
            )
            _add(sums, task.stats(self.model(x[sel]), y[sel], per_class))
        return task.metrics(sums, prefix) if sums else {}

    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "generator": self.generator.get_state(),
            "grad": (self.grad_sum, self.grad_steps),
        }

    def load(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        fast.match_capturable(self.optimizer, bool(self.capture_opts))
        self.step = None  # a captured graph would hold the old tensors: capture anew
        if self.scheduler is not None and state.get("scheduler"):
            self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        self.grad_sum, self.grad_steps = state.get("grad", (0.0, 0))

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])


def _scheduler(cfg: TrialConfig, optimizer: Any) -> Any:
    from torch.optim import lr_scheduler

    if cfg.lr_schedule == "step":
        return lr_scheduler.StepLR(optimizer, step_size=cfg.lr_step_size, gamma=cfg.lr_gamma)
    if cfg.lr_schedule == "exponential":
        return lr_scheduler.ExponentialLR(optimizer, gamma=cfg.lr_gamma)
    return None


def _add(sums: dict[str, torch.Tensor], stats: dict[str, torch.Tensor]) -> None:
    for key, value in stats.items():
        sums[key] = sums[key] + value.detach() if key in sums else value.detach()


def aggregate(per_run: list[dict[str, float]]) -> dict[str, float]:
    """Mean over runs; ``<key>_std`` (population std) beside each when there are several."""
    out: dict[str, float] = {}
    for key in per_run[0]:
        values = np.array([r.get(key, np.nan) for r in per_run], dtype=float)
        out[key] = float(np.nanmean(values)) if not np.isnan(values).all() else float("nan")
        if len(per_run) > 1:
            out[f"{key}_std"] = (
                float(np.nanstd(values)) if not np.isnan(values).all() else float("nan")
            )
    return out


def make_runs(cfg: TrialConfig, data: DeviceData, device: torch.device) -> list[Run]:
    """``repeats`` seeds, each over ``cv_folds`` folds of train+val (or the fixed split)."""
    runs = []
    for r in range(cfg.repeats):
        seed = cfg.seed + r
        if cfg.cv_folds:
            (x, y), folds = data.folds(cfg.cv_folds, seed)
            for tr, va in folds:
                runs.append(Run(cfg, data, seed, device, (x, y, tr), (x, y, va)))
        else:
            runs.append(Run(cfg, data, seed, device, (*data.train, None), (*data.val, None)))
    return runs


def train_trial(cfg: TrialConfig, ctx: TrialContext) -> dict[str, Any]:
    """Train ``cfg`` for its epochs (continuing from ``ctx.restore``) and report each epoch.

    Per epoch: ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc`` (segmentation adds
    ``val_iou``, ``val_dice``), ``lr``, ``epoch_s``, ``epoch``, ``params``; after the last
    epoch also the test metrics (and per-class test accuracy). A non-finite training loss
    ends the trial with ``diverged = 1``: a normal stop, recorded like any other.

    Returns:
        The last metrics reported.
    """
    if ctx.num_threads:
        torch.set_num_threads(max(1, int(ctx.num_threads)))
    device = resolve_device(ctx.device or cfg.device)
    fast.configure_backends(device)
    data = DeviceData(ctx.data, device)
    task = task_for(data.info.task, data.info.num_classes)
    runs = make_runs(cfg, data, device)
    start_epoch = 0
    if ctx.restore is not None:
        start_epoch = int(ctx.restore["epoch"])
        for run, state in zip(runs, ctx.restore["runs"], strict=True):
            run.load(state)
    n_params = count_params(runs[0].model)
    per_class = cfg.per_class and data.info.task == "classification"
    metrics: dict[str, Any] = {}
    # seconds spent training (epochs, evaluation, checkpoints), carried over a restore
    train_s = float(((ctx.restore or {}).get("metrics") or {}).get("train_s", 0.0))
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        results = []
        for run in runs:
            res = {"lr": run.lr()}
            res.update(run.train_epoch(cfg, data, task))
            res.update(run.evaluate(run.val_set, cfg.eval_batch_size, task, "val"))
            results.append(res)
        diverged = any(not math.isfinite(r["train_loss"]) for r in results)
        last = epoch + 1 == cfg.epochs or diverged
        if last:
            for run, res in zip(runs, results, strict=True):
                res.update(run.evaluate(data.test, cfg.eval_batch_size, task, "test", per_class))
        metrics = aggregate(results)
        if last and len(runs) > 1:
            for i, res in enumerate(results):
                metrics.update({f"{k}_r{i}": v for k, v in res.items() if k in PER_RUN_KEYS})
        epoch_s = time.perf_counter() - t0
        train_s += epoch_s
        metrics.update(
            epoch=epoch + 1,
            epoch_s=epoch_s,
            train_s=train_s,
            params=n_params,
            diverged=int(diverged),
        )

        def state_fn(done: int = epoch + 1) -> dict[str, Any]:
            return {"epoch": done, "runs": [run.state() for run in runs]}

        ctx.report(metrics, state_fn if cfg.checkpoint else None)
        if diverged:
            break
    return metrics
