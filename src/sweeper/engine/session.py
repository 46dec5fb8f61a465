"""Starting and stopping the local Ray that runs a study's trials.

Four settings here reach into Ray's private side, all for start-up time on a small
machine and all pinned to the Ray of :data:`~sweeper.engine.snapshot.TESTED_RAY` (2.60);
on another Ray each falls back to Ray's own behaviour:

* ``_system_config["preload_python_modules"]``: the raylet starts one Python worker per
  CPU as Ray starts, and each imports these modules before it takes work, so torch, Ray
  Tune's function trainable and sweeper's trial code (about 4 s of imports on one core)
  are imported while the driver sets the study up, not between a trial's start and its
  first epoch.
* ``_system_config["prestart_worker_first_driver"]``: those workers are started only when
  the study's trials can take every one of them at once (``prestart``). Otherwise each
  trial's worker starts when its trial does, and none imports torch for nothing: a study
  of one trial at a time on 2 CPUs took 20 CPU-seconds with both started, 12 without.
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

A Ray started here gets a per-study token, listens on loopback and keeps its temp folder
apart, removed at shutdown; a joined cluster brings its own token (:mod:`.guard`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from sweeper.engine import guard
from sweeper.errors import SweeperError

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
SCRIPT_PRELOAD = ("ray.tune.trainable.function_trainable", "sweeper.engine.script_trainable")
# a hosted trial's client imports no torch (the host imports it once, in its own worker)
CLIENT_PRELOAD = ("ray.tune.trainable.function_trainable", "sweeper.engine.hosted_trainable")
# Ray Tune's default variables for its trainables' workers (class_cache.DEFAULT_ENV_VARS).
TUNE_WORKER_ENV = {"PL_DISABLE_FORK": "1"}
_WORKER_ENV: dict[str, str] = {}  # the environment this driver's Ray workers inherit
_SCRATCH: Path | None = None  # the temp folder of the Ray this driver started


def init_ray(
    num_cpus: int,
    address: str | None = None,
    preload: tuple[str, ...] = WORKER_PRELOAD,
    prestart: bool = True,
) -> bool:
    """Start a local Ray with ``num_cpus`` CPUs, no dashboard; False if one is running.

    Its workers preload ``preload`` (a module that fails to import is skipped, and the
    trial imports it as before); with ``prestart`` a worker per CPU starts with Ray,
    without it each starts when a task or trial needs it. With ``address`` (``auto`` or
    the head's ``HOST:PORT``) the driver joins that cluster instead, as Ray's own settings
    have it.
    """
    import ray

    if ray.is_initialized():
        return False
    if address is not None:
        _join_cluster(address)
        return True
    for key, value in TUNE_WORKER_ENV.items():
        os.environ.setdefault(key, value)
    global _SCRATCH
    _SCRATCH = guard.make_scratch()
    try:
        with guard.local_ray_env():
            _WORKER_ENV.clear()
            _WORKER_ENV.update(guard.without_token(dict(os.environ)))  # every worker's
            ray.init(
                num_cpus=num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                object_store_memory=OBJECT_STORE_BYTES,
                configure_logging=True,
                logging_level=logging.ERROR,
                _temp_dir=str(_SCRATCH),
                _system_config={  # Ray 2.60's names
                    "preload_python_modules": list(preload),
                    "prestart_worker_first_driver": prestart,
                },
            )
    except BaseException:
        _remove_scratch()
        raise
    _same_env_without_runtime_env()
    return True


def _join_cluster(address: str) -> None:
    """Connect to a running cluster; one line when there is none at ``address``.

    Its workers were started by its nodes, not by this driver: nothing is known of their
    environment, so Ray Tune keeps its runtime environment (``_WORKER_ENV`` stays empty).
    """
    import ray
    from ray.exceptions import AuthenticationError

    from sweeper.errors import SweeperError

    _WORKER_ENV.clear()
    check_address(address)  # Ray itself retries an unreachable head for minutes
    guard.prepare_join()
    try:
        ray.init(
            address=address,
            _node_ip_address=_local_ip(address),
            log_to_driver=False,
            configure_logging=True,
            logging_level=logging.ERROR,
        )
    except AuthenticationError:  # the token at hand is not the cluster's
        raise SweeperError(guard.no_token_message(address)) from None
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SweeperError(
            f"resources.address: cannot join the Ray cluster at {address}: {first[:200]}"
        ) from None
    gcs = ray.get_runtime_context().gcs_address  # what ``auto`` found
    if guard.answers_without_token(gcs):
        named = gcs if address == "auto" else address
        print(guard.open_cluster_warning(named), file=sys.stderr, flush=True)
    _same_env_without_runtime_env()


class ClusterWatch:
    """A daemon thread that calls ``on_lost(address)`` once the cluster's head (its GCS)
    has refused ``misses`` connections in a row, ``period`` seconds apart.

    A driver that loses the head hangs in Ray Tune's control loop, and Ray's core ends the
    process a minute later with its own log line and exit status 1; the watch lets the
    engine mark the study interrupted and say so in one line first.
    """

    def __init__(self, on_lost: Any, period: float | None = None, misses: int = 3) -> None:
        import ray

        if period is None:
            period = watch_period()
        self.address = ray.get_runtime_context().gcs_address
        self._on_lost, self._period, self._misses = on_lost, period, misses
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="cluster watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        missed = 0
        while not self._stop.wait(self._period):
            missed = 0 if _listening(self.address) else missed + 1
            if missed >= self._misses:
                self._on_lost(self.address)
                return

    def stop(self) -> None:
        self._stop.set()


def watch_period() -> float:
    """Seconds between two looks at a joined cluster's head: ``SWEEPER_CLUSTER_WATCH_S``
    (default 3); a value that is not a positive number is one line."""
    raw = os.environ.get("SWEEPER_CLUSTER_WATCH_S") or "3"
    try:
        period = float(raw)
    except ValueError:
        period = 0.0
    if not period > 0:
        raise SweeperError(
            f"SWEEPER_CLUSTER_WATCH_S: expected seconds (a number above 0), got {raw!r}"
        )
    return period


def _listening(address: str, timeout: float = 2.0) -> bool:
    import socket

    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError:
        return False
    return True


def check_address(address: str | None, timeout: float = 5.0) -> None:
    """One line, at once, when nothing listens at the head's ``HOST:PORT``, or when it wants
    a token and none is at hand (None, ``auto``: nothing to check here)."""
    import socket

    from sweeper.errors import SweeperError

    if address is None or address == "auto":
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise SweeperError(
            f"resources.address: no Ray cluster at {address} ({exc.strerror or exc}); "
            "start one with `ray start --head` or give its head's HOST:PORT"
        ) from None
    if not guard.token_at_hand() and guard.refuses_tokenless(address):
        raise SweeperError(guard.no_token_message(address))  # Ray would retry for a minute


def _local_ip(address: str) -> str | None:
    """A loopback head (``127.0.0.1:PORT``): this driver's node is on loopback too, as the
    cluster's nodes are; else Ray finds the address itself."""
    host = address.rpartition(":")[0]
    return "127.0.0.1" if host in ("127.0.0.1", "localhost") else None


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
    cache_cls.get = get  # type: ignore[method-assign]  # Ray's class, patched (module notes)


def shutdown_ray() -> None:
    """``ray.shutdown()``, without waiting a second for the autoscaler monitor to go; then
    the Ray's temp folder goes too (when this driver started that Ray)."""
    import ray

    for info in _processes("monitor"):
        with contextlib.suppress(OSError, ValueError, subprocess.TimeoutExpired):
            info.process.kill()  # it holds no state; Ray reaps it (poll) below
            info.process.wait(timeout=1)
    ray.shutdown()
    _remove_scratch()


def _remove_scratch() -> None:
    global _SCRATCH
    guard.remove_scratch(_SCRATCH)
    guard.restore_mode()
    _SCRATCH = None


def _processes(kind: str) -> list[Any]:
    """Ray 2.60's record of the processes this driver started, of one kind (or none)."""
    try:
        from ray._private import worker

        node = worker._global_node
        return list(node.all_processes.get(kind, [])) if node is not None else []
    except (ImportError, AttributeError):  # another Ray: leave it to ray.shutdown
        return []
