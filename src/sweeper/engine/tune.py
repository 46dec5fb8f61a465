"""Run a study with Ray Tune: OptunaSearch picks configs, ASHA stops bad ones early."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from sweeper.errors import SweeperError
from sweeper.plan import Plan
from sweeper.spec import Spec
from sweeper.store import Study

# Ray's object store holds the dataset once for all trials; Fashion-MNIST is ~55 MB (uint8).
OBJECT_STORE_BYTES = 400 * 1024**2


@dataclass(frozen=True)
class RunResult:
    """What a finished (or interrupted) run leaves: counts and the best value."""

    total: int
    finished: int
    failed: int
    best: float | None
    interrupted: bool


def ray_env(spec: Spec) -> None:
    """Environment Ray and W&B must see before ``ray.init`` (workers inherit it)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("WANDB_MODE", spec.wandb.mode)


def init_ray(num_cpus: int) -> None:
    """Start a local Ray with exactly ``num_cpus`` CPUs, no dashboard, a small object store."""
    import ray

    if ray.is_initialized():
        return
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=OBJECT_STORE_BYTES,
        configure_logging=True,
        logging_level="ERROR",
    )


def concurrency(spec: Spec, num_cpus: int, num_gpus: float) -> int:
    """Trials that fit at once: the CPUs (and GPUs) divided by each trial's share."""
    res = spec.resources
    if res.cpus > num_cpus:
        raise SweeperError(
            f"resources.cpus: a trial asks for {res.cpus} CPUs but Ray has {num_cpus}"
        )
    fits = math.floor(num_cpus / res.cpus)
    if res.gpus > 0:
        if num_gpus < res.gpus:
            raise SweeperError(f"resources.gpus: a trial asks for {res.gpus} GPUs, found {num_gpus:g}")
        fits = min(fits, math.floor(num_gpus / res.gpus))
    if res.max_concurrent is not None:
        fits = min(fits, res.max_concurrent)
    return max(1, fits)


def build_tuner(plan: Plan, study: Study, data: Any, callbacks: list[Any], num_cpus: int) -> Any:
    """A Tuner for the plan: OptunaSearch over the spec's space, ASHA if asked, resources."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from sweeper.engine.trainable import ray_trainable
    from sweeper.space import distributions, make_sampler

    spec = plan.spec
    res = spec.resources
    trainable = tune.with_resources(
        tune.with_parameters(ray_trainable, spec=spec, data=data, cpus=res.cpus),
        {"cpu": res.cpus, "gpu": res.gpus},
    )
    space = distributions(spec)
    searcher = None
    if space:
        searcher = OptunaSearch(
            space=space, metric=spec.metric.name, mode=spec.metric.mode, sampler=make_sampler(spec)
        )
    scheduler = None
    if spec.early_terminate is not None:
        et = spec.early_terminate
        scheduler = ASHAScheduler(
            time_attr="training_iteration",
            max_t=et.max_iter or spec.train.epochs,
            grace_period=et.min_iter,
            reduction_factor=et.eta,
        )
    gpus = float(ray.cluster_resources().get("GPU", 0))
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=spec.metric.name,
            mode=spec.metric.mode,
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=plan.n_trials,
            max_concurrent_trials=concurrency(spec, num_cpus, gpus),
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=study.tune_dir.name,
            storage_path=str(study.path.resolve()),
            callbacks=callbacks,
            verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=res.max_failures),
        ),
    )


def run_study(plan: Plan, study: Study, data: Any, console: Any) -> RunResult:
    """Run every planned trial of ``plan`` into ``study``; returns the counts."""
    import optuna
    import ray

    from sweeper.engine.callbacks import ProgressCallback, StoreCallback, TrialBook

    spec = plan.spec
    if plan.n_trials is None:
        raise SweeperError(
            f"{plan.source}: run_cap: a {spec.sampler_name} sweep needs a trial budget; "
            "set run_cap in the file or pass --max-trials"
        )
    num_cpus = spec.resources.num_cpus or os.cpu_count() or 1
    ray_env(spec)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    book = TrialBook(spec)
    progress = ProgressCallback(book, plan.n_trials, console)
    init_ray(num_cpus)
    try:
        tuner = build_tuner(plan, study, data, [StoreCallback(study, book), progress], num_cpus)
        study.set_state("running", pid=os.getpid(), n_trials=plan.n_trials)
        tuner.fit()
    finally:
        progress.close()
        ray.shutdown()
    rows = list(book.rows.values())
    finished = sum(r["state"] in ("COMPLETE", "PRUNED") for r in rows)
    failed = sum(r["state"] == "FAIL" for r in rows)
    interrupted = finished + failed < plan.n_trials
    study.set_state("interrupted" if interrupted else "finished", pid=None)
    return RunResult(plan.n_trials, finished, failed, book.best_value(), interrupted)
