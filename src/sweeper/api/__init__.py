"""The Python API: run a sweep, open a study, read its tables, report and export.

::

    import sweeper

    study = sweeper.run("sweeps/quickstart.yaml", max_trials=4, overrides={"train.epochs": 1})
    study.trials()          # the table `sweeper status` shows, as a DataFrame
    study.report()          # inline in Jupyter; study.report("r.html") writes the page
    study.export(1)         # the best config as a sweep file, with its weights

The CLI is a thin layer over this module (:mod:`sweeper.cli`): the same checks, the same
one-line errors (:class:`~sweeper.errors.SweeperError`), the same lines on stderr.
Nothing heavy is imported until a function needs it.
"""

from __future__ import annotations

import os
from typing import Any

from sweeper.api._launch import Overrides, SpecLike
from sweeper.api._report import Report
from sweeper.api._study import Study


def run(
    spec: SpecLike,
    *,
    max_trials: int | None = None,
    overrides: Overrides = None,
    name: str | None = None,
    out: str | os.PathLike | None = None,
    data_dir: str | None = None,
    force_new: bool = False,
    wandb: str | None = None,
    address: str | None = None,
    storage: str | None = None,
) -> Study:
    """Run a sweep as a new study and return it (``sweeper run``).

    Args:
        spec: a sweep file's path, or the same mapping as a dict.
        max_trials: run at most this many trials (``--max-trials``).
        overrides: ``{"train.epochs": 1}`` or ``["train.epochs=1"]`` (``--set``).
        name: the study's name (default: the spec's ``name``; a dict without one: ``sweep``).
        out: the folder that holds studies (default ``./runs``).
        data_dir: the data root, relative to the current folder (default: ``data.root``,
            relative to the sweep file's folder, else ``$SWEEPER_DATA_DIR``, else ``./data``).
        force_new: delete an existing study of the same name first.
        wandb: ``offline``, ``online`` or ``disabled`` (default: the spec's ``wandb.mode``).
        address: join a running Ray cluster (``auto`` or ``HOST:PORT``).
        storage: where the Optuna mirror lives (a database URL).

    Returns:
        The study; an interrupted run (the kernel interrupted inside Ray Tune) returns it
        too, ``state == "interrupted"``, to continue with :meth:`Study.resume`.
    """
    from sweeper.api._launch import prepare, start
    from sweeper.console import command_clock
    from sweeper.store import StudyExists

    with command_clock():  # the progress line times the run from here
        prepared = prepare(
            spec,
            overrides=overrides,
            name=name,
            data_dir=data_dir,
            max_trials=max_trials,
            wandb=wandb,
            address=address,
            storage=storage,
        )
        try:
            launched = start(prepared, out=out, force_new=force_new, storage_given=bool(storage))
        except StudyExists as exc:  # said in this API's words, not the CLI's (--force-new)
            raise exc.for_api() from None
    return Study(launched.study, launched.result)


def check(
    spec: SpecLike,
    *,
    max_trials: int | None = None,
    overrides: Overrides = None,
    name: str | None = None,
    data_dir: str | None = None,
) -> Any:
    """Validate a sweep without running it (``sweeper check``); returns its
    :class:`sweeper.plan.Plan` (``space_size``, ``n_trials``, ``first_params``, ``spec``)."""
    from sweeper.api._launch import prepare

    return prepare(
        spec, overrides=overrides, name=name, data_dir=data_dir, max_trials=max_trials
    ).plan


def open_study(path_or_name: str | os.PathLike, out: str | os.PathLike | None = None) -> Study:
    """An existing study, by its folder's path or by name under ``out`` (default ./runs)."""
    from sweeper.store import Study as Store

    return Study(Store.open(os.fspath(path_or_name), None if out is None else os.fspath(out)))


__all__ = ["Report", "Study", "check", "open_study", "run"]
