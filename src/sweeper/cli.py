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

    overrides = list(args.overrides)
    if getattr(args, "wandb", None):
        overrides.append(f"wandb.mode={args.wandb}")
    spec = load_spec(args.file, overrides, name=args.name)
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
    n_trials = plan.trial_budget()
    path = study_path(spec.name, args.out)
    Study.check_new(path, spec.name, args.force_new)  # before any slow work
    data = _load_data(plan)
    study = Study.create(path, spec, args.file, n_trials, force_new=args.force_new)
    return _run(plan, study, data, resume=False)


def cmd_resume(args: argparse.Namespace) -> int:
    """Continue an interrupted study: finished trials stay, running ones resume, none repeat."""
    from sweeper.plan import make_plan
    from sweeper.store import Study

    study = Study.open(args.study, args.out)
    study.check_free()  # another driver holds it: refuse now, naming its pid
    meta = study.meta()
    if meta.get("state") == "finished":
        _console().print(f"study {study.name} is finished: nothing to resume ({study.path})")
        return 0
    if meta.get("state") == "running" and study.driver_alive():
        raise SweeperError(
            f"{study.path}: study is running (driver pid {meta.get('pid')}); nothing to resume"
        )
    spec = study.spec()
    if args.wandb and args.wandb != spec.wandb.mode:
        spec = _set_wandb_mode(study, spec, args.wandb)
    plan = make_plan(
        spec, str(study.path / "spec.yaml"), data_dir=args.data_dir, max_trials=meta.get("n_trials")
    )
    data = _load_data(plan)
    return _run(plan, study, data, resume=True)


def _set_wandb_mode(study: Any, spec: Any, mode: str) -> Any:
    """Record a new W&B mode in the saved spec (the W&B callback reads it on resume)."""
    from sweeper.store import atomic_write, dump_spec

    spec = spec.model_copy(update={"wandb": spec.wandb.model_copy(update={"mode": mode})})
    atomic_write(study.path / "spec.yaml", dump_spec(spec))
    return spec


def _load_data(plan: Any) -> Any:
    from sweeper.data import DataError, load_splits

    try:
        return load_splits(plan.spec.data, plan.spec.data.root)
    except DataError as exc:
        raise SweeperError(f"{plan.source}: data: {exc}") from None


def _run(plan: Any, study: Any, data: Any, resume: bool) -> int:
    """Run (or resume) ``study`` under its lock; Ctrl-C or SIGTERM leave it interrupted (130)."""
    from sweeper.engine.tune import run_study
    from sweeper.signals import sigterm_as_sigint

    locked = False
    with sigterm_as_sigint():  # from here on SIGTERM is a Ctrl-C
        try:
            spec = plan.spec
            err = _console(stderr=True)
            sizes = data.sizes()
            verb = "resuming" if resume else "study"
            err.print(
                f"{verb} {spec.name}: {plan.n_trials} trials of {spec.model.name} on "
                f"{spec.data.name} ({sizes['train']}/{sizes['val']}/{sizes['test']} "
                f"train/val/test) -> {study.path}"
            )
            with study.lock():
                locked = True
                result = run_study(plan, study, data, resume=resume)
        except KeyboardInterrupt:
            # Stopped before (or while) Ray Tune ran: the study is resumable; say so.
            if locked or study.holder() is None:
                study.set_state("interrupted", pid=None)
            print(f"interrupted; continue with `sweeper resume {study.path}`", file=sys.stderr)
            raise
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


def _state_word(study: Any) -> str:
    """The study's state; a 'running' study whose driver is gone is 'interrupted'."""
    state = study.meta().get("state", "?")
    return "interrupted" if state == "running" and not study.driver_alive() else state


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
        payload = {
            "name": spec.name,
            "state": _state_word(study),
            "resume": f"sweeper resume {study.path}"
            if _state_word(study) in ("interrupted", "created")
            else None,
            "path": str(study.path),
            "metric": {"name": spec.metric.name, "goal": spec.metric.goal},
            "trials": json.loads(df.to_json(orient="records")) if not df.empty else [],
        }
        print(json.dumps(payload, indent=2))
        return 0
    _print_summary(study, spec)
    return 0


