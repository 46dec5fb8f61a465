"""The user's own data: ``data: {path: my_data.py, name: load, args: {...}}``.

The contract: the function takes its own keyword arguments (``data.args``), and ``root``
(the data root: ``data.root``, ``--data-dir`` or ``$SWEEPER_DATA_DIR``) if its signature
names it, and returns a mapping (or a dataclass with these fields)::

    {"train": (x, y), "val": (x, y), "test": (x, y),   # numpy arrays or torch tensors
     "task": "classification",                          # or "segmentation" (default: the first)
     "num_classes": 10,                                 # optional: inferred from the labels
     "mean": 0.5, "std": 0.25}                          # optional: for uint8 images

``x``: one split's inputs, ``(N, *in_shape)``, float (used as they are) or uint8 images
``(N, C, H, W)`` (scaled to [0, 1], then normalised by ``mean`` and ``std``). ``y``:
integer class labels ``(N,)`` in ``[0, num_classes)``, or for segmentation binary masks
``(N, 1, H, W)`` of 0 and 1. ``data.train_size``/``test_size`` subsample train and test;
the validation split is the function's own. Anything else is a one-line error naming the
file and the function's line.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sweeper.data._api import DataError, DatasetEntry, DatasetInfo, Splits, subsample
from sweeper.usercode import UserCodeError, call, load_function

SPLITS = ("train", "val", "test")
KEYS = (*SPLITS, "task", "num_classes", "mean", "std")
TASKS = ("classification", "segmentation")
_CACHE: dict[tuple[str, str, Any], Splits] = {}


def own_entry(spec: Any) -> DatasetEntry:
    """The user's data as a registry entry (loaded once per process and arguments)."""
    splits = own_splits(spec, Path(spec.root or "."))
    args = {k: (v, ()) for k, v in spec.args.items()}  # checked against the signature
    return DatasetEntry(splits.info, lambda s, root: _sized(own_splits(s, root), s), args)


def own_splits(spec: Any, root: Path) -> Splits:
    """Call the user's function and check what it returned (cached)."""
    from sweeper.models._own import file_stamp

    key = (spec.ref, json.dumps(spec.args, sort_keys=True, default=str), file_stamp(spec.path))
    if key not in _CACHE:
        fn = load_function(spec.path, spec.import_, spec.name)
        kwargs = _arguments(fn, spec, root)
        where = f"{spec.path or inspect.getsourcefile(fn)}{_line(fn)}"
        _CACHE[key] = to_splits(call(fn, spec.path, spec.name, **kwargs), spec.label, where)
    return _CACHE[key]


def _arguments(fn: Any, spec: Any, root: Path) -> dict[str, Any]:
    params = inspect.signature(fn).parameters
    open_ = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    names = [n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    own = [n for n in names if n != "root"]
    bad = sorted(set(spec.args) - set(own)) if not open_ else []
    if bad:
        takes = ", ".join(own) or "no arguments"
        raise DataError(f"args.{bad[0]}: {spec.label} takes {takes}; got {bad[0]!r}")
    kwargs = dict(spec.args)
    if "root" in params:
        kwargs["root"] = str(root)
    return kwargs


def _line(fn: Any) -> str:
    try:
        return f", line {inspect.getsourcelines(fn)[1]}"
    except (OSError, TypeError):
        return ""


def _sized(splits: Splits, spec: Any) -> Splits:
    x_tr, y_tr = subsample(splits.x_train, splits.y_train, spec.train_size, spec.split_seed)
    x_te, y_te = subsample(splits.x_test, splits.y_test, spec.test_size, spec.split_seed)
    return Splits(splits.info, x_tr, y_tr, splits.x_val, splits.y_val, x_te, y_te)


def to_splits(result: Any, label: str, where: str) -> Splits:
    """Check the function's result against the contract; :class:`UserCodeError` if not."""

    def fail(message: str) -> UserCodeError:
        return UserCodeError(f"{where}: {label} returned {message}")

    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        result = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    if not isinstance(result, Mapping):
        return _raise(fail(f"{type(result).__name__}; expected a dict with train, val, test"))
    unknown = sorted(set(result) - set(KEYS))
    missing = [k for k in SPLITS if k not in result]
    if unknown or missing:
        what = f"unknown key {unknown[0]!r}" if unknown else f"no {missing[0]!r}"
        return _raise(fail(f"{what}; expected keys {', '.join(KEYS)}"))
    task = result.get("task", "classification")
    if task not in TASKS:
        return _raise(fail(f"task {task!r}; expected one of {', '.join(TASKS)}"))
    pairs = {name: _pair(result[name], name, fail) for name in SPLITS}
    shape = pairs["train"][0].shape[1:]
    for name, (x, y) in pairs.items():
        if x.shape[1:] != shape:
            raise fail(f"{name} inputs of shape {x.shape[1:]}; train's are {shape}")
        _check_labels(y, x, name, task, fail)
    classes = _classes(pairs, task, result.get("num_classes"), fail)
    info = DatasetInfo(
        name=label, in_shape=tuple(int(d) for d in shape), num_classes=classes, task=task,
        mean=float(result.get("mean", 0.0)), std=float(result.get("std", 1.0)),
    )  # fmt: skip
    (x_tr, y_tr), (x_val, y_val), (x_te, y_te) = pairs.values()
    return Splits(info, x_tr, y_tr, x_val, y_val, x_te, y_te)


def _raise(exc: Exception) -> Any:
    raise exc


def _pair(value: Any, name: str, fail: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise fail(f"{name}: {type(value).__name__}; expected a pair (x, y)")
    x, y = (_array(v, f"{name} {part}", fail) for v, part in zip(value, "xy", strict=True))
    if len(x) == 0 or len(x) != len(y):
        raise fail(f"{name}: {len(x)} inputs and {len(y)} labels; expected as many, at least 1")
    if x.dtype == np.uint8:
        return x, y
    if not np.issubdtype(x.dtype, np.floating):
        raise fail(f"{name} x of dtype {x.dtype}; expected float or uint8 images")
    if not np.isfinite(x).all():
        raise fail(f"{name} x with NaN or infinite values")
    return x.astype(np.float32, copy=False), y


def _array(value: Any, what: str, fail: Any) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise fail(f"{what} of type {type(value).__name__}; expected a numpy array or tensor")
    return value


def _check_labels(y: np.ndarray, x: np.ndarray, name: str, task: str, fail: Any) -> None:
    if task == "segmentation":
        if y.shape != (len(x), 1, *x.shape[2:]):
            raise fail(f"{name} masks of shape {y.shape}; expected (N, 1, H, W) = "
                       f"{(len(x), 1, *x.shape[2:])}")  # fmt: skip
        if not np.isin(y, (0, 1)).all():
            raise fail(f"{name} masks with values other than 0 and 1")
        return
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise fail(f"{name} y of shape {y.shape}, dtype {y.dtype}; expected integer labels (N,)")
    if y.min() < 0:
        raise fail(f"{name} y with a negative label {int(y.min())}")


def _classes(pairs: dict[str, Any], task: str, given: Any, fail: Any) -> int:
    if task == "segmentation":
        return 1
    top = max(int(y.max()) for _, y in pairs.values()) + 1
    if given is None:
        return top
    if isinstance(given, bool) or not isinstance(given, int) or given < top:
        raise fail(f"num_classes {given!r}; expected an integer >= {top} (the largest label + 1)")
    return given
