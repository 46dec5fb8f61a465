"""A hosted trial's Ray Tune trainable: a light client of a host (``engine/hosts.py``).

It imports no torch and holds no GPU: it picks the least loaded host, hands it the
trial's config and folder, then reports each epoch the host finishes for it, exactly as
the process trainable (``engine/trainable.py``) reports (the same metrics, the node, the
restored epoch once more after a restart). Ray Tune schedules, stops and retries it as any
trial; when Tune stops it (ASHA, say) the client leaves the host. A trial the host failed
raises here, one line, so Tune records the failure (and retries it within
``resources.max_failures``).

Each run of this function is one client with a name of its own (``client``): when Tune
resumes a paused trial on another actor while the old client still waits in its cached
actor, the host holds the trial for the new client, and the old one's late ``leave`` (or
``next``) cannot take it away (``engine/hosts.py``).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from sweeper.store.table import NODE_KEY


class HostedTrialError(RuntimeError):
    """The host failed this trial (its model or a step raised): the host's one line."""


def hosted_trainable(
    config: dict[str, Any], hosts: list[Any], data: list[Any], population: bool = False
) -> None:
    """Run one trial on a host: join, then report each epoch until the last.

    Under PBT/PB2 (``population``) a checkpoint Ray hands the trial from another trial's
    folder is a copy (an exploit): the host continues from it, and each epoch's state goes
    back to Ray as a checkpoint the host writes and this client reports (then removes).
    """
    import ray
    from ray import tune

    from sweeper.engine.trainable import trial_folder

    trial_id = tune.get_context().get_trial_id()
    folder = trial_folder()
    copied = _copied(folder) if population else None
    host = _least_loaded(hosts)
    client = uuid.uuid4().hex
    joined = ray.get(
        host.join.remote(trial_id, dict(config), str(folder), data, copied, client=client)
    )
    node, lineage = joined["node"], joined.get("lineage") or {}
    if joined["again"]:
        tune.report({**joined["again"], NODE_KEY: node})
    if joined["finished"]:
        return
    stopping = _stop_flag()
    try:
        while True:
            event = ray.get(host.next.remote(trial_id, client=client))
            if event is None:
                if stopping.is_set():  # Tune stopped the trial: leave (the actor is reused)
                    return
                continue  # still training its epoch
            if event.get("replaced"):  # Tune runs the trial in a newer client now
                return
            if event.get("gone"):
                raise HostedTrialError(f"the host lost trial {trial_id} (it restarted?)")
            if event["error"]:
                raise HostedTrialError(event["error"])
            if event["metrics"] is not None:
                _report({**event["metrics"], **lineage, NODE_KEY: node}, event.get("checkpoint"))
            if event["done"]:
                return
    finally:
        try:
            host.leave.remote(trial_id, client=client)
        except Exception:  # noqa: BLE001 - a dead host holds nothing to leave
            pass


def _copied(folder: Path) -> str | None:
    """The checkpoint Ray hands this trial when it is another trial's (a PBT exploit)."""
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None or Path(checkpoint.path).resolve().parent == folder.resolve():
        return None
    return str(checkpoint.path)


def _report(metrics: dict[str, Any], checkpoint: str | None) -> None:
    """One epoch to Tune; with the host's checkpoint folder, as a Ray checkpoint (Ray
    copies it into the trial's storage during the call; the folder goes after)."""
    from ray import tune

    if checkpoint is None:
        tune.report(metrics)
        return
    try:
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(checkpoint))
    finally:
        shutil.rmtree(checkpoint, ignore_errors=True)


def _stop_flag() -> Any:
    """The event Ray Tune sets when it stops this trial (Ray 2.60's train session).

    A stopped function trainable ends at its next ``report``; a hosted client waits for
    its host between reports, so it watches the flag itself and leaves at once, and Tune
    can reuse its actor (a thread still running after 2 s makes Tune start a new one).
    """
    import ray
    from ray.train._internal import session

    flag = getattr(session.get_session(), "stop_event", None)
    if flag is None:  # pragma: no cover - a Ray upgrade
        raise RuntimeError(
            f"Ray {ray.__version__}: the train session has no stop_event; sweeper's hosted "
            "trials read Ray 2.60's (engine/hosted_trainable.py)"
        )
    return flag


def _least_loaded(hosts: list[Any]) -> Any:
    """The host holding the fewest trials now (the first among equals)."""
    import ray

    if len(hosts) == 1:
        return hosts[0]
    loads = ray.get([h.held.remote() for h in hosts])
    return hosts[min(range(len(hosts)), key=lambda i: loads[i])]
