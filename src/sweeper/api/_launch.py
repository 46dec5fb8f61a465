"""From a sweep (a file or a dict) to a run study, and an interrupted study to a resumed one.

The work behind ``sweeper check``, ``run`` and ``resume``, for the CLI and the Python API
alike: every check before any slow work, the study folder made inside the signal guard,
Ray Tune run under the study's lock. Bad input is a one-line :class:`SweeperError`; lines
about the run go to stderr, exactly as the CLI prints them.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sweeper.console import console
from sweeper.errors import SpecError, SweeperError

DICT_SOURCE = "<spec>"  # where a spec given as a dict comes from, in messages
DEFAULT_DICT_NAME = "sweep"

SpecLike = str | os.PathLike | Mapping[str, Any]
Overrides = Mapping[str, Any] | Sequence[str] | None


@dataclass(frozen=True)
class Prepared:
    """A checked plan and the Optuna mirror's real URL (never saved: it may hold a password)."""

    plan: Any
    storage_url: str | None

    @property
    def source(self) -> str:
        return str(self.plan.source)


@dataclass(frozen=True)
class Launched:
    """A study that ran (or resumed): its folder and what the run left."""

    study: Any  # sweeper.store.Study
    result: Any  # sweeper.engine.tune.RunResult
    storage_url: str | None


