"""The model registry: one builder per family, presets as data, unknown names fail loudly.

Modelled on torchvision's ``models/_api.py``. This module imports no torch, so the registry
can be inspected cheaply; the family modules that register builders do import it. Each entry
carries what every argument accepts (:class:`ArgSpec`: the builder's annotated type plus the
bounds and choices its registration gives), so sweep values are checked before a build.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sweeper.models._args import DATA_ARGS, ArgSpec, Bounds, arg_specs
from sweeper.registry.base import Registry, UnknownNameError

# The input a builder is measured on when neither it nor its registration names one.
FALLBACK_INPUT: tuple[tuple[int, ...], int] = ((1, 28, 28), 10)


@dataclass(frozen=True)
class ModelEntry:
    """A registered name: the family builder plus the preset's fixed arguments.

    Attributes:
        name: registry name (a family's own name, or a preset's).
        family: the family the builder belongs to (``mlp``, ``lenet``, ...).
        builder: ``builder(*, in_shape, num_classes, **args) -> nn.Module``.
        preset: arguments this name fixes (a sweep may still override them).
        train: training defaults the preset implies (e.g. a learning-rate schedule).
        doc: one line for ``sweeper models``.
        default_input: ``(in_shape, num_classes)`` the family is built for when no dataset
            says otherwise: what ``sweeper models`` counts parameters on and what the
            contract tests feed (a U-Net takes a mask-sized image, XOR two numbers).
        arg_specs: argument -> what it accepts (type, bounds, choices), shared by the family.
    """

    name: str
    family: str
    builder: Callable[..., Any]
    preset: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    doc: str = ""
    default_input: tuple[tuple[int, ...], int] = FALLBACK_INPUT
    arg_specs: Mapping[str, ArgSpec] = field(default_factory=dict)

    @property
    def arg_names(self) -> tuple[str, ...]:
        """Arguments a sweep may set (the builder's keywords, less the data's)."""
        sig = inspect.signature(self.builder)
        named = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        return tuple(
            n for n, p in sig.parameters.items() if n not in DATA_ARGS and p.kind not in named
        )

    def arg_problem(self, arg: str, value: Any) -> tuple[str, str] | None:
        """``(where, message)`` if ``value`` is no valid ``arg`` (see :meth:`ArgSpec.problem`)."""
        return self.arg_specs[arg].problem(value)

    def defaults(self) -> dict[str, Any]:
        """The builder's defaults overlaid with this preset's arguments."""
        sig = inspect.signature(self.builder)
        base = {
            k: p.default
            for k, p in sig.parameters.items()
            if k in self.arg_names and p.default is not inspect.Parameter.empty
        }
        return {**base, **self.preset}


class UnknownModelError(UnknownNameError):
    """A model name or argument the registry does not know."""


# 0.65, not difflib's 0.6: with many registered models, 0.6 offers lenet for resnet18.
_MODELS: Registry[ModelEntry] = Registry("model", error=UnknownModelError, sort=True, cutoff=0.65)
# A user's own builders, keyed ``file:function`` (loaded code, never listed or offered).
_OWN: dict[str, ModelEntry] = {}


def register_model(
    family: str,
    presets: dict[str, dict[str, Any]] | None = None,
    train: dict[str, dict[str, Any]] | None = None,
    doc: dict[str, str] | None = None,
    default_input: tuple[tuple[int, ...], int] | None = None,
    bounds: Mapping[str, Bounds] | None = None,
    choices: Mapping[str, Sequence[str]] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a family builder under ``family`` and each of its ``presets``.

    Every argument's type comes from the builder's annotation; ``bounds`` and ``choices``
    narrow it. The builder's defaults and each preset's arguments must pass those checks.

    Args:
        family: the family's registry name (the builder with its own defaults).
        presets: preset name -> arguments it fixes.
        train: preset name -> training defaults it implies.
        doc: name -> one-line description.
        default_input: ``(in_shape, num_classes)`` for every name of the family; by default
            the builder's own defaults for ``in_shape`` and ``num_classes``.
        bounds: argument -> inclusive ``(low, high)`` (None: open); for a sequence argument,
            of each element. E.g. ``{"depth": (0, None), "dropout": (0.0, 1.0)}``.
        choices: argument -> the strings it may take, e.g. ``{"activation": ("relu", ...)}``.
    """

    def wrap(builder: Callable[..., Any]) -> Callable[..., Any]:
        shape, classes = default_input or _signature_input(builder)
        specs = arg_specs(builder, bounds, choices)
        entries = [
            ModelEntry(
                name=name,
                family=family,
                builder=builder,
                preset=dict(args),
                train=copy.deepcopy((train or {}).get(name, {})),
                doc=(doc or {}).get(name, (builder.__doc__ or "").strip().splitlines()[0]),
                default_input=(tuple(shape), int(classes)),
                arg_specs=specs,
            )
            for name, args in {family: {}, **(presets or {})}.items()
        ]
        for entry in entries:  # all checked before any registers: no half-registered family
            _check_entry(entry)
        for entry in entries:
            _MODELS.register(entry.name, entry)
        return builder

    return wrap


