"""Starting and stopping the local Ray that runs a study's trials.

Three settings here reach into Ray's private side, all for start-up time on a small
machine and all pinned to the Ray of :data:`~sweeper.engine.snapshot.TESTED_RAY` (2.60);
on another Ray each falls back to Ray's own behaviour:

* ``_system_config["preload_python_modules"]``: the raylet starts one Python worker per
  CPU as Ray starts, and each imports these modules before it takes work, so torch, Ray
  Tune's function trainable and sweeper's trial code (about 4 s of imports on one core)
  are imported while the driver sets the study up, not between a trial's start and its
  first epoch.
* Ray Tune registers each trainable with a runtime environment that only sets a few
  variables (``PL_DISABLE_FORK=1``, and ones it copies from the driver's environment;
  ``ray.tune.execution.class_cache``). A task with a runtime environment never lands on
  those prestarted workers (they have none), so every trial actor waited for a new worker
  and its imports, and the prestarted ones were wasted. :func:`init_ray` sets the variables
  in the environment every worker inherits, and :func:`_same_env_without_runtime_env`
  registers the trainable without the (now no-op) runtime environment when, and only
  when, each of its variables already has that value in the workers.
* :func:`shutdown_ray` stops Ray's autoscaler monitor (``monitor.py``) itself first: a
  single-node Ray has nothing for it to do, and it does not exit on SIGTERM, so
  ``ray.shutdown`` waits out its one-second grace period for it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
from typing import Any

# Ray's object store holds the dataset once for all trials; Fashion-MNIST is ~55 MB (uint8).
OBJECT_STORE_BYTES = 400 * 1024**2
# What a trial's worker imports before its first epoch (engine/trainable.py, trial/loop.py).
WORKER_PRELOAD = (
    "torch",
    "torch._dynamo",  # torch.optim imports it on the first optimizer (about 2 s)
    "ray.tune.trainable.function_trainable",
    "sweeper.engine.trainable",
    "sweeper.trial.loop",
)
# A script trial's worker runs no torch itself: the script imports what it needs.
SCRIPT_PRELOAD = ("ray.tune.trainable.function_trainable", "sweeper.script.trainable")
# Ray Tune's default variables for its trainables' workers (class_cache.DEFAULT_ENV_VARS).
TUNE_WORKER_ENV = {"PL_DISABLE_FORK": "1"}
_WORKER_ENV: dict[str, str] = {}  # the environment this driver's Ray workers inherit


def init_ray(num_cpus: int, preload: tuple[str, ...] = WORKER_PRELOAD) -> bool:
    """Start a local Ray with ``num_cpus`` CPUs, no dashboard; False if one is running.

    Its workers preload ``preload`` (a module that fails to import is skipped, and the
    trial imports it as before).
    """
    import ray

    if ray.is_initialized():
        return False
    for key, value in TUNE_WORKER_ENV.items():
        os.environ.setdefault(key, value)
    _WORKER_ENV.clear()
    _WORKER_ENV.update(os.environ)  # Ray's processes, and so every worker, inherit this
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=OBJECT_STORE_BYTES,
        configure_logging=True,
        logging_level="ERROR",
        _system_config={"preload_python_modules": list(preload)},  # Ray 2.60 name
    )
    _same_env_without_runtime_env()
    return True


def _same_env_without_runtime_env() -> None:
    """Let Ray Tune's trial actors use the prestarted workers (see the module's notes)."""
    try:
        import ray
        from ray.tune.execution import class_cache

        cache_cls = class_cache._ActorClassCache
        tune_env = (class_cache.DEFAULT_ENV_VARS, class_cache.ENV_VARS_TO_PROPAGATE)
    except (ImportError, AttributeError):  # another Ray: keep its runtime environment
        return
    original = cache_cls.get
    if getattr(original, "_sweeper", False):
        return

    @functools.wraps(original)
    def get(self: Any, trainable_cls: Any) -> Any:
        defaults, propagated = tune_env
        wanted = {**defaults, **{k: os.environ[k] for k in propagated if k in os.environ}}
        cache = getattr(self, "_cache", None)
        inherited = all(_WORKER_ENV.get(k) == v for k, v in wanted.items())
        if isinstance(cache, dict) and trainable_cls not in cache and inherited:
            cache[trainable_cls] = ray.remote(trainable_cls)  # the same, minus a no-op env
        return original(self, trainable_cls)

    get._sweeper = True  # type: ignore[attr-defined]
    cache_cls.get = get


def shutdown_ray() -> None:
    """``ray.shutdown()``, without waiting a second for the autoscaler monitor to go."""
    import ray

    for info in _processes("monitor"):
        with contextlib.suppress(OSError, ValueError, subprocess.TimeoutExpired):
            info.process.kill()  # it holds no state; Ray reaps it (poll) below
            info.process.wait(timeout=1)
    ray.shutdown()


def _processes(kind: str) -> list[Any]:
    """Ray 2.60's record of the processes this driver started, of one kind (or none)."""
    try:
        from ray._private import worker

        node = worker._global_node
        return list(node.all_processes.get(kind, [])) if node is not None else []
    except (ImportError, AttributeError):  # another Ray: leave it to ray.shutdown
        return []
