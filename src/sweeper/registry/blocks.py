"""A sweep file's block that names a registry entry (``{name: asha, max_t: 9}``), and the
entry's class, imported only when it is built (no Ray or Optuna at import).

An entry here is any object with ``accepts`` (the arguments a file may give it), ``cls``
(``module:Name``) and optionally ``needs`` (pip package -> the module it imports): the
scheduler, pruner and sampler entries.
"""

from __future__ import annotations

from typing import Any

from sweeper.registry.base import Registry
from sweeper.suggest import did_you_mean


def check_block(table: Registry[Any], block: Any) -> tuple[str, dict[str, Any]]:
    """A block as ``(name, args)``: a mapping with ``name`` and the entry's own arguments,
    flat (``{name: asha, max_t: 9}``) or under ``args``.

    Raises:
        ValueError: ``"@key: message"`` for an unknown name or argument.
    """
    kind = table.kind
    if not isinstance(block, dict) or "name" not in block:
        raise ValueError(f"expected a mapping with name (one of {', '.join(table)}), got {block!r}")
    block = dict(block)
    name = block.pop("name")
    args = dict(block.pop("args", None) or {})
    overlap = sorted(set(args) & set(block))
    if overlap:
        raise ValueError(f"@{overlap[0]}: given both flat and under args; give it once")
    args.update(block)
    if name not in table:
        raise ValueError(f"@name: {table.unknown(name)}")
    entry = table.get(name)
    missing = [pip for pip, module in _needs(entry).items() if not _importable(module)]
    if missing:
        raise ValueError(
            f"@name: {kind} {name} needs {', '.join(missing)}: pip install {' '.join(missing)}"
        )
    accepts = entry.accepts
    for key in args:
        if key not in accepts:
            hint = did_you_mean(key, accepts)
            expected = f"expected some of {', '.join(accepts)}" if accepts else "it takes none"
            raise ValueError(f"@{key}: {kind} {name} does not take {key}; {expected}{hint}")
    return str(name), args


def _needs(entry: Any) -> dict[str, str]:
    return dict(getattr(entry, "needs", None) or {})


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def entry_class(entry: Any) -> Any:
    """The entry's class, imported now; a missing package is a one-line error naming it."""
    import importlib

    module, name = entry.cls.split(":")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        needs = " ".join(_needs(entry)) or str(exc.name)  # e.g. pip install GPy scikit-learn
        raise ImportError(
            f"{name} needs {needs}, which is not installed: pip install {needs}"
        ) from None
