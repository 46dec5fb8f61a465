"""``sweeper check`` of a sweep whose trials are the user's own ``program`` (pure, no ray).

The program is found as W&B's agent finds it: relative to the folder the agent (here,
``sweeper run``) is started in, not the sweep file's folder. The plan records its absolute
path in the study's spec, because each trial runs in its own folder, and ``resume`` reads
that spec. A missing program, or parameter names that cannot nest (``opt`` and ``opt.lr``),
are one-line errors here, before any trial.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sweeper.errors import SpecError


def check_program(spec: Any, source: str, cwd: Path | None = None) -> Any:
    """``spec`` with ``program`` made absolute; raises :class:`SpecError` on a bad one.

    A ``command`` without ``program`` runs what it names (``python -m pkg.train``); the
    spec has checked its macros.
    """
    _check_nesting(spec, source)
    if spec.program is None:
        return spec
    where = Path.cwd() if cwd is None else cwd
    path = (where / Path(spec.program).expanduser()).resolve()
    if not path.exists():
        raise SpecError(
            source,
            "program",
            f"no such file {path} (a program is found from the folder sweeper runs in, "
            f"as W&B's agent does: {where})",
        )
    if not path.is_file():
        raise SpecError(source, "program", f"expected a file, got a directory {path}")
    return spec.model_copy(update={"program": str(path)})


def _check_nesting(spec: Any, source: str) -> None:
    """A parameter cannot be both a value and a group (``opt`` and ``opt.lr``)."""
    names = set(spec.parameters)
    for name in sorted(names):
        parts = name.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            if parent in names:
                raise SpecError(
                    source,
                    f"parameters.{name}",
                    f"{parent} is a parameter, so it cannot also hold {name}; rename one",
                )
