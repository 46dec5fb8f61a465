"""The study's data as tensors on one device, shared by every run of a trial.

Images are normalised to float32 once; batches are drawn by index (no DataLoader).
"""

from __future__ import annotations

import numpy as np
import torch

from sweeper.data import Splits
from sweeper.trial.augment import augment_images, augment_pairs


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
        self._pool: tuple[torch.Tensor, torch.Tensor] | None = None

    def folds(
        self, k: int, seed: int
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]:
        """The train+val pool and k (train_idx, val_idx) splits of it, drawn with ``seed``.

        The pool is built once and shared by every seed's folds (fused runs gather a batch
        of all of them in one indexing).
        """
        if self._pool is None:
            self._pool = (
                torch.cat([self.train[0], self.val[0]]),
                torch.cat([self.train[1], self.val[1]]),
            )
        x, y = self._pool
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
