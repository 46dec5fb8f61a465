"""sweeper's model zoo: every family registers its builder and presets here.

Importing this package imports torch (through the families). ``get_model(name, ...)``
builds any registered name; ``list_models()`` lists them.
"""

from __future__ import annotations

from sweeper.models import mlp as _mlp  # noqa: F401  (registers the family)
from sweeper.models._api import (
    ModelEntry,
    UnknownModelError,
    check_model_args,
    count_params,
    get_entry,
    get_model,
    list_models,
    register_model,
)

__all__ = [
    "ModelEntry",
    "UnknownModelError",
    "check_model_args",
    "count_params",
    "get_entry",
    "get_model",
    "list_models",
    "register_model",
]
