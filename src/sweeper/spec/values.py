"""Categorical values of any JSON type (W&B's ``values`` may hold lists, mappings, null).

Optuna's categorical choices must be scalars that ``==`` tells apart; a list, a mapping,
or values Python calls equal although W&B tells them apart (``1``, ``1.0``, ``true``) are
handed to Optuna as their JSON text instead (:func:`choices`), one stable string per value,
and mapped back to the value itself before a trial receives it (:func:`from_choice`). The
text is also how such a value is shown (:func:`value_text`) and read back from a trial
table (:func:`as_value`). Pure: no optuna, no pydantic.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from typing import Any


def identity(value: Any) -> str:
    """A value's identity as W&B tells values apart: its JSON, mappings by sorted keys."""
    return json.dumps(value, sort_keys=True)


def value_text(value: Any) -> str:
    """A value as a person reads it: JSON for lists, mappings and null, else ``str``."""
    if value is None or isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def label(value: Any) -> Any:
    """A value as the trial table holds it: a list or mapping as its JSON text (readable,
    hashable for the report, the same text in the CSV and the journal), else itself."""
    return value_text(value) if isinstance(value, (list, tuple, dict)) else value


def labels_of(values: Sequence[Any]) -> list[Any]:
    """:func:`label` of each value (the report's categories, in the spec's order)."""
    return [label(v) for v in values]


def needs_encoding(values: Sequence[Any]) -> bool:
    """Whether Optuna cannot take ``values`` as they are (see the module's notes)."""
    seen: dict[Any, str] = {}  # equal scalars hash alike: 1, 1.0 and True share a key
    for value in values:
        if isinstance(value, (list, tuple, dict)):
            return True
        if seen.setdefault(value, identity(value)) != identity(value):
            return True
    return False


def choices(values: Sequence[Any]) -> list[Any]:
    """The choices Optuna draws from: the values, or each one's JSON text."""
    if not needs_encoding(values):
        return list(values)
    return [json.dumps(v) for v in values]


def from_choice(values: Sequence[Any], choice: Any) -> Any:
    """The value an Optuna choice stands for (a copy: a trial may change its own)."""
    if needs_encoding(values) and isinstance(choice, str):
        for value in values:
            if json.dumps(value) == choice:
                return copy.deepcopy(value)
    return choice


def to_choice(values: Sequence[Any], value: Any) -> Any:
    """The Optuna choice of a value a trial received (inverse of :func:`from_choice`)."""
    if not needs_encoding(values):
        return value
    return json.dumps(as_value(values, value))


def as_value(values: Sequence[Any], read: Any) -> Any:
    """A value read back from a trial table or a journal as one of ``values``.

    CSV turns every value into text (``[1, 2]``, ``{'a': 1}``, ``True``, empty for null);
    the value whose identity, JSON text or ``str`` matches is returned, else ``read``.
    """
    if read is None or (isinstance(read, float) and math.isnan(read)):
        return None if any(v is None for v in values) else read
    if isinstance(read, float) and read.is_integer():  # CSV reads 16 back as 16.0
        read = next((v for v in values if identity(v) == identity(int(read))), read)
    wanted = identity(read) if not isinstance(read, str) else None
    for value in values:
        if wanted is not None and identity(value) == wanted:
            return copy.deepcopy(value)
    if isinstance(read, str):
        for value in values:
            if read in (json.dumps(value), str(value), value_text(value)):
                return copy.deepcopy(value)
    return read
