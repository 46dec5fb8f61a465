"""Noisy continuous XOR in 2-D, generated in memory (the deep-vs-wide-cnn-unet seed, part 1).

The seed trains on ``XORDataset(size=1000)`` and tests on ``XORDataset(size=500)``. Its
class (elided in the seed; it is the UvA deep-learning tutorial's) draws each point's two
coordinates from {0, 1}, labels it ``x1 XOR x2`` (1 when exactly one is 1), then adds
Gaussian noise with standard deviation 0.1 to both coordinates.

Here all points come from one generator seeded by ``data.split_seed``, so a study's data
are reproducible. The seed had no validation set; since the data are generated, validation
points are generated too (``val_size`` of them, at most 500: the spec's default of 10,000 is
meant for image sets), and the model trains on all 1,000 points as in the seed. Inputs are float32 ``(N, 2)`` (mean 0, std 1 in the
info: the trainer passes them through unscaled); labels are int64 0/1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sweeper.data._api import DatasetInfo, Splits, register_dataset, subsample

TRAIN_POINTS = 1000
TEST_POINTS = 500
NOISE_STD = 0.1
MAX_VAL_POINTS = 500
INFO = DatasetInfo(name="xor", in_shape=(2,), num_classes=2)


def make_xor(
    n: int, rng: np.random.Generator, std: float = NOISE_STD
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy XOR points: corners of the unit square plus N(0, std**2) noise, and labels."""
    corners = rng.integers(0, 2, size=(n, 2))
    y = (corners.sum(axis=1) == 1).astype(np.int64)
    x = (corners + std * rng.standard_normal((n, 2))).astype(np.float32)
    return x, y


def val_count(val_size: int) -> int:
    """The validation size actually used: ``val_size`` capped at the test set's 500."""
    return min(val_size, MAX_VAL_POINTS)


@register_dataset(INFO, reads_files=False)
def load_xor(spec: Any, root: Path) -> Splits:
    """The seed's 1,000 training and 500 test points, plus fresh validation points.

    The data are generated, so validation points are drawn anew rather than taken from the
    1,000 the seed trained on; ``root`` is not read.
    """
    rng = np.random.default_rng(spec.split_seed)
    x, y = make_xor(TRAIN_POINTS, rng)
    x_test, y_test = make_xor(TEST_POINTS, rng)
    x_val, y_val = make_xor(val_count(spec.val_size), rng)
    x, y = subsample(x, y, spec.train_size, spec.split_seed)
    x_test, y_test = subsample(x_test, y_test, spec.test_size, spec.split_seed)
    return Splits(INFO, x, y, x_val, y_val, x_test, y_test)
