"""The dataset registry and the xor and membrane loaders.

XOR is generated, so it is always tested. The membrane tests read ``$SWEEPER_DATA_DIR/
membrane`` (``../shared/data`` in this project) and skip without it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from sweeper.data import DataError, list_datasets, load_splits
from sweeper.spec.schema import DataSpec


def test_registry_lists_the_datasets() -> None:
    assert {"fashion_mnist", "membrane", "xor"} <= set(list_datasets())


def test_unknown_dataset_lists_valid_names() -> None:
    with pytest.raises(DataError, match="expected one of .*fashion_mnist.*mnist.*xor"):
        load_splits(DataSpec(name="mnist3"), ".")


# -- xor -----------------------------------------------------------------------------------


def _xor(**spec):
    return load_splits(DataSpec(name="xor", **spec), "/nonexistent")  # the root is not read


def test_xor_shapes_and_types() -> None:
    s = _xor()
    assert s.sizes() == {"train": 1000, "val": 500, "test": 500}  # val capped at 500
    for x, y in ((s.x_train, s.y_train), (s.x_val, s.y_val), (s.x_test, s.y_test)):
        assert x.dtype == np.float32 and x.shape[1:] == (2,)
        assert y.dtype == np.int64 and set(np.unique(y)) == {0, 1}
    assert s.info.in_shape == (2,) and s.info.num_classes == 2
    assert (s.info.mean, s.info.std) == (0.0, 1.0)


def test_xor_labels_are_xor_of_the_nearest_corner() -> None:
    s = _xor()
    for x, y in ((s.x_train, s.y_train), (s.x_test, s.y_test)):
        corner = (x > 0.5).astype(int)  # noise sigma 0.1: a point stays near its corner
        np.testing.assert_array_equal(corner[:, 0] ^ corner[:, 1], y)
        assert 0.4 < y.mean() < 0.6
        noise = x - corner
        assert 0.07 < noise.std() < 0.13


def test_xor_is_deterministic_in_split_seed() -> None:
    a, b, c = _xor(split_seed=3), _xor(split_seed=3), _xor(split_seed=4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_train, c.x_train)


def test_xor_val_size_and_trimming() -> None:
    assert _xor(val_size=50).sizes() == {"train": 1000, "val": 50, "test": 500}
    assert _xor(train_size=100, test_size=64).sizes() == {"train": 100, "val": 500, "test": 64}


# -- membrane ------------------------------------------------------------------------------


def _data_dir() -> Path:
    env = os.environ.get("SWEEPER_DATA_DIR")
    if not env or not (Path(env) / "membrane" / "image").is_dir():
        pytest.skip("membrane data not found: set SWEEPER_DATA_DIR to a folder with membrane/")
    return Path(env)


@pytest.fixture(scope="module")
def membrane():
    return load_splits(DataSpec(name="membrane"), _data_dir())


def _digests(x: np.ndarray) -> set[str]:
    return {hashlib.sha1(a.tobytes()).hexdigest() for a in x}


def test_membrane_shapes(membrane) -> None:
    assert membrane.sizes() == {"train": 20, "val": 5, "test": 5}
    for x, y in (
        (membrane.x_train, membrane.y_train),
        (membrane.x_val, membrane.y_val),
        (membrane.x_test, membrane.y_test),
    ):
        assert x.dtype == np.uint8 and x.shape[1:] == (1, 512, 512)
        assert y.dtype == np.uint8 and y.shape == x.shape
    assert membrane.info.task == "segmentation" and membrane.info.num_classes == 1


def test_membrane_masks_are_binary_membrane(membrane) -> None:
    y = np.concatenate([membrane.y_train, membrane.y_val, membrane.y_test])
    assert set(np.unique(y)) == {0, 1}
    # 1 = membrane (black in label/*.png): the thin minority class, not the cell interior.
    assert 0.1 < y.mean() < 0.35


def test_membrane_splits_are_disjoint_and_test_is_fixed(membrane) -> None:
    train, val, test = (_digests(x) for x in (membrane.x_train, membrane.x_val, membrane.x_test))
    assert len(train | val | test) == 30
    other = load_splits(DataSpec(name="membrane", split_seed=1, val_size=2), _data_dir())
    assert other.sizes() == {"train": 23, "val": 2, "test": 5}
    assert _digests(other.x_test) == test
    assert _digests(other.x_val) != val


def test_membrane_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="membrane data not found.*SWEEPER_DATA_DIR"):
        load_splits(DataSpec(name="membrane"), tmp_path)
