"""``sweeper check`` of a sweep whose trials are the user's own ``program`` (pure, no ray).

The program is found as W&B's agent finds it: relative to the folder the agent (here,
``sweeper run``) is started in, not the sweep file's folder. The plan records its absolute
path in the study's spec, because each trial runs in its own folder, and ``resume`` reads
that spec. A missing program is a one-line error here, before any trial. A parameter name
with dots is one flat parameter, as in W&B (``opt`` and ``opt.lr`` both are arguments);
only ``parameters:`` nesting groups names (``Spec.nested_params``).
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
