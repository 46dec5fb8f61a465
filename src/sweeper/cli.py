"""The ``sweeper`` command: a table of subcommands, ``main(argv) -> int`` for tests.

Bad input prints one line (``sweeper: error: ...``) and exits 2; ``--debug`` shows the
traceback. Nothing heavy (torch, ray) is imported until a subcommand needs it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from sweeper import __version__
from sweeper.errors import SweeperError


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line plus the subcommand's usage, exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise SweeperError(f"{self.prog}: {message}")


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:  # pipes and files get whole tables, not 80 columns
        console.width = max(console.width, 200)
    return console


# -- run / check -------------------------------------------------------------------------


def _add_spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="sweep file (YAML)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec key, e.g. --set train.epochs=1 (repeatable)",
    )
    p.add_argument("--name", help="study name (default: the file's name key)")
    p.add_argument("--max-trials", type=int, metavar="K", help="run at most K trials")
    p.add_argument(
        "--data-dir",
        metavar="D",
        help="data root (default: data.root, else $SWEEPER_DATA_DIR, else ./data)",
    )


def _plan(args: argparse.Namespace) -> Any:
    from sweeper.plan import make_plan
    from sweeper.spec import load_spec

    spec = load_spec(args.file, args.overrides, name=args.name)
    return make_plan(spec, args.file, data_dir=args.data_dir, max_trials=args.max_trials)


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a sweep file without running it; print the size of the search space."""
    plan = _plan(args)
    spec = plan.spec
    size = "continuous (infinite)" if plan.space_size is None else f"{plan.space_size} configs"
    trials = (
        plan.n_trials if plan.n_trials is not None else "unbounded: set run_cap or --max-trials"
    )
    out = _console()
    out.print(f"{args.file}: ok")
    out.print(f"  study        {spec.name}")
    out.print(f"  search space {size} over {len(spec.parameters)} parameters")
    out.print(f"  sampler      {spec.sampler_name} (method {spec.method})")
    out.print(f"  trials       {trials}")
    out.print(f"  metric       {spec.metric.name} ({spec.metric.goal})")
    out.print(f"  model        {spec.model.name} ({plan.first_params:,} parameters, first config)")
    out.print(f"  data         {spec.data.name} from {spec.data.root}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run a whole study: every planned trial, results into the study folder."""
    from sweeper.store import Study, study_path

    plan = _plan(args)
    spec = plan.spec
    if plan.n_trials is None:
        raise SweeperError(
            f"{args.file}: run_cap: a {spec.sampler_name} sweep needs a trial budget; "
            "set run_cap in the file or pass --max-trials"
        )
    path = study_path(spec.name, args.out)
    Study.check_new(path, spec.name, args.force_new)  # before any slow work
    data = _load_data(plan)
    study = Study.create(path, spec, args.file, plan.n_trials, force_new=args.force_new)
    return _run(plan, study, data, resume=False)


def cmd_resume(args: argparse.Namespace) -> int:
    """Continue an interrupted study: finished trials stay, running ones resume, none repeat."""
    from sweeper.plan import make_plan
    from sweeper.store import Study

    study = Study.open(args.study, args.out)
    meta = study.meta()
    if meta.get("state") == "finished":
        _console().print(f"study {study.name} is finished: nothing to resume ({study.path})")
        return 0
    if meta.get("state") == "running" and study.driver_alive():
        raise SweeperError(
            f"{study.path}: study is running (driver pid {meta.get('pid')}); nothing to resume"
        )
    spec = study.spec()
    plan = make_plan(
        spec, str(study.path / "spec.yaml"), data_dir=args.data_dir, max_trials=meta.get("n_trials")
    )
    data = _load_data(plan)
    return _run(plan, study, data, resume=True)


def _load_data(plan: Any) -> Any:
    from sweeper.data import DataError, load_splits

    try:
        return load_splits(plan.spec.data, plan.spec.data.root)
    except DataError as exc:
        raise SweeperError(f"{plan.source}: data: {exc}") from None


def _run(plan: Any, study: Any, data: Any, resume: bool) -> int:
    from sweeper.engine import run_study

    spec = plan.spec
    err = _console(stderr=True)
    sizes = data.sizes()
    verb = "resuming" if resume else "study"
    err.print(
        f"{verb} {spec.name}: {plan.n_trials} trials of {spec.model.name} on {spec.data.name} "
        f"({sizes['train']}/{sizes['val']}/{sizes['test']} train/val/test) -> {study.path}"
    )
    with study.lock():
        result = run_study(plan, study, data, resume=resume)
    _print_summary(study, spec)
    if result.interrupted:
        err.print(
            f"interrupted: {result.finished + result.failed}/{result.total} trials done; "
            f"continue with `sweeper resume {study.path}`"
        )
        return 130
    return 0


# -- status ------------------------------------------------------------------------------


def _summary_frame(study: Any, spec: Any) -> Any:
    from sweeper.store import PARAM_PREFIX

    df = study.trials()
    if df.empty:
        return df
    metric = spec.metric.name
    cols = ["trial_id", "state", "epochs", "wall_s"]
    cols += [c for c in df.columns if c.startswith(PARAM_PREFIX)]
    cols += [
        c for c in (metric, f"best_{metric}", "val_acc", "test_acc", "params") if c in df.columns
    ]
    if "error" in df.columns and df["error"].fillna("").astype(str).str.len().gt(0).any():
        cols.append("error")
    cols = list(dict.fromkeys(cols))
    out = df[cols].copy()
    # Show params by their names, unless one collides with a column (a swept `epochs`).
    out.columns = [
        c.removeprefix(PARAM_PREFIX) if c.removeprefix(PARAM_PREFIX) not in cols else c
        for c in cols
    ]
    if metric in out.columns:
        out = out.sort_values(metric, ascending=spec.metric.goal == "minimize", na_position="last")
    return out


def _print_summary(study: Any, spec: Any, top: int | None = None) -> None:
    from rich.table import Table

    df = _summary_frame(study, spec)
    out = _console()
    if df.empty:
        out.print(f"study {spec.name} ({_state_text(study)}): no trials yet")
        return
    table = Table(title=f"study {spec.name} ({_state_text(study)})", title_justify="left")
    for col in df.columns:
        table.add_column(str(col), justify="right" if df[col].dtype.kind in "if" else "left")
    for _, row in (df.head(top) if top else df).iterrows():
        table.add_row(*[_fmt(v) for v in row])
    out.print(table)
    metric = spec.metric.name
    if metric in df.columns and df[metric].notna().any():
        best = df.iloc[0]
        out.print(f"best {metric}: {best[metric]:.4f} (trial {best['trial_id']})")


def _state_text(study: Any) -> str:
    """The study's state, saying when a 'running' study's driver is in fact gone."""
    meta = study.meta()
    state = meta.get("state", "?")
    if state == "running" and not study.driver_alive():
        state = "interrupted: its driver is gone"
    if state.startswith("interrupted") or state == "created":
        state += f"; continue with `sweeper resume {study.path}`"
    return state


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def cmd_status(args: argparse.Namespace) -> int:
    """Show a study's trial table and its best trial so far."""
    from sweeper.store import Study

    study = Study.open(args.study, args.out)
    spec = study.spec()
    if args.json:
        df = _summary_frame(study, spec)
        meta = study.meta()
        payload = {
            "name": spec.name,
            "state": meta.get("state"),
            "path": str(study.path),
            "metric": {"name": spec.metric.name, "goal": spec.metric.goal},
            "trials": json.loads(df.to_json(orient="records")) if not df.empty else [],
        }
        print(json.dumps(payload, indent=2))
        return 0
    _print_summary(study, spec)
    return 0


# -- models ------------------------------------------------------------------------------


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
    for col in ("name", "family", "params", "input", "classes", "description"):
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
    _console().print(table)
    return 0


# -- the table of subcommands ------------------------------------------------------------

Command = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[Command, str]] = {
    "run": (cmd_run, "run a sweep file as a new study"),
    "resume": (cmd_resume, "continue an interrupted study"),
    "check": (cmd_check, "validate a sweep file and print the size of its search space"),
    "status": (cmd_status, "show a study's trials and its best so far"),
    "models": (cmd_models, "list registered models and their parameter counts"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sweeper",
        description="Hyperparameter sweeps for PyTorch: Ray Tune "
        "schedules the trials, Optuna chooses the configs.",
    )
    parser.add_argument("--version", action="version", version=f"sweeper {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (func, help_text) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=func.__doc__)
        p.set_defaults(func=func)
        if name in ("run", "check"):
            _add_spec_args(p)
        if name == "run":
            p.add_argument("--out", metavar="D", help="folder that holds studies (default ./runs)")
            p.add_argument(
                "--force-new",
                action="store_true",
                help="delete an existing study of the same name and start over",
            )
        if name in ("status", "resume"):
            p.add_argument("study", help="study name (under --out) or path to its folder")
            p.add_argument("--out", metavar="D", help="folder that holds studies (default ./runs)")
        if name == "resume":
            p.add_argument("--data-dir", metavar="D", help="data root, if the data moved")
            p.add_argument("--json", action="store_true", help="print JSON")
        if name in ("models", "status"):
            p.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input, 130 interrupted)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return 2
        return args.func(args)
    except SweeperError as exc:
        if debug:
            raise
        print(f"sweeper: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("sweeper: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
