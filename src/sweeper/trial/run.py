"""The runs of one config: :class:`Run` (one seed, one fold) and :class:`RunList`.

A trial trains *units*: each unit holds some of the config's runs and answers, for all of
them at once, ``train_epoch`` (one result dict per run), ``evaluate`` (a split, per run),
``state``/``load`` (one :meth:`Run.state` per run) and ``lr``. :class:`RunList` is the plain
unit (its runs one after another); ``fused.FusedGroup`` trains its runs as one stacked model.
Each unit knows the positions of its runs in the trial (``indices``), so results keep the
order of :func:`make_runs` whatever the units.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from sweeper.models import get_model
from sweeper.registry.optimizers import build_optimizer
from sweeper.trial import step as fast
from sweeper.trial.config import TrialConfig
from sweeper.trial.order import epoch_order, order_generator

if TYPE_CHECKING:
    from sweeper.trial.device_data import DeviceData

GRAD_STEPS = 100  # log_grad_mean averages the first this-many steps
# (x, y, idx): the tensors a run batches from and, under cross-validation, its indices
Split = tuple[torch.Tensor, torch.Tensor, "torch.Tensor | None"]


class Run:
    """One run of a config (a seed, and a fold under cross-validation)."""

    def __init__(
        self,
        cfg: TrialConfig,
        data: DeviceData,
        seed: int,
        device: torch.device,
        train: Split,
        val: Split,
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
        self.scheduler = make_scheduler(cfg, self.optimizer)
        self.generator = torch.Generator().manual_seed(seed)
        self.order_generator = order_generator(seed, device, self.generator)  # trial/order.py
        self.device = device
        self.train_set, self.val_set = train, val
        self.grad_sum, self.grad_steps = 0.0, 0

    def order(self) -> torch.Tensor:
        """This epoch's shuffled training indices into ``train_set``'s tensors, ``(n,)``."""
        x, _, idx = self.train_set
        n = len(idx) if idx is not None else len(x)
        order = epoch_order(n, self.order_generator, self.device)
        return idx[order] if idx is not None else order

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

    def _batches(
        self, cfg: TrialConfig, data: DeviceData
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled, augmented mini-batches ``(b, ...)``; the last may be smaller."""
        x, y, _ = self.train_set
        order = self.order()
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start : start + cfg.batch_size]
            yield data.augment(x[batch], y[batch], cfg.augment, self.generator)

    def _eager_epoch(
        self, cfg: TrialConfig, task: Any, batches: Iterator[tuple[torch.Tensor, torch.Tensor]]
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
            add_stats(sums, task.stats(fast.at_least_fp32(logits.detach()), yb))
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
            add_stats(sums, task.stats(self.model(x[sel]), y[sel], per_class))
        return task.metrics(sums, prefix) if sums else {}

    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "generator": self.generator.get_state(),
            "grad": (self.grad_sum, self.grad_steps),
            **self._order_state(),
        }

    def _order_state(self) -> dict[str, Any]:
        """The device-side order generator's state, where it is not ``generator``."""
        if self.order_generator is self.generator:
            return {}
        return {"order_generator": self.order_generator.get_state()}

    def load(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        fast.match_capturable(self.optimizer, bool(self.capture_opts))
        self.step = None  # a captured graph would hold the old tensors: capture anew
        if self.scheduler is not None and state.get("scheduler"):
            self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        if self.order_generator is not self.generator and "order_generator" in state:
            self.order_generator.set_state(state["order_generator"])
        self.grad_sum, self.grad_steps = state.get("grad", (0.0, 0))

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])


class RunList:
    """The plain unit: its runs trained one after another, each as its own model."""

    def __init__(self, runs: Sequence[Run], indices: Sequence[int]) -> None:
        self.runs, self.indices = list(runs), list(indices)

    def train_epoch(self, cfg: TrialConfig, data: DeviceData, task: Any) -> list[dict[str, float]]:
        """One epoch of each run: ``{"lr", train metrics}`` per run."""
        return [{"lr": run.lr(), **run.train_epoch(cfg, data, task)} for run in self.runs]

    def evaluate(
        self, split: tuple | None, batch_size: int, task: Any, prefix: str, per_class: bool = False
    ) -> list[dict[str, float]]:
        """Metrics per run on ``split`` (None: each run's own validation set)."""
        return [
            run.evaluate(split or run.val_set, batch_size, task, prefix, per_class)
            for run in self.runs
        ]

    def state(self) -> list[dict[str, Any]]:
        return [run.state() for run in self.runs]

    def load(self, states: Sequence[dict[str, Any]]) -> None:
        for run, state in zip(self.runs, states, strict=True):
            run.load(state)


def make_scheduler(cfg: TrialConfig, optimizer: Any) -> Any:
    """The config's learning-rate schedule over ``optimizer`` (None for ``none``)."""
    from torch.optim import lr_scheduler

    if cfg.lr_schedule == "step":
        return lr_scheduler.StepLR(optimizer, step_size=cfg.lr_step_size, gamma=cfg.lr_gamma)
    if cfg.lr_schedule == "exponential":
        return lr_scheduler.ExponentialLR(optimizer, gamma=cfg.lr_gamma)
    return None


def add_stats(sums: dict[str, torch.Tensor], stats: dict[str, torch.Tensor]) -> None:
    """Accumulate a batch's task statistics into ``sums`` (on the device, no copy to host)."""
    for key, value in stats.items():
        sums[key] = sums[key] + value.detach() if key in sums else value.detach()


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
