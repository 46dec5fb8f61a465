"""Run a study with Ray Tune: OptunaSearch picks configs, ASHA stops bad ones early.

Ray Tune owns the study's live state (its experiment snapshot in ``tune/`` holds the trials
and the pickled OptunaSearch, sampler included); ``sweeper resume`` restores from it. The
study's own files (trial table, history, optuna.db) are written by the driver callback.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sweeper.engine.session import (
    CLIENT_PRELOAD,
    SCRIPT_PRELOAD,
    WORKER_PRELOAD,
    init_ray,
    shutdown_ray,
)
from sweeper.errors import SweeperError
from sweeper.plan import Plan
from sweeper.signals import raise_if_stopped, sigterm_as_sigint
from sweeper.spec import Spec
from sweeper.states import TrialState, counts
from sweeper.store import Study

if TYPE_CHECKING:
    from sweeper.engine.placement import Placement

# Ray snapshots the experiment (every trial's state, the searcher) every 2 s, so a kill loses
# little; past this many trials a snapshot is large (~17 kB a trial), and Ray's own "auto"
# period (snapshots take at most 5% of the time) keeps its cost per trial from growing.
SMALL_STUDY_TRIALS = 500


@dataclass(frozen=True)
class RunResult:
    """What a finished (or interrupted) run leaves: counts and the best value."""

    total: int
    finished: int
    failed: int
    interrupted: bool
    target_reached: bool = False


def ray_env(spec: Spec) -> None:
    """Environment Ray and W&B must see before ``ray.init`` (workers inherit it); Ray's
    token authentication is set where Ray starts (``engine/guard.py``)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("WANDB_MODE", spec.wandb.mode)


def snapshot_period(n_trials: int) -> str:
    """Ray's experiment snapshot period (``TUNE_GLOBAL_CHECKPOINT_S``) for a study's size;
    ``SWEEPER_SNAPSHOT_S`` overrides it."""
    return os.environ.get("SWEEPER_SNAPSHOT_S") or (
        "2" if n_trials <= SMALL_STUDY_TRIALS else "auto"
    )


def make_trainable(
    spec: Spec, data: Any, placement: Placement, study: Study, pool: Any = None
) -> Any:
    """The trial function with its data in Ray's object store and its resources attached:
    ``train_trial`` for a registered model, the user's script for a ``program``, a light
    client of the hosts in ``pool`` (``engine/hosts.py``) when the study has hosts."""
    from ray import tune

    if pool is not None:
        from sweeper.engine.hosted_trainable import hosted_trainable
        from sweeper.engine.population import is_population

        fn = tune.with_parameters(
            hosted_trainable,
            hosts=pool.handles,
            data=[pool.data],
            population=is_population(spec),
        )
        return tune.with_resources(fn, {"cpu": pool.layout.client_cpus, "gpu": 0})
    if spec.model is None:
        from sweeper.engine.script_trainable import script_trainable

        fn = tune.with_parameters(script_trainable, spec=spec, study_path=str(study.path.resolve()))
    else:
        from sweeper.engine.trainable import ray_trainable

        fn = tune.with_parameters(
            ray_trainable, spec=spec, data=data, cpus=placement.cpus, device=placement.device
        )
    return tune.with_resources(fn, {"cpu": placement.cpus, "gpu": placement.gpus})


