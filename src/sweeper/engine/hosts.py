"""GPU hosts on Ray: one long-lived actor per GPU (or per few CPU cores) trains many trials.

Each actor wraps a :class:`sweeper.trial.host.Host` (the data on its device once, trials
stepped in turn) and runs it on a thread of its own; Tune's trials are light clients
(``engine/hosted_trainable.py``) that call :meth:`HostActor.join`, then
:meth:`HostActor.next` for each epoch the host finishes for them. The actor is threaded
(Ray's ``max_concurrency``): the clients' calls wait on a condition while the stepping
thread trains. After an epoch the trial waits (paused) until its client has taken that
epoch, so a host never runs ahead of its scheduler by more than the epoch under way, and a
client that vanished leaves a paused trial that is dropped after ``STALE_S``.

A trial id can have two clients over time: Tune pauses a trial (PBT's sync, an exploit), may
keep its client's actor in its cache with the old client still inside ``tune.report``, and
resumes the trial on another actor; the old client leaves only when its actor is reused or
ended, which can be long after the new one joined. So each client names itself (``client``)
at ``join``, and the host holds the trial for the newest one: a ``leave`` or ``next`` from a
client that was replaced is ignored (``{"gone": True, "replaced": True}`` for ``next``),
never dropping the new client's trial.

Checkpoints stay the trial's own: the host writes ``checkpoint_<epoch>/state.pt`` in the
trial's folder (the same files and rules as ``engine/trainable.py``), before the client
reports the epoch, and a trial (re)joining continues from the newest one there. A host
that dies fails its trials (their clients see Ray's actor error); Ray restarts the actor
(``max_restarts``) and retries the trials from their checkpoints within
``resources.max_failures``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STALE_S = 300.0  # a trial whose client has not asked for its epoch this long is dropped
WAIT_S = 1.0  # one `next` call waits at most this long (the client asks again)
HOST_RESTARTS = 3
FUSE_GRACE_S = 0.05  # train.fuse_trials: how long a host waits for clients to take epochs


class HostActor:
    """One host in a Ray actor (made remote by :func:`start_hosts`)."""

    def __init__(self, spec: Any, device: str, num_threads: int) -> None:
        from sweeper.engine.trainable import node_name

        self._spec = spec
        self._device, self._threads = device, num_threads
        self._host: Any = None  # made by the first :meth:`load` (a restart: the next join)
        self._cond = threading.Condition()
        self._queues: dict[str, deque[Any]] = {}
        self._folders: dict[str, Path] = {}
        self._asked: dict[str, float] = {}
        self._clients: dict[str, str] = {}  # the client each trial is held for (its newest)
        self._population: dict[str, tuple[dict[str, Any], dict[str, Any], Any]] = {}
        self._node = node_name()
        self._stopped = False

    # -- the clients' calls ------------------------------------------------------------------
    def load(self, data: list[Any]) -> dict[str, Any]:
        """Put the data on the device (once) and start stepping; where the host runs.

        ``data`` is ``[ref]``: the reference travels inside a list, so no constructor
        argument lives in Ray's object store and Ray can restart a dead host; the
        restarted host loads the data at its first join (each client brings the list).
        The data themselves in the list are taken as they are (a host driven directly).
        """
        import ray

        from sweeper.trial.host import Host

        with self._cond:
            if self._host is None:
                splits = data[0]
                self._host = Host(
                    ray.get(splits) if isinstance(splits, ray.ObjectRef) else splits,
                    device=self._device,
                    num_threads=self._threads,
                    fuse=self._spec.train.fuse_trials,
                )
                threading.Thread(target=self._loop, name="sweeper-host", daemon=True).start()
        return {"node": self._node, "device": str(self._host.device)}

    def held(self) -> int:
        """Trials this host holds now."""
        with self._cond:
            return len(self._queues)

    def join(
        self,
        trial_id: str,
        config: dict[str, Any],
        folder: str,
        data: list[Any],
        copied: str | None = None,
        client: str = "",
    ) -> dict[str, Any]:
        """Take a trial from its newest checkpoint in ``folder`` (or from scratch), or,
        under PBT, from another trial's checkpoint ``copied`` (an exploit), for ``client``
        (a name unique to this client: a trial held for an earlier one is taken from it).

        Returns ``{"node", "again", "finished", "lineage"}``: ``again`` the restored epoch's
        metrics, to be reported once more (the driver may never have seen them);
        ``finished`` when that checkpoint is the trial's last epoch (nothing is trained);
        ``lineage`` the PBT copy it descends from (added to each result).
        """
        from sweeper.engine.population import is_population
        from sweeper.engine.trainable import copied_state, log_start, newest_checkpoint
        from sweeper.trial import resolve_trial

        self.load(data)
        cfg = resolve_trial(self._spec, config)
        trial_dir = Path(folder)
        trial_dir.mkdir(parents=True, exist_ok=True)
        restore, source = newest_checkpoint(trial_dir)
        copy = copied_state(Path(copied), restore, config) if copied else None
        start_from = copy if copy is not None else restore
        start = int(start_from["epoch"]) if start_from is not None else 0
        origin = f"{Path(copied).parent.name}/{Path(copied).name}" if copied else None
        name = Path(copied).name if copied else (source.name if source else None)
        log_start(trial_dir, start, name, origin)
        metrics = dict((start_from or {}).get("metrics") or {})
        finished = start_from is not None and (start >= cfg.epochs or bool(metrics.get("diverged")))
        lineage = dict((start_from or {}).get("lineage") or {})
        reply = {
            "node": self._node,
            "again": metrics or None,
            "finished": finished,
            "lineage": lineage,
        }
        if finished:
            return reply
        with self._cond:
            if trial_id in self._queues:  # a paused trial resumed, or a retry: start again
                self._leave(trial_id)
            self._clients[trial_id] = client
            self._queues[trial_id] = deque()
            self._folders[trial_id] = trial_dir
            self._asked[trial_id] = time.monotonic()
            if is_population(self._spec):  # its epochs go back as Ray checkpoints
                mark = {"trial_id": trial_id, "config": dict(config)}
                self._population[trial_id] = (mark, lineage, start_from)
            self._host.add(trial_id, cfg, restore=start_from, new_config=copy is not None)
            self._cond.notify_all()
        return reply

    def next(
        self, trial_id: str, wait_s: float = WAIT_S, client: str = ""
    ) -> dict[str, Any] | None:
        """The trial's next finished epoch (``{"metrics", "done", "error"}``, and under
        PBT ``"checkpoint"``), or None when none came within ``wait_s`` (ask again);
        ``{"gone": True}`` for an unknown trial, with ``"replaced"`` when the trial is
        held for a newer client than ``client``."""
        deadline = time.monotonic() + wait_s
        with self._cond:
            while True:
                if self._clients.get(trial_id, client) != client:
                    return {"gone": True, "replaced": True}
                queue = self._queues.get(trial_id)
                if queue is None:
                    return {"gone": True}
                self._asked[trial_id] = time.monotonic()
                if queue:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            event = queue.popleft()
            reply = {"metrics": event.metrics, "done": event.done, "error": event.error}
            if trial_id in self._population and event.state is not None and event.metrics:
                reply["checkpoint"] = self._population_checkpoint(trial_id, event)
            if event.done:
                self._forget(trial_id)
            elif not queue and trial_id in self._host.trials():
                self._host.resume(trial_id)  # the client has it: train the next epoch
                self._cond.notify_all()
            return reply

    def _population_checkpoint(self, trial_id: str, event: Any) -> str:
        """The epoch's state as the PBT checkpoint the client reports (a folder in the
        trial's folder, on the storage every node sees; Ray copies it, the client removes
        it): the same state a process trial reports (``population_state``)."""
        from sweeper.engine.trainable import STATE_FILE, population_state, torch_save

        mark, lineage, restore = self._population[trial_id]
        metrics = {**event.metrics, **lineage}
        state = population_state(event.state, mark, metrics, lineage, restore)
        path = self._folders[trial_id] / f".report-{int(event.state['epoch']):06d}"
        path.mkdir(exist_ok=True)
        torch_save(state, path / STATE_FILE)
        return str(path)

    def leave(self, trial_id: str, client: str = "") -> None:
        """The client is done with the trial (stopped by its scheduler, say); nothing
        when the trial is held for a newer client (this one's leave came late)."""
        with self._cond:
            if self._clients.get(trial_id, client) == client:
                self._leave(trial_id)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    # -- the stepping thread -----------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and not self._host.busy:
                    self._drop_stale()
                    self._cond.wait(5.0)
                if self._stopped:
                    return
                events = self._host.step()
                for event in events:
                    self._deliver(event)
                if events and self._host.fuse:
                    self._await_clients()

    def _await_clients(self) -> None:
        """Wait (at most :data:`FUSE_GRACE_S`) until the clients took the epochs handed out,
        so their trials resume together and trials of one shape meet at the next round's
        epoch boundary, where the host fuses them (``train.fuse_trials``)."""
        deadline = time.monotonic() + FUSE_GRACE_S
        while any(self._queues.values()) and (left := deadline - time.monotonic()) > 0:
            self._cond.wait(left)

    def _deliver(self, event: Any) -> None:
        from sweeper.engine.trainable import save_checkpoint

        trial_id = event.trial_id
        queue = self._queues.get(trial_id)
        if queue is None:  # left while its step ran
            return
        own = trial_id not in self._population  # PBT's go to Ray through the client
        if own and event.state is not None and event.metrics is not None:
            save_checkpoint(self._folders[trial_id], {**event.state, "metrics": event.metrics})
        queue.append(event)
        if not event.done and trial_id in self._host.trials():
            self._host.pause(trial_id)  # until its client takes this epoch
        self._cond.notify_all()

    def _drop_stale(self) -> None:
        now = time.monotonic()
        for trial_id in [t for t, at in self._asked.items() if now - at > STALE_S]:
            if self._queues.get(trial_id):  # an epoch nobody took: the client is gone
                self._leave(trial_id)

    def _leave(self, trial_id: str) -> None:
        if trial_id in self._host.trials():
            self._host.remove(trial_id)
        self._forget(trial_id)

    def _forget(self, trial_id: str) -> None:
        self._queues.pop(trial_id, None)
        self._folders.pop(trial_id, None)
        self._asked.pop(trial_id, None)
        self._clients.pop(trial_id, None)
        self._population.pop(trial_id, None)
        self._cond.notify_all()


@dataclass
class HostPool:
    """The study's hosts: their handles (what the clients get) and the layout."""

    handles: list[Any]
    layout: Any
    data: Any = None  # the data's reference, held while the hosts live

    def stop(self) -> None:
        """End every host (the study is over or interrupted)."""
        import ray

        for handle in self.handles:
            try:
                ray.kill(handle, no_restart=True)
            except Exception:  # noqa: BLE001 - a host already gone is what we want
                pass


def start_hosts(spec: Any, data: Any, layout: Any) -> HostPool:
    """Start ``layout.hosts`` hosts and wait until each holds the data on its device.

    Raises:
        HostStartError: a host did not start (one line: the cause).
    """
    import ray

    actor = ray.remote(HostActor).options(
        num_cpus=layout.host_cpus,
        num_gpus=layout.host_gpus,
        max_concurrency=4 * layout.per_host + 8,
        max_restarts=HOST_RESTARTS,
        max_task_retries=0,
    )
    device = "cuda" if layout.device == "cuda" else "cpu"
    threads = max(1, int(layout.host_cpus))
    ref = data if isinstance(data, ray.ObjectRef) else ray.put(data)
    handles = [actor.remote(spec, device, threads) for _ in range(layout.hosts)]
    pool = HostPool(handles, layout, ref)
    try:
        ray.get([h.load.remote([ref]) for h in pool.handles])
    except Exception as exc:  # noqa: BLE001 - any failure to start is one line: the cause
        pool.stop()
        from sweeper.trial.probe import failure_reason

        raise HostStartError(failure_reason(_cause(exc))) from None
    except BaseException:
        pool.stop()
        raise
    return pool


class HostStartError(RuntimeError):
    """A host did not start: the cause in one line."""


def _cause(exc: BaseException) -> BaseException:
    """The error inside Ray's wrappers (a host's ``__init__`` or ``load`` that raised)."""
    inner = getattr(exc, "cause", None)
    return inner if isinstance(inner, BaseException) else exc
