"""The data a spec names, found and loaded: a registered dataset or the user's own loader.

Kept apart from the registry (``_api.py``), which the user's-own entry (``own.py``) builds on.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from sweeper.data._api import DatasetEntry, DatasetInfo, Splits, get_dataset
from sweeper.data.own import own_entry


def entry_for(data_spec: Any) -> DatasetEntry:
    """The registered dataset the spec names, or the user's own loader as an entry."""
    if getattr(data_spec, "is_own", False):
        return own_entry(data_spec)
    return get_dataset(data_spec.name)


def reads_files(data_spec: Any) -> bool:
    """Whether a registered dataset reads files under the data root (the user's own data
    reads whatever its function reads: never checked here)."""
    if getattr(data_spec, "is_own", False):
        return False
    return get_dataset(data_spec.name).reads_files


def dataset_info(data_spec: Any) -> DatasetInfo:
    """The dataset's info as the spec shapes it (``image_size`` resizes images)."""
    entry = entry_for(data_spec)
    info = entry.info_with(dict(getattr(data_spec, "args", {})))
    size = getattr(data_spec, "image_size", None)
    if size and len(info.in_shape) == 3:
        info = replace(info, in_shape=(info.in_shape[0], size, size))
    return info


def load_splits(data_spec: Any, root: str | Path) -> Splits:
    """Load the dataset ``data_spec.name`` from ``root`` and split it as the spec says."""
    splits = entry_for(data_spec).loader(data_spec, Path(root))
    info = dataset_info(data_spec)
    if info.in_shape != splits.info.in_shape:
        splits = _resized(splits, info)
    return splits


def _resized(splits: Splits, info: DatasetInfo) -> Splits:
    """Images resized to ``info.in_shape`` (area average); masks by nearest neighbour."""
    import torch
    from torch.nn import functional as F

    size = info.in_shape[1:]

    def images(x: np.ndarray) -> np.ndarray:
        t = F.interpolate(torch.from_numpy(x).float(), size=size, mode="area")
        if x.dtype != np.uint8:  # a user's float images stay float
            return t.numpy()
        return t.round().clamp(0, 255).to(torch.uint8).numpy()

    def labels(y: np.ndarray) -> np.ndarray:
        if info.task != "segmentation":
            return y
        return (
            F.interpolate(torch.from_numpy(y).float(), size=size, mode="nearest")
            .to(torch.uint8)
            .numpy()
        )

    return Splits(
        info,
        images(splits.x_train), labels(splits.y_train),
        images(splits.x_val), labels(splits.y_val),
        images(splits.x_test), labels(splits.y_test),
    )  # fmt: skip
