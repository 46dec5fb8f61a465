"""The user's own code: a function from a file or a module, and errors that name its line.

A file is imported with ``importlib.util.spec_from_file_location`` under a module name
unique to its path and contents, so two files of the same name never collide and a file
that changed is imported afresh. Every failure is a :class:`UserCodeError` whose one line
names the user's file and line (the traceback's last frame inside that file).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from sweeper.errors import SweeperError


class UserCodeError(SweeperError):
    """The user's file failed to import, lacks the function, or the function failed."""


def where(exc: BaseException, filename: str | None) -> str:
    """``file.py, line N`` of the last traceback frame inside ``filename`` (else the file)."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        return f"{exc.filename}, line {exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    if filename is not None:
        target = str(Path(filename).resolve())
        inside = [f for f in frames if str(Path(f.filename).resolve()) == target]
    else:  # a module: frames outside this file and the import machinery
        inside = [f for f in frames if f.filename != __file__ and "<frozen" not in f.filename]
    if inside:
        return f"{inside[-1].filename}, line {inside[-1].lineno}"
    return filename or (frames[-1].filename if frames else "?")


def describe(exc: BaseException) -> str:
    """``ValueError: message`` on one line."""
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg}"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_function(path: str | None, module: str | None, name: str) -> Callable[..., Any]:
    """The function ``name`` of the file ``path`` (absolute) or of the module ``module``."""
    mod = _import_file(Path(path)) if path is not None else _import_module(str(module))
    where_ = path or module
    if not hasattr(mod, name):
        found = sorted(
            k
            for k, v in vars(mod).items()
            if callable(v)
            and not k.startswith("_")
            and getattr(v, "__module__", None) == mod.__name__
        )
        listed = f"; it defines {', '.join(found)}" if found else ""
        raise UserCodeError(f"{where_}: has no function {name!r}{listed}")
    fn = getattr(mod, name)
    if not callable(fn):
        raise UserCodeError(f"{where_}: {name} is not a function, got {type(fn).__name__}")
    return fn


def module_name(path: Path) -> str:
    """A module name unique to the file's path and contents."""
    digest = hashlib.sha1(str(path).encode() + b"\0" + path.read_bytes()).hexdigest()[:16]
    return f"sweeper_user_{path.stem if path.stem.isidentifier() else 'code'}_{digest}"


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise UserCodeError(f"{path}: no such file")
    name = module_name(path)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserCodeError(f"{path}: cannot import (expected a .py file)")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(mod)
    except Exception as exc:  # noqa: BLE001 - the user's code may raise anything
        del sys.modules[name]
        raise UserCodeError(f"{where(exc, str(path))}: import failed: {describe(exc)}") from None
    return mod


def _import_module(module: str) -> ModuleType:
    target = module.partition(":")[0]
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and target.startswith(exc.name):
            raise UserCodeError(
                f"{module}: no module named {exc.name!r} (is it installed, or on PYTHONPATH?)"
            ) from None
        raise UserCodeError(
            f"{where(exc, None)}: import of {target} failed: {describe(exc)}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the user's module may raise anything
        raise UserCodeError(
            f"{where(exc, None)}: import of {target} failed: {describe(exc)}"
        ) from None


def call(fn: Callable[..., Any], path: str | None, what: str, **kwargs: Any) -> Any:
    """``fn(**kwargs)``; an exception it raises becomes a one-line :class:`UserCodeError`."""
    try:
        return fn(**kwargs)
    except Exception as exc:  # noqa: BLE001 - the user's function may raise anything
        path = path or inspect.getsourcefile(fn)
        raise UserCodeError(f"{where(exc, path)}: {what} raised {describe(exc)}") from None
