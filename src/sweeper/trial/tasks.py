"""What a task means for training: its loss and the statistics behind its metrics.

A task accumulates sums over batches (``stats``) and turns them into metrics at the end
(``metrics``), so a whole epoch costs one device-to-host copy, not one per batch.
``stacked_loss`` and ``stacked_stats`` do the same for R fused runs at once (a leading run
dimension: logits ``(R, B, ...)``), each run's value as ``loss``/``stats`` would give it.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


class Classification:
    """Cross-entropy on logits ``(B, C)``; accuracy, and per-class accuracy on request."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y)

    def stats(
        self, logits: torch.Tensor, y: torch.Tensor, per_class: bool = False
    ) -> dict[str, torch.Tensor]:
        pred = logits.argmax(1)
        out = {
            "loss": F.cross_entropy(logits, y, reduction="sum"),
            "correct": (pred == y).sum(),
            "n": _count(y),
        }
        if per_class:
            hits = (pred == y).float()
            out["class_correct"] = torch.bincount(y, weights=hits, minlength=self.num_classes)
            out["class_n"] = torch.bincount(y, minlength=self.num_classes)
        return out

    def stacked_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each run's mean cross-entropy ``(R,)``: logits ``(R, B, C)``, labels ``(R, B)``."""
        return self._per_example_loss(logits, y).mean(1)

    def stacked_stats(
        self, logits: torch.Tensor, y: torch.Tensor, per_class: bool = False
    ) -> dict[str, torch.Tensor]:
        """:meth:`stats` of each run, every entry with a leading run dimension ``(R, ...)``."""
        runs, batch = y.shape
        pred = logits.argmax(-1)  # (R, B)
        out = {
            "loss": self._per_example_loss(logits, y).sum(1),
            "correct": (pred == y).sum(1),
            "n": torch.full((runs,), batch, device=y.device),
        }
        if per_class:
            # one bincount over (run, class) pairs: run r's class c counts at r * C + c
            bins = y + self.num_classes * torch.arange(runs, device=y.device).unsqueeze(1)
            hits = (pred == y).float().flatten()
            size = runs * self.num_classes
            out["class_correct"] = torch.bincount(bins.flatten(), hits, size).view(runs, -1)
            out["class_n"] = torch.bincount(bins.flatten(), minlength=size).view(runs, -1)
        return out

    def stacked_loss_and_stats(
        self, logits: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """A training step's pair: each run's mean loss ``(R,)``, and its (detached)
        :meth:`stacked_stats`, from one cross-entropy evaluation."""
        losses = self._per_example_loss(logits, y)  # (R, B)
        pred = logits.detach().argmax(-1)  # (R, B)
        stats = {
            "loss": losses.detach().sum(1),
            "correct": (pred == y).sum(1),
            "n": torch.full((len(y),), y.shape[1], device=y.device),
        }
        return losses.mean(1), stats

    @staticmethod
    def _per_example_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of each example ``(R, B)`` in one call (no vmap: it is row-wise)."""
        losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
        return losses.view(y.shape)

    def metrics(self, sums: dict[str, torch.Tensor], prefix: str) -> dict[str, float]:
        n = max(float(sums["n"]), 1.0)
        out = {
            f"{prefix}_loss": float(sums["loss"]) / n,
            f"{prefix}_acc": float(sums["correct"]) / n,
        }
        if "class_n" in sums:
            for c, (hit, cnt) in enumerate(
                zip(sums["class_correct"].tolist(), sums["class_n"].tolist(), strict=True)
            ):
                out[f"{prefix}_acc_class{c}"] = hit / cnt if cnt else float("nan")
        return out


class Segmentation:
    """Binary masks ``(B, 1, H, W)``: BCE + soft Dice loss; IoU and Dice of the thresholded mask."""

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = y.float()
        prob = torch.sigmoid(logits)
        inter = (prob * y).sum(dim=(1, 2, 3))
        dice = (2 * inter + 1) / (prob.sum(dim=(1, 2, 3)) + y.sum(dim=(1, 2, 3)) + 1)
        return F.binary_cross_entropy_with_logits(logits, y) + (1 - dice).mean()

    def stats(
        self, logits: torch.Tensor, y: torch.Tensor, per_class: bool = False
    ) -> dict[str, torch.Tensor]:
        y = y.float()
        pred = (logits > 0).float()
        inter = (pred * y).sum()
        return {
            "loss": self.loss(logits, y) * len(y),
            "inter": inter,
            "union": pred.sum() + y.sum() - inter,
            "total": pred.sum() + y.sum(),
            "correct": (pred == y).float().mean(dim=(1, 2, 3)).sum(),
            "n": _count(y),
        }

    def stacked_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each run's :meth:`loss` ``(R,)``: masks and logits ``(R, B, 1, H, W)``."""
        from torch.func import vmap

        return vmap(self.loss)(logits, y)

    def stacked_stats(
        self, logits: torch.Tensor, y: torch.Tensor, per_class: bool = False
    ) -> dict[str, torch.Tensor]:
        """:meth:`stats` of each run, every entry ``(R,)``."""
        from torch.func import vmap

        return vmap(self.stats)(logits, y)

    def stacked_loss_and_stats(
        self, logits: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """A training step's pair: :meth:`stacked_loss` and the detached statistics."""
        return self.stacked_loss(logits, y), self.stacked_stats(logits.detach(), y)

    def metrics(self, sums: dict[str, torch.Tensor], prefix: str) -> dict[str, float]:
        n = max(float(sums["n"]), 1.0)
        union, total = float(sums["union"]), float(sums["total"])
        return {
            f"{prefix}_loss": float(sums["loss"]) / n,
            f"{prefix}_acc": float(sums["correct"]) / n,  # pixel accuracy
            f"{prefix}_iou": float(sums["inter"]) / union if union else 1.0,
            f"{prefix}_dice": 2 * float(sums["inter"]) / total if total else 1.0,
        }


def _count(y: torch.Tensor) -> torch.Tensor:
    """The batch size as a device scalar: a fill, not a host copy (capturable)."""
    return torch.full((), len(y), dtype=torch.long, device=y.device)


def task_for(task: str, num_classes: int) -> Classification | Segmentation:
    if task == "segmentation":
        return Segmentation()
    return Classification(num_classes)
