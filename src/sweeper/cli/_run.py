"""``sweeper check``, ``run`` and ``resume``: argument parsing and printing over
:mod:`sweeper.api._launch`, which does the work (the Python API's ``sweeper.run`` too)."""

from __future__ import annotations

import argparse
from typing import Any

from sweeper.api import _launch
from sweeper.cli._console import console
from sweeper.cli._status import print_summary


def run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--force-new",
        action="store_true",
        help="delete an existing study of the same name and start over",
    )


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a sweep file without running it; print the size of the search space."""
    plan = _prepare(args).plan
    spec = plan.spec
    size = "continuous (infinite)" if plan.space_size is None else f"{plan.space_size} configs"
    trials = (
        plan.n_trials if plan.n_trials is not None else "unbounded: set run_cap or --max-trials"
    )
    # where the trials would run (may fail: before "ok"); nothing runs a search space only
    where = _launch.placement(plan) if spec.runs != "nothing" else None
    resources = _launch.describe_placement(plan, where) if where is not None else None
    if where is not None and where.warning:
        console(stderr=True).print(where.warning)
    out = console()
    out.print(f"{args.file}: ok")
    out.print(f"  study        {spec.name}")
    out.print(f"  search space {size} over {len(spec.parameters)} parameters")
    out.print(f"  sampler      {spec.sampler_name} (method {spec.method})")
    out.print(f"  trials       {trials}")
    target = "" if spec.metric.target is None else f", target {spec.metric.target:g}"
    if spec.objectives.multi:
        out.print(f"  objectives   {spec.objectives.describe()} (a Pareto front)")
    else:
        out.print(f"  metric       {spec.metric.name} ({spec.metric.goal}{target})")
    _print_wandb_notes(out, spec)
    if spec.model is None:
        _print_space(out, spec, resources)
        return 0
    out.print(f"  model        {spec.model.label} ({plan.first_params:,} parameters, first config)")
    out.print(f"  data         {spec.data.label} from {spec.data.root}{_absent(spec.data)}")
    out.print(f"  resources    {resources}")
    out.print(f"  optuna       {spec.storage or 'optuna.db in the study folder'}")
    return 0


def _absent(data: Any) -> str:
    """A note for the default root that is not there yet (a given one that is not there
    fails the plan): torchvision downloads into it on the first run."""
    from pathlib import Path

    from sweeper.data import reads_files

    if Path(data.root).is_dir() or not reads_files(data):
        return ""
    return " (no such folder yet: the first run downloads the data there)"


def _print_wandb_notes(out: Any, spec: Any) -> None:
    """What W&B's validator would reject although sweeper runs it (one line each)."""
    from sweeper.spec.wandb_notes import wandb_notes

    for note in wandb_notes(spec):
        out.print(f"  W&B note     {note}")


def _print_space(out: Any, spec: Any, resources: str | None) -> None:
    """A model-less file: what its trials run, and each parameter's distribution."""
    from sweeper.search.space import describe

    runs = spec.runs if spec.runs != "nothing" else "nothing (a search space only)"
    out.print(f"  runs         {runs}")
    if spec.command is not None or spec.program is not None:
        out.print(f"  command      {_command_line(spec)}")
    for name, param in spec.parameters.items():
        out.print(f"    {name:<20} {describe(param)}")
    if resources is not None:
        out.print(f"  resources    {resources}")


def _command_line(spec: Any) -> str:
    """A trial's command line, as W&B's agent builds it (``<name>`` for each value)."""
    import os

    from sweeper.script import DEFAULT_COMMAND, build_command
    from sweeper.search.space import script_config

    argv = build_command(
        spec.command,
        program=spec.program or "",
        config=script_config(spec, {k: f"<{k}>" for k in spec.parameters}),
        interpreter="python",
        args_json_file="<args.json>",
        getenv=os.environ.get,
    )
    given = " ".join(spec.command or DEFAULT_COMMAND)
    shown = " ".join(f'"{a}"' if " " in a else a for a in argv)  # as W&B's agent logs it
    return f"{given} -> {shown}"


def cmd_run(args: argparse.Namespace) -> int:
    """Run a whole study: every planned trial, results into the study folder."""
    prepared = _prepare(args)
    launched = _launch.start(
        prepared,
        out=args.out,
        force_new=args.force_new,
        storage_given=bool(args.storage),
        summary=print_summary,
    )
    return 130 if launched.result.interrupted else 0


def cmd_resume(args: argparse.Namespace) -> int:
    """Continue an interrupted study: finished trials stay, running ones resume, none repeat."""
    from sweeper.store import Study

    study = Study.open(args.study, args.out)
    launched = _launch.resume(
        study,
        data_dir=args.data_dir,
        wandb=args.wandb,
        address=args.address,
        storage=args.storage,
        summary=print_summary,
    )
    return 130 if launched is not None and launched.result.interrupted else 0


def _prepare(args: argparse.Namespace) -> Any:
    return _launch.prepare(
        args.file,
        overrides=list(args.overrides),
        name=args.name,
        data_dir=args.data_dir,
        max_trials=args.max_trials,
        wandb=getattr(args, "wandb", None),
        address=getattr(args, "address", None),
        storage=getattr(args, "storage", None),
    )