# -- report / export / sync --------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    """Write a study's report: one self-contained HTML page (or Markdown / CSV tables)."""
    from sweeper.report import write_report
    from sweeper.store import Study

    study = Study.open(args.study, args.out)
    paths = write_report(study, args.format, args.output, top=args.top, threshold=args.threshold)
    out = _console()
    for path in paths:
        out.print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export the best configs as runnable sweep files, with their metrics and weights."""
    from sweeper.export import export_study
    from sweeper.store import Study

    study = Study.open(args.study, args.out)
    out = _console()
    for item in export_study(study, top=args.top, out=args.output):
        value = item.metrics.get(study.spec().metric.name)
        out.print(f"#{item.rank} trial {item.trial_id} ({value}): {item.sweep}")
        for path in item.weights:
            out.print(f"    {path.name}")
        if item.note:
            out.print(f"    {item.note}")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """Upload a study's offline W&B runs (``wandb sync``; needs a W&B key and a network)."""
    from sweeper.store import Study
    from sweeper.tracking import offline_run_dirs, sync_runs

    study = Study.open(args.study, args.out)
    folders = offline_run_dirs(study.path)
    if not folders:
        _console().print(f"study {study.name}: no offline W&B runs under {study.path / 'wandb'}")
        return 0
    return sync_runs(folders, entity=study.spec().wandb.entity, dry_run=args.dry_run)


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
    "report": (cmd_report, "write a study's report (HTML, Markdown or CSV)"),
    "export": (cmd_export, "export the best configs as sweep files, with weights"),
    "sync": (cmd_sync, "upload a study's offline W&B runs (wandb sync)"),
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
        p.add_argument("--debug", action="store_true", help="show tracebacks")
        if name in ("run", "check"):
            _add_spec_args(p)
        if name == "run":
            p.add_argument("--out", metavar="D", help="folder that holds studies (default ./runs)")
            p.add_argument(
                "--force-new",
                action="store_true",
                help="delete an existing study of the same name and start over",
            )
        if name in ("status", "resume", "report", "export", "sync"):
            p.add_argument("study", help="study name (under --out) or path to its folder")
            p.add_argument("--out", metavar="D", help="folder that holds studies (default ./runs)")
        if name == "resume":
            p.add_argument("--data-dir", metavar="D", help="data root, if the data moved")
            p.add_argument("--json", action="store_true", help="print JSON")
        if name in ("run", "resume"):
            p.add_argument(
                "--wandb",
                choices=("offline", "online", "disabled"),
                help="W&B mode for this study (overrides the file's wandb.mode)",
            )
        if name in ("report", "export", "sync"):
            _add_results_args(p, name)
        if name in ("models", "status"):
            p.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _add_results_args(p: argparse.ArgumentParser, name: str) -> None:
    if name == "report":
        p.add_argument(
            "-o", "--output", metavar="FILE",
            help="where to write (default <study>/report.html, report.md, or report_csv/)",
        )  # fmt: skip
        p.add_argument("--format", choices=("html", "md", "csv"), default="html")
        p.add_argument("--top", type=int, default=10, metavar="K", help="best trials listed")
        p.add_argument(
            "--threshold", type=float, metavar="X",
            help="metric value for 'epochs to reach' (default: median of finished trials)",
        )  # fmt: skip
    if name == "export":
        p.add_argument("--top", type=int, default=3, metavar="K", help="best configs to export")
        p.add_argument(
            "-o", "--output", metavar="DIR", help="folder to write (default <study>/export)"
        )
    if name == "sync":
        p.add_argument("--dry-run", action="store_true", help="list the runs, upload nothing")


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
