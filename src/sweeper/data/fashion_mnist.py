"""Fashion-MNIST through torchvision's own loader (it downloads where a network exists).

torchvision looks for the *uncompressed* IDX files in ``root/FashionMNIST/raw``. A root that
holds only the ``.gz`` files (as ``../shared/data`` does) is gunzipped once into a cache, and
torchvision then reads the cache; its checksum-verified download never runs there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sweeper.data._api import (
    DataError,
    DatasetInfo,
    Splits,
    register_dataset,
    split_train_val,
    subsample,
)
from sweeper.data.torchvision_sets import (  # noqa: F401 (cache_dir: re-exported)
    DOWNLOAD_ERRORS,
    cache_dir,
    idx_root,
)

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
INFO = DatasetInfo(
    name="fashion_mnist", in_shape=(1, 28, 28), num_classes=10, mean=0.286, std=0.353
)


def torchvision_root(root: Path) -> tuple[Path, bool]:
    """The root to hand torchvision, and whether it may download there.

    Uncompressed files under ``root`` are used as they are; ``.gz`` files are decompressed
    into the cache; with neither, torchvision downloads into ``root``.
    """
    return idx_root(root, "FashionMNIST", RAW_FILES)


def read_fashion_mnist(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 60,000 training and 10,000 test images (uint8, N x 1 x 28 x 28) and labels."""
    from torchvision.datasets import FashionMNIST

    tv_root, download = torchvision_root(root)
    try:
        train = FashionMNIST(str(tv_root), train=True, download=download)
        test = FashionMNIST(str(tv_root), train=False, download=download)
    except DOWNLOAD_ERRORS as exc:
        raise DataError(
            f"Fashion-MNIST not found under {root / 'FashionMNIST' / 'raw'} and it could not "
            f"be downloaded ({type(exc).__name__}); set data.root, --data-dir or "
            "SWEEPER_DATA_DIR to a folder holding FashionMNIST/raw"
        ) from None
    return (
        train.data.numpy()[:, None],
        train.targets.numpy(),
        test.data.numpy()[:, None],
        test.targets.numpy(),
    )


@register_dataset(INFO)
def load_fashion_mnist(spec: Any, root: Path) -> Splits:
    """Fashion-MNIST split as the seed did: ``val_size`` of the 60,000 drawn for validation."""
    x, y, x_test, y_test = read_fashion_mnist(root)
    x_tr, y_tr, x_val, y_val = split_train_val(
        x, y, spec.val_size, spec.split_seed, spec.train_size
    )
    x_test, y_test = subsample(x_test, y_test, spec.test_size, spec.split_seed)
    return Splits(INFO, x_tr, y_tr, x_val, y_val, x_test, y_test)
