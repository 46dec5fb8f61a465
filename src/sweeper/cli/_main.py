"""The parser, the table of subcommands and :func:`main`.

Flags that several subcommands take are declared once, as parent parsers; ``--debug`` is
one of them, taken before or after the subcommand (the subcommand's copy leaves an earlier
``--debug`` alone: its default is ``SUPPRESS``).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sweeper import __version__
from sweeper.cli import _models, _results, _run, _status
from sweeper.cli._console import closed_pipe
from sweeper.console import command_clock
from sweeper.errors import SweeperError

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line plus the subcommand's usage, exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        from sweeper.mirror.storage import mask_text  # the echo of a URL's password

        self.print_usage(sys.stderr)
        raise SweeperError(f"{self.prog}: {mask_text(message)}")


@dataclass(frozen=True)
class Command:
    """A subcommand: its handler (whose docstring is the description), its help line, the
    shared flags it takes (names in :func:`shared_flags`) and a builder of its own flags."""

    handler: Handler
    help: str
    flags: tuple[str, ...] = ()
    arguments: Callable[[argparse.ArgumentParser], None] | None = None


COMMANDS: dict[str, Command] = {
    "run": Command(
        _run.cmd_run,
        "run a sweep file as a new study",
        ("spec", "data_dir", "out", "wandb", "address", "storage"),
        _run.run_arguments,
    ),
    "resume": Command(
        _run.cmd_resume,
        "continue an interrupted study",
        ("study", "out", "data_dir", "wandb", "address", "storage"),
    ),
    "check": Command(
        _run.cmd_check,
        "validate a sweep file and print the size of its search space",
        ("spec", "data_dir", "storage"),
    ),
    "status": Command(
        _status.cmd_status,
        "show a study's trials and its best so far",
        ("study", "out", "json"),
        _status.status_arguments,
    ),
    "models": Command(
        _models.cmd_models,
        "list registered models, their parameter counts and their arguments",
        ("json",),
        _models.models_arguments,
    ),
    "report": Command(
        _results.cmd_report,
        "write a study's report (HTML, Markdown or CSV)",
        ("study", "out"),
        _results.report_arguments,
    ),
    "export": Command(
        _results.cmd_export,
        "export the best K configs (default 3) as sweep files, with weights",
        ("study", "out"),
        _results.export_arguments,
    ),
    "sync": Command(
        _results.cmd_sync,
        "upload a study's offline W&B runs (wandb sync)",
        ("study", "out"),
        _results.sync_arguments,
    ),
}


def _flags() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


def debug_flag(default: Any) -> argparse.ArgumentParser:
    """``--debug``: the top level's defaults to False, each subcommand's to SUPPRESS."""
    p = _flags()
    p.add_argument("--debug", action="store_true", default=default, help="show tracebacks")
    return p


def shared_flags() -> dict[str, argparse.ArgumentParser]:
    """The flags several subcommands take, each declared once, by name."""
    spec = _flags()
    spec.add_argument("file", help="sweep file (YAML)")
    spec.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec key, e.g. --set train.epochs=1 (repeatable)",
    )
    spec.add_argument("--name", help="study name (default: the file's name key)")
    spec.add_argument("--max-trials", type=int, metavar="K", help="run at most K trials")
    data_dir = _flags()
    data_dir.add_argument(
        "--data-dir",
        metavar="D",
        help="data root, relative to here (default: the file's data.root, else "
        "$SWEEPER_DATA_DIR, else ./data)",
    )
    study = _flags()
    study.add_argument("study", help="study name (under --runs) or path to its folder")
    out = _flags()
    out.add_argument(
        "--runs",
        dest="out",
        metavar="DIR",
        help="the folder that holds the studies, one folder each (default ./runs)",
    )
    out.add_argument("--out", dest="out", help=argparse.SUPPRESS)  # the old spelling of --runs
    wandb = _flags()
    wandb.add_argument(
        "--wandb",
        choices=("offline", "online", "disabled"),
        help="W&B mode for this study (overrides the file's wandb.mode)",
    )
    address = _flags()
    address.add_argument(
        "--address",
        metavar="A",
        help="join a running Ray cluster: auto, or the head's HOST:PORT "
        "(overrides resources.address; default: start Ray here)",
    )
    storage = _flags()
    storage.add_argument(
        "--storage",
        metavar="URL",
        help="where the Optuna mirror lives: sqlite:///f.db, postgresql://user@host/db, "
        "mysql://..., journal:///f.log (default: optuna.db in the study folder; a password "
        "is never saved)",
    )
    json_ = _flags()
    json_.add_argument("--json", action="store_true", help="print JSON")
    return {
        "spec": spec,
        "data_dir": data_dir,
        "study": study,
        "out": out,
        "wandb": wandb,
        "address": address,
        "storage": storage,
        "json": json_,
    }


def plain(doc: str | None) -> str | None:
    """A docstring as help prints it: reST's ``code`` marks as plain quotes."""
    return None if doc is None else re.sub(r"``(.+?)``", r"'\1'", doc)


def build_parser() -> argparse.ArgumentParser:
    """The ``sweeper`` parser: one subparser per entry of :data:`COMMANDS`."""
    parser = _Parser(
        prog="sweeper",
        description="Hyperparameter sweeps for PyTorch: Ray Tune "
        "schedules the trials, Optuna chooses the configs.",
        parents=[debug_flag(False)],
    )
    parser.add_argument("--version", action="version", version=f"sweeper {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    flags = shared_flags()
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=cmd.help,
            description=plain(cmd.handler.__doc__),
            # typeshed wants parents of the subparsers' class; any parser's flags copy over
            parents=[debug_flag(argparse.SUPPRESS), *(flags[f] for f in cmd.flags)],  # type: ignore[list-item]
        )
        p.set_defaults(func=cmd.handler)
        if cmd.arguments is not None:
            cmd.arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input, 130 interrupted).

    A reader that stops early (``sweeper status --json | head``) ends the command quietly,
    exit 0: no traceback, no "Exception ignored" at exit."""
    try:
        with command_clock():  # the progress line times a run from here
            return _main(argv)
    except BrokenPipeError:
        return closed_pipe()


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SweeperError as exc:  # a usage error: _Parser has printed the usage above it
        return _fail(exc)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except SweeperError as exc:
        if args.debug:
            raise
        return _fail(exc)
    except KeyboardInterrupt:
        print("sweeper: interrupted", file=sys.stderr)
        return 130


def _fail(exc: SweeperError) -> int:
    print(f"sweeper: error: {exc}", file=sys.stderr)
    return exc.exit_code
