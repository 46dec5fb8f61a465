"""The ``sweeper`` command: a table of subcommands, ``main(argv) -> int`` for tests.

Bad input prints one line (``sweeper: error: ...``) and exits 2; ``--debug`` (before or
after the subcommand) shows the traceback. Nothing heavy (torch, ray) is imported until a
subcommand needs it. ``_main`` holds the parser and the table; one module per group of
subcommands holds their handlers.
"""

from __future__ import annotations

from sweeper.cli._main import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
