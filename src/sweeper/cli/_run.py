"""``sweeper check``, ``run`` and ``resume``: from a sweep file (or a study) to trials."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sweeper.cli._console import console
from sweeper.cli._status import print_summary
from sweeper.errors import SpecError, SweeperError


def run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--force-new",
        action="store_true",
        help="delete an existing study of the same name and start over",
    )


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a sweep file without running it; print the size of the search space."""
    plan = _plan(args)
    spec = plan.spec
    size = "continuous (infinite)" if plan.space_size is None else f"{plan.space_size} configs"
    trials = (
        plan.n_trials if plan.n_trials is not None else "unbounded: set run_cap or --max-trials"
    )
    # where the trials would run (may fail: before "ok"); nothing runs a search space only
    resources = _placement(plan) if spec.runs != "nothing" else None
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
    if spec.model is None:
        _print_space(out, spec, resources)
        return 0
    out.print(f"  model        {spec.model.name} ({plan.first_params:,} parameters, first config)")
    out.print(f"  data         {spec.data.name} from {spec.data.root}")
    out.print(f"  resources    {resources}")
    out.print(f"  optuna       {spec.storage or 'optuna.db in the study folder'}")
    return 0


def _print_space(out: Any, spec: Any, resources: str | None) -> None:
    """A model-less file: what its trials run, and each parameter's distribution."""
    from sweeper.space import describe

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
    from sweeper.space import nest

    argv = build_command(
        spec.command,
        program=spec.program or "",
        config=nest({k: f"<{k}>" for k in spec.parameters}),
        interpreter="python",
        args_json_file="<args.json>",
        getenv=os.environ.get,
    )
    given = " ".join(spec.command or DEFAULT_COMMAND)
    shown = " ".join(f'"{a}"' if " " in a else a for a in argv)  # as W&B's agent logs it
    return f"{given} -> {shown}"


def _placement(plan: Any) -> str:
    """Where the trials would run on this machine (a GPU is probed, Ray is not started)."""
    from sweeper.engine.placement import place_here

    placement = place_here(plan.spec, plan.n_trials or 1, lambda: _load_data(plan), plan.source)
    return placement.describe()


def cmd_run(args: argparse.Namespace) -> int:
    """Run a whole study: every planned trial, results into the study folder."""
    from sweeper.engine.session import check_address
    from sweeper.store import Study, study_path

    plan = _plan(args)
    spec = plan.spec
    if spec.runs == "nothing":
        raise SpecError(
            args.file, "", "a search space only: `sweeper run` needs a program or a model to train"
        )
    n_trials = plan.trial_budget()
    path = study_path(spec.name, args.out)
    Study.check_new(path, spec.name, args.force_new)  # before any slow work
    check_address(spec.resources.address)  # no cluster there: one line, no study made
    storage = _check_storage(args.storage_url, spec.name, path, _storage_source(args))
    data = _load_data(plan) if spec.model is not None else None

    def create() -> None:
        Study.create(path, spec, args.file, n_trials, force_new=args.force_new)

    return _run(plan, Study(path), data, resume=False, create=create, storage=storage)


def cmd_resume(args: argparse.Namespace) -> int:
    """Continue an interrupted study: finished trials stay, running ones resume, none repeat."""
    from sweeper.engine.session import check_address
    from sweeper.optuna_storage import resolve
    from sweeper.plan import make_plan
    from sweeper.store import Study

    study = Study.open(args.study, args.out)
    study.check_free()  # another driver holds it: refuse now, naming its pid
    meta = study.meta()
    if meta.get("state") == "finished":
        console().print(f"study {study.name} is finished: nothing to resume ({study.path})")
        return 0
    if meta.get("state") == "running" and study.driver_alive():
        raise SweeperError(
            f"{study.path}: study is running (driver pid {meta.get('pid')}); nothing to resume"
        )
    spec = study.spec()
    saved = str(study.path / "spec.yaml")
    given = _given_storage(args.storage) if args.storage else None
    url = given[1] if given else (spec.storage and resolve(spec.storage, saved))
    source = "--storage" if given else saved
    storage = _check_storage(url or None, spec.name, study.path, source)
    if given and given[0] != spec.storage:  # the mirror moves: say so in the saved spec
        spec = _save_spec(study, spec.model_copy(update={"storage": given[0]}))
    if args.wandb and args.wandb != spec.wandb.mode:
        wandb = spec.wandb.model_copy(update={"mode": args.wandb})
        spec = _save_spec(study, spec.model_copy(update={"wandb": wandb}))
    if args.address and args.address != spec.resources.address:
        spec = _save_spec(study, spec.model_copy(update={"resources": _resources(spec, args)}))
    check_address(spec.resources.address)
    plan = make_plan(spec, saved, data_dir=args.data_dir, max_trials=meta.get("n_trials"))
    data = _load_data(plan) if spec.model is not None else None
    return _run(plan, study, data, resume=True, storage=storage)


