"""The user's own builders as registry entries (``model: {path: ..., name: ...}``).

A builder takes the data's ``in_shape`` and ``num_classes`` when its signature names them,
and its own keyword arguments; it returns an ``nn.Module``. The entry's builder wraps it:
it passes only the data arguments the builder names, turns an exception into one line
naming the user's file and line, and refuses a result that is no ``nn.Module``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sweeper.models._args import DATA_ARGS
from sweeper.usercode import UserCodeError, call, load_function

# registry key -> (the file's mtime and size when loaded); a changed file loads again
_LOADED: dict[str, tuple[float, int] | None] = {}


def load_builder(path: str | None, module: str | None, name: str) -> Callable[..., Any]:
    """The user's builder wrapped as a registry builder (``in_shape=, num_classes=, **args``)."""
    fn = load_function(path, module, name)
    params = inspect.signature(fn).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    data_args = tuple(a for a in DATA_ARGS if a in params or takes_all)
    source = path or inspect.getsourcefile(fn)
    label = f"{Path(path).name}:{name}" if path else str(module)

    @functools.wraps(fn)
    def build(*, in_shape: tuple[int, ...], num_classes: int, **args: Any) -> Any:
        from torch import nn

        given = {"in_shape": tuple(in_shape), "num_classes": num_classes}
        model = call(fn, source, name, **{a: given[a] for a in data_args}, **args)
        if not isinstance(model, nn.Module):
            line = _def_line(fn)
            raise UserCodeError(
                f"{source}{line}: {label} must return a torch.nn.Module, got {type(model).__name__}"
            )
        return model

    return build


def _def_line(fn: Callable[..., Any]) -> str:
    try:
        return f", line {inspect.getsourcelines(fn)[1]}"
    except (OSError, TypeError):
        return ""


def file_stamp(path: str | None) -> tuple[float, int] | None:
    """What says a file changed: its mtime and size (None for a module)."""
    if path is None:
        return None
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return st.st_mtime, st.st_size
