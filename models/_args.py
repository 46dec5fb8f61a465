"""What each builder argument accepts: a type from its annotation, bounds or choices as data.

:func:`arg_specs` reads a builder's signature (``int``, ``float``, ``bool``, ``str``,
``Sequence[int]``, ``Literal[...]``) and the bounds and choices its registration gives, so
a sweep's values are checked, and named in the error, before any model is built. No torch.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from sweeper.errors import describe_value
from sweeper.suggest import did_you_mean

# Arguments every builder takes from the dataset, never from the sweep file.
DATA_ARGS = ("in_shape", "num_classes")
Bounds = tuple[float | None, float | None]
_KINDS = {bool: "bool", int: "int", float: "float", str: "str"}
_TYPES: dict[str, type | tuple[type, ...]] = {
    "any": object,  # a user's builder argument with no annotation sweeper checks
    "bool": bool,
    "int": int,
    "float": (int, float),  # a whole number is a fine float (dropout: 0)
    "str": str,
}
_WORDS = {
    "any": "any value",
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
    "str": "a string",
}
_PLURALS = {
    "any": "values",
    "bool": "booleans",
    "int": "integers",
    "float": "numbers",
    "str": "strings",
}


@dataclass(frozen=True)
class ArgSpec:
    """What one argument accepts.

    Attributes:
        kind: ``int``, ``float``, ``bool`` or ``str`` (of each element, for a sequence).
        sequence: the argument is a list of ``kind`` (``channels: Sequence[int]``).
        bounds: inclusive ``(low, high)`` for numbers; None leaves that side open.
        choices: the strings a ``str`` argument may take; empty for any string.
    """

    kind: str
    sequence: bool = False
    bounds: Bounds = (None, None)
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        """What the argument expects, as in ``expected an integer >= 1``."""
        if self.sequence:
            return f"a list of {_PLURALS[self.kind]}{self._bound_words()}"
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        return f"{_WORDS[self.kind]}{self._bound_words()}"

    def element(self) -> ArgSpec:
        """What one element of a sequence argument accepts (``channels.1``)."""
        return replace(self, sequence=False)

    def problem(self, value: Any) -> tuple[str, str] | None:
        """``(where, message)`` when ``value`` is not accepted, else None.

        ``where`` is "" for the value itself, or ``[i]`` for a sequence's element ``i``.
        """
        if not self.sequence:
            msg = self.element_problem(value)
            return ("", msg) if msg else None
        if not isinstance(value, (list, tuple)):
            return "", f"expected {self.describe()}, got {describe_value(value)}"
        for i, item in enumerate(value):
            msg = self.element_problem(item)
            if msg:
                return f"[{i}]", msg
        return None

    def element_problem(self, value: Any) -> str | None:
        """The message for one scalar (a sequence's element), or None when it is accepted."""
        expected = f"expected {self.element().describe()}"
        if not _is_kind(value, self.kind):
            return f"{expected}, got {describe_value(value)}"
        if self.choices and value not in self.choices:
            return f"{expected}, got {value!r}{did_you_mean(value, self.choices)}"
        if self.kind in ("int", "float") and not _within(value, self.bounds):
            return f"{expected}, got {value!r}"
        return None

    def _bound_words(self) -> str:
        low, high = self.bounds
        if low is not None and high is not None:
            return f" in [{low}, {high}]"
        if low is not None:
            return f" >= {low}"
        return f" <= {high}" if high is not None else ""


def _is_kind(value: Any, kind: str) -> bool:
    if isinstance(value, bool):  # YAML's true is an int to Python, never to a sweep
        return kind in ("bool", "any")
    return isinstance(value, _TYPES[kind])


def _within(value: float, bounds: Bounds) -> bool:
    low, high = bounds
    if not math.isfinite(value):
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def arg_specs(
    builder: Callable[..., Any],
    bounds: Mapping[str, Bounds] | None = None,
    choices: Mapping[str, Sequence[str]] | None = None,
    lenient: bool = False,
) -> dict[str, ArgSpec]:
    """Each argument a sweep may set (not :data:`DATA_ARGS`), from the builder's annotations.

    ``lenient`` (a user's own builder): an argument with no annotation, or one sweeper does
    not check, takes any value (its builder checks it).

    Raises:
        ValueError: bounds or choices for an argument the builder does not take, bounds on
            a non-number or choices on a non-string, or an annotation with no check.
    """
    bounds, choices = dict(bounds or {}), dict(choices or {})
    try:
        hints = typing.get_type_hints(builder)
    except Exception:  # noqa: BLE001 - a user's annotation that does not evaluate
        if not lenient:
            raise
        hints = {}
    names = [n for n in inspect.signature(builder).parameters if n not in DATA_ARGS]
    unknown = sorted((set(bounds) | set(choices)) - set(names))
    if unknown:
        raise ValueError(f"{builder.__name__} takes no argument {', '.join(unknown)}")
    specs = {}
    for name in names:
        try:
            spec = _from_hint(builder.__name__, name, hints.get(name))
        except ValueError:
            if not lenient:
                raise
            spec = ArgSpec("any")
        specs[name] = _with_limits(spec, name, bounds.get(name), choices.get(name))
    return specs


def _from_hint(builder: str, name: str, hint: Any) -> ArgSpec:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal and args and all(isinstance(a, str) for a in args):
        return ArgSpec("str", choices=tuple(args))
    if origin in (Sequence, list, tuple) and args and args[0] in _KINDS:
        if origin is not tuple or args[1:] in ((), (Ellipsis,)):
            return ArgSpec(_KINDS[args[0]], sequence=True)
    if hint in _KINDS:
        return ArgSpec(_KINDS[hint])
    if hint is None:
        raise ValueError(f"{builder}: argument {name} has no annotation; annotate its type")
    raise ValueError(
        f"{builder}: argument {name} is annotated {hint!r}; expected int, float, bool, str, "
        "Sequence[int] (or of float, bool, str) or Literal[...] of strings"
    )


def _with_limits(
    spec: ArgSpec, name: str, bounds: Bounds | None, choices: Sequence[str] | None
) -> ArgSpec:
    if bounds is not None:
        if spec.kind not in ("int", "float"):
            raise ValueError(f"argument {name} takes {spec.kind}; bounds are for numbers")
        spec = replace(spec, bounds=(bounds[0], bounds[1]))
    if choices is not None:
        if spec.kind != "str":
            raise ValueError(f"argument {name} takes {spec.kind}; choices are for strings")
        spec = replace(spec, choices=tuple(choices))
    return spec
