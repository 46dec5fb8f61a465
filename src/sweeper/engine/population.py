"""Population based training (Ray Tune's PBT and PB2) over the spec's parameters.

PBT exploits by copying a top trial's *Ray* checkpoint into a bottom trial, then explores
by perturbing the copied config. sweeper's trials keep their own checkpoints
(``engine/trainable.py``); under these schedulers they report each epoch's state as a Ray
checkpoint as well (Ray persists it in the trial's folder, keeping :data:`KEEP`), and a
trial restored from another trial's checkpoint loads that state with its new config (the
optimizer takes the new ``lr``, ``momentum``, ``weight_decay``) and records its lineage
(``pbt_source``, ``pbt_epoch``, ``pbt_changes``: trial table, history, W&B, report).

The mutations are the spec's parameters: a categorical's values as a list, a range as
``tune.uniform``/``loguniform``/``randint`` (PBT); PB2 takes the numeric ranges' bounds.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from sweeper.engine.queue import TIME_ATTR

if TYPE_CHECKING:
    from sweeper.spec import Spec
    from sweeper.spec.params import Param

# Ray checkpoints a PBT trial keeps (PBT warns at 2 or fewer: a copy may outlive its source's).
KEEP = 4
_LOG = {"log_uniform_values", "log_uniform"}
_INT = {"int_uniform", "q_uniform"}


def _mutation(param: Param) -> Any:
    """PBT's mutation for one parameter, or None for one it cannot perturb."""
    from ray import tune

    if param.values is not None and param.kind != "constant":
        return list(param.values)
    if param.min is None or param.max is None:
        return None  # normal, beta, ...: no bounded range to resample from
    if param.kind in _INT and isinstance(param.min, int) and isinstance(param.max, int):
        return tune.randint(param.min, param.max + 1)
    if param.kind in _LOG:
        return tune.loguniform(param.min, param.max)
    if param.kind == "uniform":
        return tune.uniform(param.min, param.max)
    return None


def mutations(spec: Spec) -> dict[str, Any]:
    """``hyperparam_mutations`` from the spec's parameters (those PBT can perturb)."""
    out = {name: _mutation(p) for name, p in spec.parameters.items()}
    found = {k: v for k, v in out.items() if v is not None}
    if not found:
        raise ValueError("pbt needs a parameter it can perturb: a values list or a min/max range")
    return found


def bounds(spec: Spec) -> dict[str, list[float]]:
    """PB2's ``hyperparam_bounds``: the numeric ranges of the spec's parameters."""
    found = {
        name: [float(p.min), float(p.max)]
        for name, p in spec.parameters.items()
        if p.values is None and p.min is not None and p.max is not None
    }
    if not found:
        raise ValueError("pb2 needs a parameter with a numeric min/max range")
    return found


def build_population(name: str, spec: Spec, args: dict[str, Any]) -> Any:
    """Ray's PBT or PB2 for ``spec`` with the file's ``args`` (time: the trial's epoch)."""
    from sweeper.engine.pbt_sync import CLASSES  # Ray's classes, fixed for a resume

    cls = CLASSES[name]
    space = {"hyperparam_mutations": mutations(spec)}
    if name == "pb2":
        space = {"hyperparam_bounds": bounds(spec)}
    return cls(time_attr=TIME_ATTR, **space, **args)


def is_population(spec: Spec) -> bool:
    """Whether the spec's scheduler is PBT or PB2."""
    from sweeper.registry.schedulers import POPULATION

    return spec.scheduler is not None and spec.scheduler.name in POPULATION


def initial_population(spec: Spec, n_trials: int, at_once: int) -> tuple[Any, dict[str, Any]]:
    """Ray's BasicVariantGenerator over ``n_trials`` configs drawn up front by the spec's
    Optuna sampler, and the param space it fills in (every key, each config's own value):
    Ray's PBT refuses a search algorithm (it changes the configs itself), so OptunaSearch
    cannot hand out the first ones. ``metric.target`` is not watched here.
    """
    import optuna
    from ray.tune.search import BasicVariantGenerator

    from sweeper.search.space import constants, decode, distributions, make_sampler

    space = distributions(spec)
    study = optuna.create_study(sampler=make_sampler(spec), direction=spec.metric.goal)
    configs = []
    for _ in range(n_trials):
        trial = study.ask(space)
        configs.append({**constants(spec), **decode(spec, dict(trial.params))})
        with contextlib.suppress(RuntimeError):  # the grid sampler's stop() once it is done
            study.tell(trial, 0.0)  # (told all the same): the grid moves to the next cell
    keys = {k: None for c in configs for k in c}
    return BasicVariantGenerator(points_to_evaluate=configs, max_concurrent=at_once), keys


def checkpoint_config(spec: Spec) -> Any:
    """Ray's CheckpointConfig: :data:`KEEP` per trial under PBT/PB2, else Ray's default
    (sweeper's trials then report no Ray checkpoint)."""
    from ray import tune

    if is_population(spec):
        return tune.CheckpointConfig(num_to_keep=KEEP)
    return None