def _plan(args: argparse.Namespace) -> Any:
    from sweeper.plan import make_plan
    from sweeper.spec import load_spec

    overrides = list(args.overrides)
    if getattr(args, "wandb", None):
        overrides.append(f"wandb.mode={args.wandb}")
    if getattr(args, "address", None):
        overrides.append(f"resources.address={args.address}")
    spec = load_spec(args.file, overrides, name=args.name)
    # The spec (saved, pickled by Ray) keeps the storage masked; the real URL goes apart.
    args.storage_url = None
    if getattr(args, "storage", None) or spec.storage:
        safe, args.storage_url = _given_storage(args.storage or spec.storage, args.file)
        spec = spec.model_copy(update={"storage": safe})
    return make_plan(spec, args.file, data_dir=args.data_dir, max_trials=args.max_trials)


def _given_storage(url: str, source: str = "--storage") -> tuple[str, str]:
    """A storage URL as given: (the form the study saves, the real URL)."""
    from sweeper.errors import SpecError
    from sweeper.optuna_storage import absolute, check_syntax, masked, resolve

    try:
        check_syntax(url)
    except ValueError as exc:
        key = "" if source == "--storage" else "storage"
        raise SpecError(source, key, str(exc)) from None
    url = absolute(url)  # a relative file path: from here, not from where resume runs
    return masked(url), resolve(url, source)


def _storage_source(args: argparse.Namespace) -> str:
    return "--storage" if getattr(args, "storage", None) else args.file


def _check_storage(url: str | None, name: str, path: Any, source: str) -> str | None:
    """``url`` once it is reachable and free for this study (before Ray, nothing written)."""
    if url is None:
        return None
    from sweeper.optuna_storage import check_storage

    check_storage(url, name, path, source)
    return url


def _save_spec(study: Any, spec: Any) -> Any:
    """Record a changed spec (a new W&B mode, a new storage) in the saved spec.yaml."""
    from sweeper.store import atomic_write, dump_spec

    atomic_write(study.path / "spec.yaml", dump_spec(spec))
    return spec


def _resources(spec: Any, args: argparse.Namespace) -> Any:
    """The saved spec's resources joining the cluster at ``--address`` (validated)."""
    from pydantic import ValidationError

    from sweeper.spec.schema import Resources

    try:
        return Resources.model_validate({**spec.resources.model_dump(), "address": args.address})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SweeperError(f"--address: {first['msg'].removeprefix('Value error, ')}") from None


def _load_data(plan: Any) -> Any:
    from sweeper.data import DataError, load_splits

    try:
        return load_splits(plan.spec.data, plan.spec.data.root)
    except DataError as exc:
        raise SweeperError(f"{plan.source}: data: {exc}") from None


def _what(spec: Any, data: Any) -> str:
    """What each trial runs, for the first line of a run."""
    if spec.model is None:
        return spec.runs  # "program train.py": no data of sweeper's
    sizes = data.sizes()
    return (
        f"{spec.model.name} on {spec.data.name} "
        f"({sizes['train']}/{sizes['val']}/{sizes['test']} train/val/test)"
    )


def _run(
    plan: Any, study: Any, data: Any, resume: bool, create: Any = None, storage: str | None = None
) -> int:
    """Run (or resume) ``study`` under its lock; Ctrl-C or SIGTERM leave it interrupted (130).

    ``create`` makes a new study's folder; it runs inside the same guard, so a signal that
    comes while (or just after) the folder is made still leaves the study ``interrupted``.
    """
    from sweeper.engine.tune import run_study
    from sweeper.signals import sigterm_as_sigint

    locked = False
    spec = plan.spec
    try:
        with sigterm_as_sigint():  # from here on SIGTERM is a Ctrl-C
            if create is not None:
                create()
            err = console(stderr=True)
            verb = "resuming" if resume else "study"
            err.print(
                f"{verb} {spec.name}: {plan.n_trials} trials of {_what(spec, data)} -> {study.path}"
            )
            with study.lock():
                locked = True
                result = run_study(plan, study, data, resume=resume, storage=storage)
    except KeyboardInterrupt:
        # Stopped before (or while) Ray Tune ran: the study is resumable; say so.
        made = (study.path / "study.json").exists()
        if made and (locked or study.holder() is None):
            study.set_state("interrupted", pid=None)
        hint = f"continue with `sweeper resume {study.path}`" if made else "no study was made"
        print(f"interrupted; {hint}", file=sys.stderr)
        raise
    print_summary(study, spec, storage)
    if result.target_reached:
        err.print(
            f"{spec.metric.name} reached its target {spec.metric.target:g}: no new trials "
            f"started ({result.finished + result.failed}/{result.total} trials run)"
        )
    if result.interrupted:
        err.print(
            f"interrupted: {result.finished + result.failed}/{result.total} trials done; "
            f"continue with `sweeper resume {study.path}`"
        )
        return 130
    return 0