def override_list(overrides: Overrides) -> list[str]:
    """``{"train.epochs": 1}`` (values as Python objects) or ``["train.epochs=1"]``."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    if isinstance(overrides, str):
        raise SweeperError(
            f"overrides: expected a mapping or a list of KEY=VALUE, got a string {overrides!r}"
        )
    return list(overrides)


def load(spec: SpecLike, overrides: list[str], name: str | None) -> tuple[Any, str]:
    """The validated spec of a sweep file or a dict, and its source for messages."""
    from sweeper.spec import load_spec, spec_from_dict

    if isinstance(spec, Mapping):
        raw = dict(spec)
        if name is None and "name" not in raw:
            name = DEFAULT_DICT_NAME
        return spec_from_dict(raw, DICT_SOURCE, overrides, name=name), DICT_SOURCE
    if not isinstance(spec, (str, os.PathLike)):
        raise SweeperError(
            f"spec: expected a sweep file's path or a dict, got {type(spec).__name__}"
        )
    path = os.fspath(spec)
    return load_spec(path, overrides, name=name), path


def prepare(
    spec: SpecLike,
    *,
    overrides: Overrides = None,
    name: str | None = None,
    data_dir: str | None = None,
    max_trials: int | None = None,
    wandb: str | None = None,
    address: str | None = None,
    storage: str | None = None,
) -> Prepared:
    """Load and check a spec against the registries (``sweeper check``'s work)."""
    from sweeper.plan import make_plan

    given = override_list(overrides)
    if wandb:
        given.append(f"wandb.mode={wandb}")
    if address:
        given.append(f"resources.address={address}")
    loaded, source = load(spec, given, name)
    loaded = _root_from_here(loaded, given)
    # The spec (saved, pickled by Ray) keeps the storage masked; the real URL goes apart.
    url = None
    if storage or loaded.storage:
        safe, url = given_storage(storage or loaded.storage, source)
        loaded = loaded.model_copy(update={"storage": safe})
    plan = make_plan(loaded, source, data_dir=data_dir, max_trials=max_trials)
    return Prepared(plan, url)


def _root_from_here(spec: Any, overrides: list[str]) -> Any:
    """A relative ``data.root`` given by ``--set`` is taken from the folder the command runs
    in, as ``--data-dir`` is (one in the file: from the file's folder, see the plan)."""
    from pathlib import Path

    keys = {o.partition("=")[0].strip() for o in overrides}
    root = spec.data.root
    if not keys & {"data", "data.root"} or root is None or Path(root).is_absolute():
        return spec
    data = spec.data.model_copy(update={"root": str(Path(root).expanduser().resolve())})
    return spec.model_copy(update={"data": data})


def placement(plan: Any) -> Any:
    """Where the trials would run on this machine (a GPU is probed, Ray is not started):
    a :class:`~sweeper.engine.placement.Placement` (``describe()``, ``warning``)."""
    from sweeper.engine.placement import place_here

    return place_here(plan.spec, plan.n_trials or 1, lambda: load_data(plan), plan.source)


def describe_placement(plan: Any, where: Any) -> str:
    """Where the trials would run and which executor runs them (``sweeper check``)."""
    from sweeper.engine.executor import choose_executor, host_layout

    spec = plan.spec
    if choose_executor(spec, where, plan.source) == "process":
        return f"{where.describe()}; executor process (a process per trial)"
    cpus = spec.resources.num_cpus or os.cpu_count() or 1
    layout = host_layout(spec, where, cpus, plan.n_trials or 1)
    return f"{where.device}: {layout.describe(where.bound)}; executor host"


def start(
    prepared: Prepared,
    *,
    out: str | os.PathLike | None = None,
    force_new: bool = False,
    storage_given: bool = False,
    summary: Callable[[Any, Any, str | None], None] | None = None,
) -> Launched:
    """Run a whole new study: every planned trial, results into the study folder.

    ``storage_given``: the storage came from an argument (``--storage``), not the file.
    ``summary(study, spec, storage)`` prints between the run and its closing lines (the CLI's
    trial table).
    """
    from sweeper.engine.session import check_address
    from sweeper.store import Study, study_path

    plan, source = prepared.plan, prepared.source
    spec = plan.spec
    if spec.runs == "nothing":
        raise SpecError(
            source, "", "a search space only: `sweeper run` needs a program or a model to train"
        )
    n_trials = plan.trial_budget()
    path = study_path(spec.name, None if out is None else os.fspath(out))
    Study.check_new(path, spec.name, force_new)  # before any slow work
    check_address(spec.resources.address)  # no cluster there: one line, no study made
    where = "--storage" if storage_given else source
    storage = check_storage(prepared.storage_url, spec.name, path, where)
    data = load_data(plan) if spec.model is not None else None

    def create() -> None:
        Study.create(path, spec, source, n_trials, force_new=force_new)

    study = Study(path)
    result = execute(plan, study, data, False, create, storage, summary)
    return Launched(study, result, storage)


def resume(
    study: Any,
    *,
    data_dir: str | None = None,
    wandb: str | None = None,
    address: str | None = None,
    storage: str | None = None,
    summary: Callable[[Any, Any, str | None], None] | None = None,
) -> Launched | None:
    """Continue an interrupted ``study`` (a :class:`sweeper.store.Study`): finished trials
    stay, running ones resume, none repeat. None (said on stdout) when it is finished."""
    from sweeper.engine.session import check_address
    from sweeper.mirror.storage import resolve
    from sweeper.plan import make_plan

    study.check_free()  # another driver holds it: refuse now, naming its pid
    meta = study.meta()
    if meta.get("state") == "finished":
        console().print(f"study {study.name} is finished: nothing to resume ({study.path})")
        return None
    if meta.get("state") == "running" and study.driver_alive():
        raise SweeperError(
            f"{study.path}: study is running (driver pid {meta.get('pid')}); nothing to resume"
        )
    spec = study.spec()
    saved = str(study.path / "spec.yaml")
    given = given_storage(storage) if storage else None
    url = given[1] if given else (spec.storage and resolve(spec.storage, saved))
    url = check_storage(url or None, spec.name, study.path, "--storage" if given else saved)
    if given and given[0] != spec.storage:  # the mirror moves: say so in the saved spec
        spec = save_spec(study, spec.model_copy(update={"storage": given[0]}))
    if wandb and wandb != spec.wandb.mode:
        mode = spec.wandb.model_copy(update={"mode": wandb})
        spec = save_spec(study, spec.model_copy(update={"wandb": mode}))
    if address and address != spec.resources.address:
        spec = save_spec(study, spec.model_copy(update={"resources": joined(spec, address)}))
    check_address(spec.resources.address)
    plan = make_plan(spec, saved, data_dir=data_dir, max_trials=meta.get("n_trials"))
    data = load_data(plan) if spec.model is not None else None
    result = execute(plan, study, data, True, None, url, summary)
    return Launched(study, result, url)


def given_storage(url: str, source: str = "--storage") -> tuple[str, str]:
    """A storage URL as given: (the form the study saves, the real URL)."""
    from sweeper.mirror.storage import absolute, check_syntax, masked, resolve

    try:
        check_syntax(url)
    except ValueError as exc:
        key = "" if source == "--storage" else "storage"
        raise SpecError(source, key, str(exc)) from None
    url = absolute(url)  # a relative file path: from here, not from where resume runs
    return masked(url), resolve(url, source)


def check_storage(url: str | None, name: str, path: Any, source: str) -> str | None:
    """``url`` once it is reachable and free for this study (before Ray, nothing written)."""
    if url is None:
        return None
    from sweeper.mirror.storage import check_storage as check

    check(url, name, path, source)
    return url


def save_spec(study: Any, spec: Any) -> Any:
    """Record a changed spec (a new W&B mode, a new storage) in the saved spec.yaml."""
    from sweeper.store import atomic_write, dump_spec

    atomic_write(study.path / "spec.yaml", dump_spec(spec))
    return spec


def joined(spec: Any, address: str) -> Any:
    """The saved spec's resources joining the cluster at ``address`` (validated)."""
    from pydantic import ValidationError

    from sweeper.spec.schema import Resources

    try:
        return Resources.model_validate({**spec.resources.model_dump(), "address": address})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SweeperError(f"--address: {first['msg'].removeprefix('Value error, ')}") from None


def load_data(plan: Any) -> Any:
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


def execute(
    plan: Any,
    study: Any,
    data: Any,
    resume: bool,
    create: Callable[[], None] | None = None,
    storage: str | None = None,
    summary: Callable[[Any, Any, str | None], None] | None = None,
) -> Any:
    """Run (or resume) ``study`` under its lock; Ctrl-C or SIGTERM leave it interrupted.

    ``create`` makes a new study's folder; it runs inside the same guard, so a signal that
    comes while (or just after) the folder is made still leaves the study ``interrupted``.
    Returns Ray's :class:`~sweeper.engine.tune.RunResult` (``interrupted`` when Ray Tune
    stopped the trials itself); a KeyboardInterrupt before or around it goes on up.
    """
    from sweeper.engine.tune import run_study
    from sweeper.signals import sigterm_as_sigint

    locked = False
    spec = plan.spec
    err = console(stderr=True)
    try:
        with sigterm_as_sigint():  # from here on SIGTERM is a Ctrl-C
            if create is not None:
                create()
            verb = "resuming" if resume else "study"
            err.print(
                f"{verb} {spec.name}: {plan.n_trials} trials of {_what(spec, data)} -> {study.path}"
            )
            with study.lock():
                locked = True
                if hasattr(data, "sizes"):  # what the report's overview says was loaded
                    study.update_meta(data_sizes=data.sizes())
                result = run_study(plan, study, data, resume=resume, storage=storage)
    except KeyboardInterrupt:
        # Stopped before (or while) Ray Tune ran: the study is resumable; say so.
        made = (study.path / "study.json").exists()
        if made and (locked or study.holder() is None):
            study.set_state("interrupted", pid=None)
        if made and not locked:
            study.drop_stale_lock()  # the signal may have come while the lock was taken
        hint = f"continue with `sweeper resume {study.path}`" if made else "no study was made"
        print(f"interrupted; {hint}", file=sys.stderr)
        raise
    if summary is not None:
        summary(study, spec, storage)
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
    return result
