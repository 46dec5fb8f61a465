"""Small learnable image data made in memory, for tests that must run without a data set
(the GPU tests: a GPU machine may have only the package bundle)."""

from __future__ import annotations

import numpy as np

from sweeper.data._api import DatasetInfo, Splits

IMAGES = DatasetInfo(name="synthetic", in_shape=(1, 28, 28), num_classes=10, mean=0.5, std=0.25)


def image_splits(train: int = 2000, val: int = 500, test: int = 500, seed: int = 0) -> Splits:
    """uint8 ``(N, 1, 28, 28)`` images: one fixed random template per class plus noise, so a
    small MLP or LeNet learns them in an epoch or two (val accuracy well above chance)."""
    rng = np.random.default_rng(seed)
    templates = rng.uniform(0, 255, size=(IMAGES.num_classes, *IMAGES.in_shape))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, IMAGES.num_classes, size=n).astype(np.int64)
        noise = rng.normal(0, 60, size=(n, *IMAGES.in_shape))
        x = np.clip(0.25 * templates[y] + 80 + noise, 0, 255).astype(np.uint8)
        return x, y

    return Splits(IMAGES, *draw(train), *draw(val), *draw(test))
