"""The scheduler and pruner registries: names a sweep file may use, as data (no Ray here).

``scheduler:`` names one of Ray Tune's trial schedulers, ``pruner:`` one of Optuna's
pruners; each entry names its class and the arguments a sweep file may give it (the
rest, such as the metric, its mode and ``time_attr``, sweeper sets). A contract test
checks every entry's arguments against its class's signature, so this table is the one
place a sweep file's ``scheduler``/``pruner`` block is checked against, without
importing Ray at validation time.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

from sweeper.registry.base import Registry
from sweeper.registry.blocks import check_block, entry_class

__all__ = [
    "POPULATION",
    "PRUNERS",
    "SCHEDULERS",
    "Entry",
    "build_pruner",
    "check_block",
    "entry_class",
]


@dataclass(frozen=True)
class Entry:
    """One scheduler or pruner: its class (``module:Name``), what a file may set, and
    the defaults sweeper uses where the file is silent (``max_t``: the planned epochs)."""

    cls: str
    accepts: tuple[str, ...]
    defaults: dict[str, Any] = field(default_factory=dict)
    needs: dict[str, str] = field(default_factory=dict)  # pip package -> module it imports


SCHEDULERS: Registry[Entry] = Registry("scheduler")
PRUNERS: Registry[Entry] = Registry("pruner")


_RAY = "ray.tune.schedulers"
for _name, _entry in {
    "asha": Entry(
        f"{_RAY}:ASHAScheduler",
        ("max_t", "grace_period", "reduction_factor", "brackets", "stop_last_trials"),
        {"stop_last_trials": False},
    ),
    "hyperband": Entry(
        f"{_RAY}:HyperBandScheduler", ("max_t", "reduction_factor", "stop_last_trials")
    ),
    "median_stopping": Entry(
        f"{_RAY}:MedianStoppingRule",
        ("grace_period", "min_samples_required", "min_time_slice", "hard_stop"),
        {"grace_period": 1, "min_samples_required": 3},
    ),
    "pbt": Entry(
        f"{_RAY}:PopulationBasedTraining",
        (
            "perturbation_interval",
            "burn_in_period",
            "quantile_fraction",
            "resample_probability",
            "perturbation_factors",
            "synch",
        ),
        {"perturbation_interval": 1},
    ),
    "pb2": Entry(
        f"{_RAY}.pb2:PB2",
        ("perturbation_interval", "quantile_fraction", "synch"),
        {"perturbation_interval": 1},
        needs={"GPy": "GPy", "scikit-learn": "sklearn"},
    ),
}.items():
    SCHEDULERS.register(_name, _entry)

_OPTUNA = "optuna.pruners"
for _name, _entry in {
    "median": Entry(
        f"{_OPTUNA}:MedianPruner",
        ("n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials"),
    ),
    "percentile": Entry(
        f"{_OPTUNA}:PercentilePruner",
        ("percentile", "n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials"),
    ),
    "successive_halving": Entry(
        f"{_OPTUNA}:SuccessiveHalvingPruner",
        ("min_resource", "reduction_factor", "min_early_stopping_rate", "bootstrap_count"),
    ),
    "hyperband": Entry(
        f"{_OPTUNA}:HyperbandPruner",
        ("min_resource", "max_resource", "reduction_factor", "bootstrap_count"),
    ),
    # ``wrapped``: the pruner block PatientPruner wraps (its ``wrapped_pruner``), or none.
    "patient": Entry(f"{_OPTUNA}:PatientPruner", ("wrapped", "patience", "min_delta")),
    "threshold": Entry(
        f"{_OPTUNA}:ThresholdPruner", ("lower", "upper", "n_warmup_steps", "interval_steps")
    ),
}.items():
    PRUNERS.register(_name, _entry)


def build_pruner(name: str, args: dict[str, Any]) -> Any:
    """The Optuna pruner ``name`` with ``args`` (``patient``'s ``wrapped`` a pruner block)."""
    args = dict(args)
    if name == "patient":
        wrapped = args.pop("wrapped", None)
        args["wrapped_pruner"] = (
            build_pruner(wrapped["name"], wrapped.get("args", {})) if wrapped else None
        )
        args.setdefault("patience", 0)
    with warnings.catch_warnings():  # PatientPruner is "experimental"
        warnings.simplefilter("ignore")
        return entry_class(PRUNERS.get(name))(**args)


# Schedulers that copy one trial's state into another (exploit, then explore): their trials
# report Ray checkpoints (``engine/population.py``).
POPULATION = ("pbt", "pb2")
