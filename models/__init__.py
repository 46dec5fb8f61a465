"""sweeper's model zoo: every family registers its builder and presets here.

Importing this package imports torch (through the families). ``get_model(name, ...)``
builds any registered name; ``list_models()`` lists them.
"""

from __future__ import annotations

from sweeper.models import cnn as _cnn  # noqa: F401  (each import registers a family)
from sweeper.models import lenet as _lenet  # noqa: F401
from sweeper.models import mlp as _mlp  # noqa: F401
from sweeper.models import unet as _unet  # noqa: F401
from sweeper.models import xor_mlp as _xor_mlp  # noqa: F401
from sweeper.models._api import (
    ArgSpec,
    ModelEntry,
    UnknownModelError,
    check_model_args,
    count_params,
    ensure_model,
    get_entry,
    get_model,
    list_models,
    register_model,
)

__all__ = [
    "ArgSpec",
    "ModelEntry",
    "UnknownModelError",
    "check_model_args",
    "count_params",
    "ensure_model",
    "get_entry",
    "get_model",
    "list_models",
    "register_model",
]