def build_tuner(
    plan: Plan, study: Study, trainable: Any, callbacks: list[Any], at_once: int
) -> Any:
    """A new Tuner: OptunaSearch over the spec's space, the spec's scheduler (or pruner),
    ``at_once`` trials."""
    from ray import tune

    from sweeper.engine.population import checkpoint_config, initial_population, is_population
    from sweeper.engine.schedulers import build_scheduler
    from sweeper.engine.search import SpecSearch
    from sweeper.search.space import distributions

    spec, n_trials = plan.spec, plan.trial_budget()
    searcher = SpecSearch(spec) if distributions(spec) else None
    population = is_population(spec)  # PBT/PB2: no search algorithm (Ray refuses one)
    param_space = None
    if population:
        searcher, param_space = initial_population(spec, n_trials, at_once)
    scheduler = build_scheduler(spec)
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=spec.metric.name,
            mode=spec.metric.mode,
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=n_trials,
            max_concurrent_trials=None if population else at_once,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=study.tune_dir.name,
            storage_path=str(study.path.resolve()),
            callbacks=callbacks,
            verbose=0,
            checkpoint_config=checkpoint_config(spec),
            failure_config=tune.FailureConfig(max_failures=spec.resources.max_failures),
        ),
    )


def _start_hosts(spec: Spec, data: Any, placement: Placement, plan: Plan, study: Study) -> Any:
    """The study's hosts when its executor is the host (``engine/executor.py``), else None;
    says where the trials run and records it in ``study.json``."""
    import ray

    from sweeper.engine.executor import choose_executor, host_layout
    from sweeper.engine.hosts import HostStartError, start_hosts

    executor = choose_executor(spec, placement, plan.source)
    if executor == "process":
        print(f"  trials on {placement.describe()}", file=sys.stderr)
        study.set_state("running", placement={**placement.as_dict(), "executor": executor})
        return None
    cpus = float(ray.cluster_resources().get("CPU", 1))
    layout = host_layout(spec, placement, cpus, plan.trial_budget())
    try:
        pool = start_hosts(spec, data, layout)
    except HostStartError as exc:
        reason = str(exc)
        if spec.resources.executor == "host":
            raise SweeperError(
                f"{plan.source}: resources.executor: the hosts did not start ({reason})"
            ) from None
        print(f"warning: the hosts did not start ({reason}); a process per trial", file=sys.stderr)
        print(f"  trials on {placement.describe()}", file=sys.stderr)
        study.set_state(
            "running",
            placement={**placement.as_dict(), "executor": "process", "host_error": reason},
        )
        return None
    print(f"  trials on {placement.device}: {layout.describe(placement.bound)}", file=sys.stderr)
    study.set_state(
        "running",
        placement={**placement.as_dict(), "executor": executor, "hosts": layout.as_dict()},
    )
    return pool


def _watch_cluster(spec: Spec, study: Study) -> Any:
    """On a joined cluster: when its head goes away, mark the study interrupted, say so in
    one line and end the driver (Ray's core would end it a minute later, status 1)."""
    if spec.resources.address is None:
        return None
    from sweeper.engine.session import ClusterWatch

    def lost(address: str) -> None:
        study.set_state("interrupted", pid=None)
        print(
            f"sweeper: error: the Ray cluster at {address} went away; the study is "
            f"interrupted: continue with `sweeper resume {study.path}` once it is back",
            file=sys.stderr,
            flush=True,
        )
        os._exit(130)  # Ray Tune's loop waits on the lost cluster: no clean way out

    return ClusterWatch(lost)


