"""``sweeper models``: every registered model with its parameter count, and the arguments
each family takes (a sweep's ``model.args`` and its parameters by name)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sweeper.cli._console import console

COLUMNS = ("name", "family", "params", "input", "classes", "description")
ARG_COLUMNS = ("argument", "accepts", "default")


def models_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="one model: its arguments with this model's defaults")


def cmd_models(args: argparse.Namespace) -> int:
    """List every registered model with its parameter count for the default input, then
    the arguments each family takes: what each accepts and its default."""
    from sweeper.errors import SweeperError
    from sweeper.models import UnknownModelError, get_entry, list_models

    names = list_models()
    if args.name is not None:
        try:
            get_entry(args.name)
        except UnknownModelError as exc:  # one line listing the valid ones, the closest
            raise SweeperError(str(exc)) from None
        names = [args.name]
    rows = [model_row(name) for name in names]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    out = console()
    out.print(_models_table(rows))
    families = rows if args.name else [r for r in rows if r["name"] == r["family"]]
    for row in families:
        out.print(_args_table(row))
    if not args.name:
        out.print("a preset's defaults: sweeper models NAME")
    return 0


def model_row(name: str) -> dict[str, Any]:
    """One model as ``models --json`` prints it, ``args`` with this model's defaults."""
    from sweeper.models import count_params, get_entry, get_model

    entry = get_entry(name)
    in_shape, num_classes = entry.default_input
    n = count_params(get_model(name, in_shape=in_shape, num_classes=num_classes))
    defaults = entry.defaults()
    return {
        "name": name,
        "family": entry.family,
        "params": n,
        "input": "x".join(map(str, in_shape)),
        "classes": num_classes,
        "description": entry.doc,
        "sets": dict(entry.preset),
        "args": {
            arg: {"accepts": spec.describe()}
            | ({"default": _plain(defaults[arg])} if arg in defaults else {"required": True})
            for arg, spec in entry.arg_specs.items()
        },
    }


def _plain(value: Any) -> Any:
    """A default as JSON and YAML write it (a tuple as a list)."""
    return list(value) if isinstance(value, tuple) else value


def _models_table(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="models (parameters for each family's default input)", title_justify="left")
    for col in COLUMNS:
        table.add_column(col, justify="right" if col in ("params", "classes") else "left")
    for r in rows:
        table.add_row(
            r["name"],
            r["family"],
            f"{r['params']:,}",
            r["input"],
            str(r["classes"]),
            r["description"],
        )
    return table


def _args_table(row: dict[str, Any]) -> Any:
    from rich.table import Table

    title = f"{row['name']} arguments (model.args, or parameters by name)"
    table = Table(title=title, title_justify="left")
    for col in ARG_COLUMNS:
        table.add_column(col)
    for arg, info in row["args"].items():
        default = json.dumps(info["default"]) if "default" in info else "required"
        table.add_row(arg, info["accepts"], default)
    return table
