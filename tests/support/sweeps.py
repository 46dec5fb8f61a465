"""The small sweep the end-to-end tests run, and variants of it as overrides.

:data:`SWEEP` is a 2 x 2 grid (MLP width x optimizer) on a slice of Fashion-MNIST, one
epoch, one CPU per trial: a few seconds per trial on the 2-core VM.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SWEEP: dict[str, Any] = {
    "name": "sweep",
    "method": "grid",
    "metric": {"name": "val_acc", "goal": "maximize"},
    "parameters": {"width": {"values": [16, 32]}, "optimizer": {"values": ["adam", "sgd"]}},
    "model": {"name": "mlp", "args": {"depth": 1}},
    "data": {"name": "fashion_mnist", "train_size": 2000, "val_size": 500, "test_size": 500},
    "train": {
        "epochs": 1,
        "batch_size": 128,
        "optimizer_args": {"sgd": {"lr": 0.05, "momentum": 0.9}},
    },
    "resources": {"cpus": 1},
}


def sweep_config(name: str = "sweep", epochs: int = 1, **overrides: Any) -> dict[str, Any]:
    """:data:`SWEEP` named ``name`` with ``train.epochs`` set and ``overrides`` merged in.

    A mapping merges into the section of the same key (``data={"train_size": 10000}``
    keeps the other data keys); any other value replaces it, and None removes the key
    (``model={"args": None}``: the model's defaults).
    """
    config = copy.deepcopy(SWEEP)
    _merge(config, {"name": name, **overrides})
    _merge(config, {"train": {"epochs": epochs}})
    return config


def write_sweep(folder: Path, name: str = "sweep", epochs: int = 1, **overrides: Any) -> Path:
    """:func:`sweep_config` written as ``folder/<name>.yaml``; returns the file."""
    path = Path(folder) / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            sweep_config(name, epochs, **overrides), sort_keys=False, default_flow_style=None
        )
    )
    return path


def _merge(into: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)
