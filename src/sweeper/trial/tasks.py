"""What a task means for training: its loss and the statistics behind its metrics.

A task accumulates sums over batches (``stats``) and turns them into metrics at the end
(``metrics``), so a whole epoch costs one device-to-host copy, not one per batch.
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