def run_study(
    plan: Plan, study: Study, data: Any, *, resume: bool = False, storage: str | None = None
) -> RunResult:
    """Run (or, with ``resume``, continue) every planned trial of ``plan`` into ``study``.

    ``storage`` is the Optuna mirror's real URL (None: the one the saved spec names); it
    reaches the driver callback only, never Ray's pickles.

    On resume Ray's snapshot in ``tune/`` is the truth; without a usable one (the driver was
    killed before Ray wrote its first) the study starts over, its old rows dropped.
    Ctrl-C or SIGTERM at any point marks the study interrupted (then KeyboardInterrupt, or
    an interrupted :class:`RunResult` when Ray Tune stopped the trials itself).
    """
    import optuna
    from ray import tune

    from sweeper.engine.callbacks import (
        StudyCallback,
        closing_callbacks,
        muted_trial_errors,
        study_binding,
    )
    from sweeper.engine.placement import fills_the_cpus, place_on_ray
    from sweeper.engine.relocate import relocate_experiment
    from sweeper.engine.snapshot import read_snapshot, repair

    plan = replace(plan, spec=study.with_code(plan.spec))  # workers load the study's copies
    spec = plan.spec
    n_trials = plan.trial_budget()  # a one-line error when nothing bounds the trials
    ray_env(spec)
    os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = snapshot_period(n_trials)  # read by fit()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # A restarted trial reports its restored epoch again (OptunaSearch then ignores the
    # intermediate value of a step it has, and says so): expected, not the user's concern.
    warnings.filterwarnings("ignore", message="The reported value is ignored because this")
    started, watch, pool = False, None, None
    with sigterm_as_sigint() as rearm:
        try:
            study.set_state("running", pid=os.getpid(), n_trials=n_trials)
            preload = (
                SCRIPT_PRELOAD
                if spec.model is None
                else CLIENT_PRELOAD
                if spec.resources.executor == "host"
                else WORKER_PRELOAD
            )
            cpus = spec.resources.num_cpus or os.cpu_count() or 1
            prestart = fills_the_cpus(spec, n_trials, cpus)
            started = init_ray(cpus, spec.resources.address, preload, prestart)
            rearm()  # ray.init replaced the SIGTERM handler
            watch = _watch_cluster(spec, study)
            placement = place_on_ray(spec, n_trials, data, plan.source)
            if placement.warning:
                print(placement.warning, file=sys.stderr)
            pool = _start_hosts(spec, data, placement, plan, study)
            at_once = pool.layout.at_once if pool else placement.at_once
            trainable = make_trainable(spec, data, placement, study, pool)
            tune_dir = study.tune_dir.resolve()  # Ray wants absolute paths
            snapshot = read_snapshot(tune_dir) if resume else None
            with (
                study_binding(study.path, storage),
                closing_callbacks(),
                muted_trial_errors(),  # the callback says each failure in one line
            ):  # a restored callback records here
                if snapshot is not None and snapshot.usable:
                    repair(tune_dir, snapshot)
                    relocate_experiment(tune_dir)  # the folder may have moved since
                    tuner = tune.Tuner.restore(str(tune_dir), trainable, resume_unfinished=True)
                else:
                    if resume:
                        study.reset_results()
                    callbacks = [StudyCallback(study.path, n_trials, storage)]
                    tuner = build_tuner(plan, study, trainable, callbacks, at_once)
                raise_if_stopped()  # a Ctrl-C lost inside Ray's start-up still stops here
                tuner.fit()
        except SweeperError:  # e.g. no cluster at resources.address: resumable as it is
            study.set_state("interrupted", pid=None)
            raise
        except (KeyboardInterrupt, SystemExit) as exc:
            study.set_state("interrupted", pid=None)
            if isinstance(exc, SystemExit) and exc.code == signal.SIGTERM:
                # SIGTERM inside ray.init, whose own handler exits: the same as a Ctrl-C
                raise KeyboardInterrupt from None
            raise
        finally:
            if watch is not None:
                watch.stop()
            if pool is not None:
                pool.stop()
            if started:
                shutdown_ray()
    df = study.trials()
    c = counts(df["state"] if not df.empty else [])
    finished = c[TrialState.COMPLETE] + c[TrialState.PRUNED]
    failed = c[TrialState.FAIL]
    reached = target_reached(spec, study)
    interrupted = finished + failed < n_trials and not reached
    study.set_state("interrupted" if interrupted else "finished", pid=None)
    return RunResult(n_trials, finished, failed, interrupted, reached)


def target_reached(spec: Spec, study: Study) -> bool:
    """Whether any trial reported ``metric.target`` (so the study ended on it: W&B's rule)."""
    if spec.metric.target is None:
        return False
    hist = study.history()
    name = spec.metric.name
    values = list(hist[name].dropna()) if name in hist.columns else []
    return any(spec.metric.reached(float(v)) for v in values)
