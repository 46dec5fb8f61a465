"""Fashion-MNIST from its IDX files (torchvision downloads them where a network exists).

The files live in ``root/FashionMNIST/raw``, torchvision's layout. A root that holds only the
``.gz`` files (as ``../shared/data`` does) is gunzipped once into a cache. The uncompressed
files are read here with numpy (a 16-byte header, then the bytes): the same arrays
torchvision's reader returns, without importing torchvision (about 2 s of the driver's
start-up). torchvision is imported only to download a missing copy, checksum-verified.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
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

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
INFO = DatasetInfo(
    name="fashion_mnist", in_shape=(1, 28, 28), num_classes=10, mean=0.286, std=0.353
)


def cache_dir() -> Path:
    """Where decompressed copies go: ``$SWEEPER_CACHE_DIR`` or ``~/.cache/sweeper``."""
    return Path(os.environ.get("SWEEPER_CACHE_DIR", Path.home() / ".cache" / "sweeper"))


def torchvision_root(root: Path) -> tuple[Path, bool]:
    """The root to hand torchvision, and whether it may download there.

    Uncompressed files under ``root`` are used as they are; ``.gz`` files are decompressed
    into the cache; with neither, torchvision downloads into ``root``.
    """
    raw = root / "FashionMNIST" / "raw"
    if all((raw / f).is_file() for f in RAW_FILES):
        return root, False
    if all((raw / f"{f}.gz").is_file() for f in RAW_FILES):
        key = hashlib.sha1(str(raw.resolve()).encode()).hexdigest()[:12]
        cached = cache_dir() / "data" / key
        _gunzip_all(raw, cached / "FashionMNIST" / "raw")
        return cached, False
    return root, True


def _gunzip_all(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in RAW_FILES:
        gz, out = src / f"{name}.gz", dst / name
        if out.is_file() and out.stat().st_mtime >= gz.stat().st_mtime:
            continue
        tmp = out.with_suffix(f".tmp{os.getpid()}")
        with gzip.open(gz, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        os.replace(tmp, out)  # atomic: a reader never sees half a file


def read_fashion_mnist(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 60,000 training and 10,000 test images (uint8, N x 1 x 28 x 28) and labels."""
    tv_root, download = torchvision_root(root)
    if download:
        _download(root)
    raw = tv_root / "FashionMNIST" / "raw"
    try:
        x, y, x_test, y_test = (read_idx(raw / name) for name in RAW_FILES)
    except (OSError, ValueError) as exc:
        raise DataError(f"{raw}: cannot read Fashion-MNIST ({exc})") from None
    return x[:, None], y.astype(np.int64), x_test[:, None], y_test.astype(np.int64)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (magic 0x0000_08_<ndim>, big-endian sizes, the data)."""
    data = np.fromfile(path, np.uint8)  # a writable array of the file's bytes
    if len(data) < 4 or data[:3].tolist() != [0, 0, 8]:
        raise ValueError(f"{path.name} is not an IDX file of unsigned bytes")
    ndim = int(data[3])
    shape = tuple(int(n) for n in data[4 : 4 + 4 * ndim].view(">i4"))
    return data[4 + 4 * ndim :].reshape(shape)


def _download(root: Path) -> None:
    """torchvision's checksum-verified download of the IDX files into ``root``."""
    try:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(root), train=True, download=True)
        FashionMNIST(str(root), train=False, download=True)
    except Exception as exc:  # torchvision raises RuntimeError / URLError / OSError
        raise DataError(
            f"Fashion-MNIST not found under {root / 'FashionMNIST' / 'raw'} and it could not "
            f"be downloaded ({type(exc).__name__}); set data.root, --data-dir or "
            "SWEEPER_DATA_DIR to a folder holding FashionMNIST/raw"
        ) from None


@register_dataset(INFO)
def load_fashion_mnist(spec: Any, root: Path) -> Splits:
    """Fashion-MNIST split as the seed did: ``val_size`` of the 60,000 drawn for validation."""
    x, y, x_test, y_test = read_fashion_mnist(root)
    x_tr, y_tr, x_val, y_val = split_train_val(
        x, y, spec.val_size, spec.split_seed, spec.train_size
    )
    x_test, y_test = subsample(x_test, y_test, spec.test_size, spec.split_seed)
    return Splits(INFO, x_tr, y_tr, x_val, y_val, x_test, y_test)