def _check_entry(entry: ModelEntry) -> None:
    """A new name; a preset sets only the builder's arguments, with values that pass."""
    if entry.name in _MODELS:
        raise ValueError(f"model {entry.name!r} is already registered")
    bad = set(entry.preset) - set(entry.arg_names)
    if bad:
        raise ValueError(f"preset {entry.name!r} sets unknown arguments {sorted(bad)}")
    for arg, value in entry.defaults().items():
        problem = entry.arg_problem(arg, value)
        if problem:
            where, message = problem
            raise ValueError(f"model {entry.name!r}: {arg}{where}: {message}")


def _signature_input(builder: Callable[..., Any]) -> tuple[tuple[int, ...], int]:
    """The builder's defaults for ``in_shape`` and ``num_classes``, else :data:`FALLBACK_INPUT`."""
    params = inspect.signature(builder).parameters
    found = []
    for name, fallback in zip(DATA_ARGS, FALLBACK_INPUT, strict=True):
        p = params.get(name)
        found.append(fallback if p is None or p.default is inspect.Parameter.empty else p.default)
    return tuple(found[0]), int(found[1])


def list_models() -> list[str]:
    """All registered names, sorted (a user's own builders, keyed ``file:function``, not)."""
    return _MODELS.names()


def ensure_model(model_spec: Any) -> str:
    """The registry key of the spec's model; a user's own builder is loaded and entered.

    The key of a builder in a file is ``/abs/file.py:function``, of one in a module
    ``module:function``; a file that changed since it was entered is loaded again.

    Raises:
        UserCodeError: the file or module fails to import, or has no such function.
    """
    if not model_spec.is_own:
        return str(model_spec.name)
    from sweeper.models._own import _LOADED, file_stamp, load_builder

    key = model_spec.ref
    stamp = file_stamp(model_spec.path)
    if key in _OWN and _LOADED.get(key) == stamp:
        return key
    builder = load_builder(model_spec.path, model_spec.import_, model_spec.name)
    _OWN[key] = ModelEntry(
        name=key,
        family="own",
        builder=builder,
        doc=(builder.__doc__ or "").strip().partition("\n")[0],
        arg_specs=arg_specs(builder, lenient=True),
    )
    _LOADED[key] = stamp
    return key


def get_entry(name: str) -> ModelEntry:
    """The registry entry for ``name`` (or a user's builder :func:`ensure_model` loaded); an
    unknown name is an :class:`UnknownModelError` listing the valid ones, the closest offered.
    """
    own = _OWN.get(name)
    return own if own is not None else _MODELS.get(name)


def check_model_args(name: str, args: dict[str, Any]) -> None:
    """Raise :class:`UnknownModelError` if ``args`` has a key the builder does not take."""
    entry = get_entry(name)
    bad = sorted(set(args) - set(entry.arg_names))
    if bad:
        takes = ", ".join(entry.arg_names) or "no arguments of its own"
        raise UnknownModelError(f"model {_shown(name)} does not take {', '.join(bad)}; "
                                f"expected some of {takes}")  # fmt: skip


def _shown(key: str) -> str:
    """A registry key as messages show it (a user's file by its name, not its full path)."""
    path, sep, function = key.rpartition(":")
    return f"{path.replace(chr(92), '/').rpartition('/')[2]}:{function}" if sep else key


def get_model(name: str, *, in_shape: tuple[int, ...], num_classes: int, **args: Any) -> Any:
    """Build the registered model ``name`` with its preset overlaid by ``args``."""
    entry = get_entry(name)
    check_model_args(name, args)
    return entry.builder(
        in_shape=tuple(in_shape), num_classes=num_classes, **{**entry.preset, **args}
    )


def count_params(model: Any) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
