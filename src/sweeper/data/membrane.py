"""ISBI 2012 EM membrane segmentation: 30 slices of 512x512, read from ``root/membrane``.

Layout: ``membrane/image/N.png`` (8-bit grey) and ``membrane/label/N.png`` (white = cell
interior, black = membrane), N = 0, 1, ... Slices are kept at full resolution.

Target: the **membrane**, so ``y = 1`` where the label is black (< 128) and 0 where it is
white; the positive class is the thin boundaries (about 22% of pixels), which is what IoU
and Dice should score. Masks are uint8 ``(N, 1, H, W)``; images uint8 ``(N, 1, H, W)``.

Split (30 slices): the last 5 slices by number are the test set, the same for every
``split_seed``: the slices are consecutive sections of one volume, so neighbours look
alike, and a contiguous block held out at the end leaks less than scattered slices. The
validation slices are drawn from the other 25 with ``split_seed``: ``val_size`` of them,
at most 5 (the spec's default of 10,000 is meant for image classification), so the
default split is 20 train / 5 val / 5 test. ``train_size`` and ``test_size`` trim as usual.
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

TEST_SLICES = 5
MAX_VAL_SLICES = 5
# Pixel statistics of the 30 images scaled to [0, 1].
INFO = DatasetInfo(
    name="membrane",
    in_shape=(1, 512, 512),
    num_classes=1,
    task="segmentation",
    mean=0.495,
    std=0.173,
)


def slice_numbers(folder: Path) -> list[int]:
    """The slice numbers N of ``folder/image/N.png``, sorted; DataError when there are none."""
    images = folder / "image"
    if not images.is_dir() or not (folder / "label").is_dir():
        raise DataError(
            f"membrane data not found: expected {images} and {folder / 'label'} holding N.png "
            "slices; set data.root, --data-dir or SWEEPER_DATA_DIR to the folder that holds "
            "membrane/"
        )
    numbers = sorted(int(p.stem) for p in images.glob("*.png") if p.stem.isdigit())
    if len(numbers) <= TEST_SLICES + 1:
        raise DataError(
            f"membrane needs more than {TEST_SLICES + 1} slices in {images}, found {len(numbers)}"
        )
    return numbers


def _read_grey(path: Path) -> np.ndarray:
    from PIL import Image

    if not path.is_file():
        raise DataError(f"membrane: missing {path} (every image/N.png needs label/N.png)")
    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.uint8)


def read_membrane(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """All slices as uint8 images ``(N, 1, H, W)`` and uint8 masks, 1 = membrane (black)."""
    folder = root / "membrane"
    numbers = slice_numbers(folder)
    x = [_read_grey(folder / "image" / f"{n}.png") for n in numbers]
    labels = [_read_grey(folder / "label" / f"{n}.png") for n in numbers]
    shapes = {a.shape for a in x + labels}
    if len(shapes) != 1:
        raise DataError(f"membrane: images and labels in {folder} differ in size: {sorted(shapes)}")
    y = [(lab < 128).astype(np.uint8) for lab in labels]
    return np.stack(x)[:, None], np.stack(y)[:, None]


@register_dataset(INFO)
def load_membrane(spec: Any, root: Path) -> Splits:
    """Last 5 slices test; ``min(val_size, 5)`` of the rest validate (by ``split_seed``)."""
    x, y = read_membrane(root)
    x_pool, y_pool = x[:-TEST_SLICES], y[:-TEST_SLICES]
    x_test, y_test = subsample(x[-TEST_SLICES:], y[-TEST_SLICES:], spec.test_size, spec.split_seed)
    n_val = min(spec.val_size, MAX_VAL_SLICES)
    x_tr, y_tr, x_val, y_val = split_train_val(
        x_pool, y_pool, n_val, spec.split_seed, spec.train_size
    )
    return Splits(INFO, x_tr, y_tr, x_val, y_val, x_test, y_test)
