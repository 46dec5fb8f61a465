"""``sweeper models``: every registered model with its parameter count."""

from __future__ import annotations

import argparse
import json

from sweeper.cli._console import console

COLUMNS = ("name", "family", "params", "input", "classes", "description")


def cmd_models(args: argparse.Namespace) -> int:
    """List every registered model with its parameter count for the default input."""
    from sweeper.models import count_params, get_entry, get_model, list_models

    rows = []
    for name in list_models():
        entry = get_entry(name)
        in_shape, num_classes = entry.default_input
        n = count_params(get_model(name, in_shape=in_shape, num_classes=num_classes))
        rows.append(
            {
                "name": name,
                "family": entry.family,
                "params": n,
                "input": "x".join(map(str, in_shape)),
                "classes": num_classes,
                "description": entry.doc,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
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
    console().print(table)
    return 0
