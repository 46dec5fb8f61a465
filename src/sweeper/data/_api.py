"""The dataset registry: name -> (info, loader). Loaders return numpy splits (no torch here).

Data sets are small enough to live in memory: a loader returns every split as arrays once,
and the trial moves them to its device and batches them by index (no per-step DataLoader).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sweeper.registry.base import Registry

CLASSIFICATION_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc")
SEGMENTATION_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "val_iou", "val_dice")


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and the trainer need to know before any data is read.

    Attributes:
        name: registry name.
        in_shape: one input's shape, ``(C, H, W)`` for images.
        num_classes: output units of a classifier (1 for binary segmentation).
        task: ``classification`` or ``segmentation``.
        mean: pixel mean of uint8 images scaled to [0, 1] (0 for non-image data).
        std: pixel standard deviation, likewise (1 for non-image data).
    """

    name: str
    in_shape: tuple[int, ...]
    num_classes: int
    task: str = "classification"
    mean: float = 0.0
    std: float = 1.0

    @property
    def metrics(self) -> tuple[str, ...]:
        """Per-epoch metrics the trainer reports for this task (selectable as ``metric``)."""
        return CLASSIFICATION_METRICS if self.task == "classification" else SEGMENTATION_METRICS


@dataclass
class Splits:
    """Train / validation / test arrays. Images are uint8 ``(N, C, H, W)``."""

    info: DatasetInfo
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.x_train), "val": len(self.x_val), "test": len(self.x_test)}


Loader = Callable[[Any, Path], Splits]  # (DataSpec, root) -> Splits


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset.

    Attributes:
        info: what a model needs before any data is read (with ``args``' defaults).
        loader: ``(DataSpec, root) -> Splits``.
        args: the ``data.args`` it takes -> (default, the values it accepts).
        info_for: ``data.args`` (defaults filled in) -> info, where the args change it.
        reads_files: whether the loader reads files under the data root (XOR's are made).
    """

    info: DatasetInfo
    loader: Loader
    args: dict[str, tuple[Any, tuple[Any, ...]]] = field(default_factory=dict)
    info_for: Callable[[dict[str, Any]], DatasetInfo] | None = None
    reads_files: bool = True

    def info_with(self, given: dict[str, Any]) -> DatasetInfo:
        """The info for ``data.args``; an argument it does not take is a :class:`DataError`."""
        for key, value in given.items():
            if key not in self.args:
                takes = ", ".join(self.args) or "no arguments"
                raise DataError(f"args.{key}: {self.info.name} takes {takes}; got {key!r}")
            accepted = self.args[key][1]
            if accepted and value not in accepted:
                raise DataError(
                    f"args.{key}: expected one of {', '.join(map(str, accepted))}, got {value!r}"
                )
        if self.info_for is None:
            return self.info
        return self.info_for({k: d for k, (d, _) in self.args.items()} | dict(given))


class DataError(Exception):
    """A dataset that cannot be found or read; the message says where and how to fix it."""


# 0.65, not difflib's 0.6: with many names, 0.6 offers names that only share a suffix.
_DATASETS: Registry[DatasetEntry] = Registry("dataset", error=DataError, sort=True, cutoff=0.65)


def register_dataset(
    info: DatasetInfo,
    args: dict[str, tuple[Any, tuple[Any, ...]]] | None = None,
    info_for: Callable[[dict[str, Any]], DatasetInfo] | None = None,
    reads_files: bool = True,
) -> Callable[[Loader], Loader]:
    """Register ``loader`` under ``info.name``; a duplicate name raises.

    ``args``: the ``data.args`` the dataset takes -> (default, accepted values; empty: any);
    ``info_for`` gives the info for given args where they change it (EMNIST's split);
    ``reads_files``: False for data that is generated, not read under the root.
    """

    def wrap(loader: Loader) -> Loader:
        entry = DatasetEntry(info, loader, dict(args or {}), info_for, reads_files)
        _DATASETS.register(info.name, entry)
        return loader

    return wrap


def list_datasets() -> list[str]:
    return _DATASETS.names()


def get_dataset(name: str) -> DatasetEntry:
    """The entry for ``name``; an unknown name is a :class:`DataError` listing the valid
    ones, the closest offered."""
    return _DATASETS.get(name)


def split_train_val(
    x: np.ndarray, y: np.ndarray, val_size: int, seed: int, train_size: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``val_size`` examples for validation with a fixed seed; the rest train.

    ``train_size`` keeps only that many training examples (for quick runs and tests).
    """
    if val_size >= len(x):
        raise DataError(f"data.val_size must be < {len(x)} (the training set), got {val_size}")
    perm = np.random.default_rng(seed).permutation(len(x))
    val, train = perm[:val_size], perm[val_size:]
    if train_size is not None:
        train = train[:train_size]
    return x[train], y[train], x[val], y[val]


def subsample(x: np.ndarray, y: np.ndarray, size: int | None, seed: int) -> tuple[np.ndarray, ...]:
    """A seeded random subset of ``size`` examples (all when ``size`` is None or larger)."""
    if size is None or size >= len(x):
        return x, y
    keep = np.sort(np.random.default_rng(seed).permutation(len(x))[:size])
    return x[keep], y[keep]
