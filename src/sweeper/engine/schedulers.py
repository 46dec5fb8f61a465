"""Ray Tune's schedulers, choosing the next trial to run without a pass over every trial.

Ray's ``FIFOScheduler.choose_trial_to_run`` (which ASHA inherits) walks every trial of the
experiment, twice when none is waiting, on each step of the controller: with 10,000 trials
that walk is most of the driver's time. These keep the trials that can still run (added,
not yet ended) in insertion order, the same order Ray's walk has, and walk only those.
Public scheduler API only (``on_trial_add``/``on_trial_complete``/``on_trial_remove``/
``choose_trial_to_run``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule

from sweeper.engine.queue import TIME_ATTR, RunnableQueue
from sweeper.registry.schedulers import SCHEDULERS, build_pruner, entry_class

if TYPE_CHECKING:
    from sweeper.spec import Spec


class FifoQueue(RunnableQueue, FIFOScheduler):
    """Ray's FIFO scheduler (no early stopping)."""


class AshaQueue(RunnableQueue, ASHAScheduler):
    """Ray's ASHA (asynchronous successive halving)."""


class BestSoFarAsha(AshaQueue):
    """ASHA whose rungs compare each trial's best value so far, not its value at the rung
    (W&B's hyperband with ``strict: false``). Ray's trial results are left as they are."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        value = result.get(self._metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            bests = self.__dict__.setdefault("_best", {})
            best = bests.get(trial.trial_id)
            if best is None or (value > best if self._mode == "max" else value < best):
                best = value
            bests[trial.trial_id] = best
            result = {**result, self._metric: best}
        return super().on_trial_result(tune_controller, trial, result)


class MedianQueue(RunnableQueue, MedianStoppingRule):
    """Ray's median stopping rule."""


def _asha(spec: Spec, args: dict[str, Any]) -> Any:
    max_t = int(args.pop("max_t", spec.train.epochs))
    grace = int(args.pop("grace_period", 1))
    return AshaQueue(time_attr=TIME_ATTR, max_t=max_t, grace_period=min(grace, max_t), **args)


def _hyperband(spec: Spec, args: dict[str, Any]) -> Any:
    # Ray's HyperBand keeps its own bands and pauses trials (sweeper's own checkpoints let a
    # paused trial continue); its choose_trial_to_run is its own, so no RunnableQueue.
    cls = entry_class(SCHEDULERS["hyperband"])
    return cls(time_attr=TIME_ATTR, max_t=args.pop("max_t", spec.train.epochs), **args)


def _median(spec: Spec, args: dict[str, Any]) -> Any:
    return MedianQueue(time_attr=TIME_ATTR, **args)


def _population(name: str) -> Callable[[Spec, dict[str, Any]], Any]:
    def build(spec: Spec, args: dict[str, Any]) -> Any:
        from sweeper.engine.population import build_population

        return build_population(name, spec, args)

    return build


# name -> builder(spec, args) -> scheduler; one per entry of sweeper.registry.schedulers.SCHEDULERS
BUILDERS: dict[str, Callable[[Spec, dict[str, Any]], Any]] = {
    "asha": _asha,
    "hyperband": _hyperband,
    "median_stopping": _median,
    "pbt": _population("pbt"),
    "pb2": _population("pb2"),
}


def build_scheduler(spec: Spec) -> Any:
    """The spec's scheduler: its ``scheduler`` or ``pruner`` block, W&B's
    ``early_terminate`` (ASHA), else FIFO."""
    if spec.scheduler is not None:
        entry = SCHEDULERS[spec.scheduler.name]
        args = {**entry.defaults, **spec.scheduler.args}
        return BUILDERS[spec.scheduler.name](spec, args)
    if spec.pruner is not None:
        from sweeper.engine.pruning import OptunaPruning

        pruner = build_pruner(spec.pruner.name, spec.pruner.args)
        return OptunaPruning(pruner, spec.metric.name, spec.train.epochs, TIME_ATTR)
    if spec.early_terminate is not None:
        et = spec.early_terminate
        # a script's iterations are its metric's wandb.log calls (max_iter, else train.epochs)
        max_t = et.max_t(spec.train.epochs)
        # W&B's hyperband: rungs from the first band up to max_iter; a trial that passes the
        # top rung is not stopped there but trains its planned epochs (COMPLETE, not PRUNED).
        return (AshaQueue if et.strict else BestSoFarAsha)(
            time_attr=TIME_ATTR,
            max_t=max_t,
            grace_period=min(et.grace_period, max_t),
            reduction_factor=et.eta,
            stop_last_trials=False,
        )
    return FifoQueue()
