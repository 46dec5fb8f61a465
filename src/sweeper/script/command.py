"""A trial's command line, built as W&B's sweep agent builds it (pure: no wandb import).

W&B's agent (``wandb/wandb_agent.py``, ``Agent._command_run``, and
``wandb/sdk/launch/sweeps/utils.py``, ``create_sweep_command`` and
``create_sweep_command_args``; wandb 0.31) runs a sweep's ``command`` with these rules,
reproduced here:

* The default command is ``${env} ${interpreter} ${program} ${args}``.
* ``${envvar:NAME}`` is replaced inside any item by the variable's value (by ``NAME``
  itself when it is unset); ``NAME`` is upper-case letters, digits and ``_``.
* An item that is a whole macro, ``${name}``, becomes that macro's list of items; a
  macro the agent does not know becomes nothing. A macro inside a longer item
  (``--out=${program}``) is left as it is.
* Each top-level parameter is one flag, formatted with Python's ``f"{key}={value}"``:
  ``--lr=0.1``, ``--flag=True``, ``--sizes=[1, 2]``, a nested parameter
  ``--opt={'name': 'adam'}`` (Python's repr of the dict, as W&B's server sends a nested
  parameter as one dict-valued argument).

Two differences, both deliberate: ``${interpreter}`` is the Python that runs sweeper
(W&B's agent says ``python``, whatever that is on ``PATH``), so the script sees the
wandb that sweeper's metrics hook was tested with; and a macro W&B does not know is an
error when the spec is read (``check_command``), not silently dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from sweeper.spec.distributions import MACRO_NAMES

DEFAULT_COMMAND = ("${env}", "${interpreter}", "${program}", "${args}")
ENVVAR = re.compile(r"\$\{envvar\:([A-Z0-9_]*)\}")  # W&B's SWEEP_COMMAND_ENV_VAR_REGEX
ENV_PROGRAM = "/usr/bin/env"
# Every macro W&B's agent fills in for a program (not a function) run; the spec refuses
# any other (sweeper.spec.schema.check_command).
MACROS = MACRO_NAMES
_WHOLE = re.compile(r"^\$\{(.*)\}$")


def sweep_args(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """The argument macros for ``config`` (top-level name -> value), as W&B formats them."""
    flags: list[str] = []
    no_hyphens: list[str] = []
    no_booleans: list[str] = []
    no_equals: list[str] = []
    append_hydra: list[str] = []
    override_hydra: list[str] = []
    for name, value in config.items():
        flag = f"{name}={value}"
        flags.append(f"--{flag}")
        no_hyphens.append(flag)
        no_equals += [f"--{name}", str(value)]
        append_hydra.append(f"+{flag}")
        override_hydra.append(f"++{flag}")
        if isinstance(value, bool):
            if value:  # a false boolean is left out
                no_booleans.append(f"--{name}")
        else:
            no_booleans.append(f"--{flag}")
    return {
        "args": flags,
        "args_no_equals": no_equals,
        "args_no_hyphens": no_hyphens,
        "args_no_boolean_flags": no_booleans,
        "args_json": [json.dumps(dict(config))],
        "args_append_hydra": append_hydra,
        "args_override_hydra": override_hydra,
    }


def expand_envvars(item: str, getenv: Callable[[str], str | None]) -> str:
    """``${envvar:NAME}`` replaced by ``getenv(NAME)`` (``NAME`` when it is unset)."""
    for m in reversed(list(ENVVAR.finditer(item))):
        value = getenv(m.group(1))
        item = f"{item[: m.start()]}{m.group(1) if value is None else value}{item[m.end() :]}"
    return item


def build_command(
    command: list[str] | tuple[str, ...] | None,
    *,
    program: str,
    config: Mapping[str, Any],
    interpreter: str,
    args_json_file: str,
    getenv: Callable[[str], str | None],
) -> list[str]:
    """The argv of one trial: ``command`` (W&B's default when None) with its macros filled.

    Args:
        program: the script, as the trial's process will find it.
        config: the trial's parameters, top-level name -> value (nested ones as dicts).
        interpreter: what ``${interpreter}`` becomes.
        args_json_file: the file ``${args_json_file}`` names (the caller writes it).
        getenv: the environment ``${envvar:NAME}`` reads.
    """
    macros: dict[str, list[str]] = {
        **sweep_args(config),
        "env": [ENV_PROGRAM],
        "interpreter": [interpreter],
        "program": [program],
        "args_json_file": [args_json_file],
    }
    argv: list[str] = []
    for item in command or DEFAULT_COMMAND:
        item = expand_envvars(str(item), getenv)
        whole = _WHOLE.match(item)
        if whole:
            argv += macros.get(whole.group(1)) or []
        else:
            argv.append(item)
    return argv


def uses_json_file(command: list[str] | tuple[str, ...] | None) -> bool:
    """Whether ``${args_json_file}`` is in the command (then its file must be written)."""
    return "${args_json_file}" in (command or DEFAULT_COMMAND)
