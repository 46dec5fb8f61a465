"""Tiny copies of torchvision's datasets in each one's own on-disk layout (for tests).

Each writer puts ``n_train`` and ``n_test`` random images with labels ``i % classes``
where torchvision's class looks for them, in its file format: IDX files for the MNIST
family, pickled batches for CIFAR, MATLAB files for SVHN.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def _images(n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def _idx(path: Path, array: np.ndarray, gz: bool) -> None:
    """An IDX file: magic (0, 0, uint8 = 0x08, dims), big-endian sizes, then the bytes."""
    head = struct.pack(">I", 0x0800 + array.ndim) + b"".join(
        struct.pack(">I", d) for d in array.shape
    )
    data = head + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def write_idx_set(
    root: Path, folder: str, prefixes: tuple[str, str], classes: int,
    n: tuple[int, int] = (60, 20), gz: bool = False, sub: str = "",
) -> None:  # fmt: skip
    """``root/<folder>/raw/<sub>/<prefix>-{images-idx3,labels-idx1}-ubyte`` for train, test."""
    raw = root / folder / "raw" / sub
    for i, (prefix, count) in enumerate(zip(prefixes, n, strict=True)):
        _idx(raw / f"{prefix}-images-idx3-ubyte", _images(count, (28, 28), i), gz)
        _idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(count) % classes, gz)


def write_mnist(root: Path, folder: str = "MNIST", **kw: object) -> None:
    write_idx_set(root, folder, ("train", "t10k"), 10, **kw)  # type: ignore[arg-type]


def write_emnist(root: Path, split: str = "balanced", classes: int = 47, **kw: object) -> None:
    prefixes = (f"emnist-{split}-train", f"emnist-{split}-test")
    write_idx_set(root, "EMNIST", prefixes, classes, **kw)  # type: ignore[arg-type]


def write_cifar(root: Path, hundred: bool = False, per_batch: int = 12, n_test: int = 20) -> None:
    """CIFAR's python batches: a dict of ``data`` (N, 3072) uint8 and labels, plus meta."""
    if hundred:
        folder, names, label, meta = root / "cifar-100-python", ["train"], "fine_labels", "meta"
        classes, meta_key = 100, "fine_label_names"
    else:
        folder, label, meta = root / "cifar-10-batches-py", "labels", "batches.meta"
        names, classes, meta_key = [f"data_batch_{i}" for i in range(1, 6)], 10, "label_names"
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [per_batch * (5 if hundred else 1)] * len(names) + [n_test]
    files = [*names, "test" if hundred else "test_batch"]
    for i, (name, count) in enumerate(zip(files, sizes, strict=True)):
        batch = {"data": _images(count, (3 * 32 * 32,), i), label: list(np.arange(count) % classes)}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / meta).write_bytes(pickle.dumps({meta_key: [f"c{i}" for i in range(classes)]}))


def write_svhn(root: Path, n: tuple[int, int] = (60, 20)) -> None:
    """``root/SVHN/{train,test}_32x32.mat``: X (32, 32, 3, N) uint8, y (N, 1) with 10 for 0."""
    from scipy.io import savemat

    folder = root / "SVHN"
    folder.mkdir(parents=True, exist_ok=True)
    for i, (split, count) in enumerate(zip(("train", "test"), n, strict=True)):
        x = _images(count, (32, 32, 3), i).transpose(1, 2, 3, 0)
        y = (np.arange(count) % 10 + 1).reshape(-1, 1)  # SVHN's labels 1..10
        savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})
