"""Datasets: a registry of loaders that return in-memory splits."""

from __future__ import annotations

from sweeper.data import fashion_mnist as _fashion_mnist  # noqa: F401  (each registers one)
from sweeper.data import membrane as _membrane  # noqa: F401
from sweeper.data import torchvision_sets as _torchvision_sets  # noqa: F401
from sweeper.data import xor as _xor  # noqa: F401
from sweeper.data._api import (
    DataError,
    DatasetInfo,
    Splits,
    get_dataset,
    list_datasets,
    register_dataset,
)
from sweeper.data.lookup import dataset_info, load_splits, reads_files

__all__ = [
    "DataError",
    "DatasetInfo",
    "Splits",
    "dataset_info",
    "get_dataset",
    "list_datasets",
    "load_splits",
    "reads_files",
    "register_dataset",
]
