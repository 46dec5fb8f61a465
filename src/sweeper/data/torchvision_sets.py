"""torchvision's image classification datasets by name, as one table of variants.

Each row names torchvision's class, the folder it reads under the data root, the input
shape, classes and pixel statistics. Loading goes through torchvision's own class with
``download=False`` when the files are there, and ``download=True`` (torchvision's
checksum-verified download) only when they are not, which needs a network:

- ``mnist``, ``kmnist``, ``emnist``: ``<root>/<Class>/raw/*-ubyte`` IDX files (gzipped
  copies, and EMNIST's ``raw/gzip/`` folder, are decompressed once into the cache);
- ``cifar10``, ``cifar100``: the python pickle batches, ``<root>/cifar-10-batches-py/`` and
  ``<root>/cifar-100-python/``;
- ``svhn``: ``<root>/SVHN/train_32x32.mat`` and ``test_32x32.mat``.

torchvision checks the md5 of CIFAR's and SVHN's files against the official archives; the
files present are read as they are (their checksums guard the download, which then runs
with them). ``fashion_mnist`` lives in its own module (it came first) and shares the IDX path.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tarfile
import zipfile
from dataclasses import dataclass, field, replace
from functools import partial
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

EMNIST_CLASSES = {
    "byclass": 62,
    "bymerge": 47,
    "balanced": 47,
    "letters": 27,
    "digits": 10,
    "mnist": 10,
}  # fmt: skip  (letters: labels 1..26, torchvision's 0 is N/A)


@dataclass(frozen=True)
class TorchvisionSet:
    """One row of :data:`TORCHVISION_SETS`.

    Attributes:
        info: the registry's info (for EMNIST, of the default split).
        cls: the torchvision class's name in ``torchvision.datasets``.
        layout: ``idx``, ``cifar`` or ``svhn`` (how its files lie under the root).
        args: ``data.args`` it takes -> (default, accepted values).
        classes: a split's class count, for datasets whose ``split`` sets it.
    """

    info: DatasetInfo
    cls: str
    layout: str
    args: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    classes: dict[str, int] = field(default_factory=dict)


def _info(name: str, shape: tuple[int, ...], classes: int, mean: float, std: float) -> DatasetInfo:
    return DatasetInfo(name=name, in_shape=shape, num_classes=classes, mean=mean, std=std)


GREY, COLOUR = (1, 28, 28), (3, 32, 32)
TORCHVISION_SETS = (
    TorchvisionSet(_info("mnist", GREY, 10, 0.1307, 0.3081), "MNIST", "idx"),
    TorchvisionSet(_info("kmnist", GREY, 10, 0.1918, 0.3483), "KMNIST", "idx"),
    TorchvisionSet(
        _info("emnist", GREY, 47, 0.1736, 0.3317),
        "EMNIST",
        "idx",
        args={"split": ("balanced", tuple(EMNIST_CLASSES))},
        classes=EMNIST_CLASSES,
    ),  # fmt: skip
    TorchvisionSet(_info("cifar10", COLOUR, 10, 0.4734, 0.2516), "CIFAR10", "cifar"),
    TorchvisionSet(_info("cifar100", COLOUR, 100, 0.4782, 0.2682), "CIFAR100", "cifar"),
    TorchvisionSet(_info("svhn", COLOUR, 10, 0.4515, 0.1993), "SVHN", "svhn"),
)


def cache_dir() -> Path:
    """Where decompressed copies go: ``$SWEEPER_CACHE_DIR`` or ``~/.cache/sweeper``."""
    return Path(os.environ.get("SWEEPER_CACHE_DIR", Path.home() / ".cache" / "sweeper"))


# What torchvision raises for a set that is missing and cannot be downloaded: no files
# (RuntimeError), no network (URLError, an OSError), a download cut short (EOFError, or
# a bad archive).
DOWNLOAD_ERRORS = (RuntimeError, OSError, EOFError, tarfile.TarError, zipfile.BadZipFile)


def idx_root(root: Path, folder: str, files: tuple[str, ...]) -> tuple[Path, bool]:
    """The root to hand torchvision for IDX ``files`` of ``<root>/<folder>/raw``, and
    whether it may download there.

    Uncompressed files are used as they are; ``.gz`` copies (in ``raw/`` or EMNIST's
    ``raw/gzip/``) are decompressed into the cache; with neither, torchvision downloads.
    """
    raw = root / folder / "raw"
    if all((raw / f).is_file() for f in files):
        return root, False
    for src in (raw, raw / "gzip"):
        if all((src / f"{f}.gz").is_file() for f in files):
            key = hashlib.sha1(str(src.resolve()).encode()).hexdigest()[:12]
            cached = cache_dir() / "data" / key
            gunzip_all(src, cached / folder / "raw", files)
            return cached, False
    return root, True


def gunzip_all(src: Path, dst: Path, files: tuple[str, ...]) -> None:
    """Decompress ``src/<f>.gz`` to ``dst/<f>`` for each of ``files`` (atomically, once)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in files:
        gz, out = src / f"{name}.gz", dst / name
        if out.is_file() and out.stat().st_mtime >= gz.stat().st_mtime:
            continue
        tmp = out.with_suffix(f".tmp{os.getpid()}")
        with gzip.open(gz, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        os.replace(tmp, out)  # a reader never sees half a file


def _idx_files(row: TorchvisionSet, args: dict[str, Any]) -> tuple[str, ...]:
    if row.cls == "EMNIST":
        prefix = [f"emnist-{args['split']}-{part}" for part in ("train", "test")]
    else:
        prefix = ["train", "t10k"]
    return tuple(
        f"{p}-{kind}" for p in prefix for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")
    )


def _present(cls: Any) -> type:
    """torchvision's CIFAR or SVHN class checking that its files are there, not their md5."""
    table: dict[str, Any] = {"__module__": __name__}
    if hasattr(cls, "train_list"):
        table["train_list"] = [[f, None] for f, _ in cls.train_list]
        table["test_list"] = [[f, None] for f, _ in cls.test_list]
        table["meta"] = {**cls.meta, "md5": None}
    else:
        table["split_list"] = {k: [url, f, None] for k, (url, f, _) in cls.split_list.items()}
    return type(f"Present{cls.__name__}", (cls,), table)


def _files_there(row: TorchvisionSet, root: Path) -> bool:
    import torchvision.datasets as tvd

    cls = getattr(tvd, row.cls)
    if row.layout == "cifar":
        names = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
        return all((root / cls.base_folder / f).is_file() for f in names)
    return all(
        (root / "SVHN" / f).is_file() for _, f, _ in cls.split_list.values() if "extra" not in f
    )


def read_arrays(row: TorchvisionSet, root: Path, args: dict[str, Any]) -> tuple[np.ndarray, ...]:
    """Train images, labels, test images, labels: uint8 ``(N, C, H, W)`` and int64."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, row.cls)
    if row.layout == "idx":
        tv_root, download = idx_root(root, row.cls, _idx_files(row, args))
        kwargs = {"split": args["split"]} if row.cls == "EMNIST" else {}
        sets = [cls(str(tv_root), train=t, download=download, **kwargs) for t in (True, False)]
        return _pairs([(s.data.numpy()[:, None], s.targets.numpy()) for s in sets])
    download = not _files_there(row, root)
    use = cls if download else _present(cls)
    if row.layout == "cifar":
        sets = [use(str(root), train=t, download=download) for t in (True, False)]
        return _pairs([(s.data.transpose(0, 3, 1, 2), np.asarray(s.targets)) for s in sets])
    sets = [use(str(root / "SVHN"), split=p, download=download) for p in ("train", "test")]
    return _pairs([(s.data, np.asarray(s.labels)) for s in sets])


def _pairs(sets: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    (x, y), (x_test, y_test) = sets
    return (np.ascontiguousarray(x, dtype=np.uint8), y.astype(np.int64),
            np.ascontiguousarray(x_test, dtype=np.uint8), y_test.astype(np.int64))  # fmt: skip


def _where(row: TorchvisionSet, root: Path) -> str:
    if row.layout == "idx":
        return str(root / row.cls / "raw")
    if row.layout == "svhn":
        return str(root / "SVHN")
    import torchvision.datasets as tvd

    return str(root / getattr(tvd, row.cls).base_folder)


def _loader(row: TorchvisionSet) -> Any:
    def load(spec: Any, root: Path) -> Splits:
        args = {k: default for k, (default, _) in row.args.items()} | dict(spec.args)
        try:
            x, y, x_test, y_test = read_arrays(row, root, args)
        except DOWNLOAD_ERRORS as exc:
            raise DataError(
                f"{row.info.name} not found under {_where(row, root)} and it could not be "
                f"downloaded ({type(exc).__name__}); set data.root, --data-dir or "
                f"SWEEPER_DATA_DIR to a folder holding it in torchvision's layout"
            ) from None
        x_tr, y_tr, x_val, y_val = split_train_val(
            x, y, spec.val_size, spec.split_seed, spec.train_size
        )
        x_test, y_test = subsample(x_test, y_test, spec.test_size, spec.split_seed)
        return Splits(info_for(row, args), x_tr, y_tr, x_val, y_val, x_test, y_test)

    load.__doc__ = f"{row.info.name} through torchvision.datasets.{row.cls}."
    return load


def info_for(row: TorchvisionSet, args: dict[str, Any]) -> DatasetInfo:
    """The row's info for ``data.args`` (EMNIST's ``split`` sets its class count)."""
    split = args.get("split")
    if split in row.classes:
        return replace(row.info, num_classes=row.classes[split])
    return row.info


for _row in TORCHVISION_SETS:
    register_dataset(_row.info, args=_row.args, info_for=partial(info_for, _row))(_loader(_row))
