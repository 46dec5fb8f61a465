"""A hosted trial's Ray Tune trainable: a light client of a host (``engine/hosts.py``).

It imports no torch and holds no GPU: it picks the least loaded host, hands it the
trial's config and folder, then reports each epoch the host finishes for it, exactly as
the process trainable (``engine/trainable.py``) reports (the same metrics, the node, the
restored epoch once more after a restart). Ray Tune schedules, stops and retries it as any
trial; when Tune stops it (ASHA, say) the client leaves the host. A trial the host failed
raises here, one line, so Tune records the failure (and retries it within
``resources.max_failures``).
"""

from __future__ import annotations

from typing import Any

from sweeper.store.table import NODE_KEY


class HostedTrialError(RuntimeError):
    """The host failed this trial (its model or a step raised): the host's one line."""


def hosted_trainable(config: dict[str, Any], hosts: list[Any], data: list[Any]) -> None:
    """Run one trial on a host: join, then report each epoch until the last."""
    import ray
    from ray import tune

    from sweeper.engine.trainable import trial_folder

    trial_id = tune.get_context().get_trial_id()
    host = _least_loaded(hosts)
    joined = ray.get(host.join.remote(trial_id, dict(config), str(trial_folder()), data))
    node = joined["node"]
    if joined["again"]:
        tune.report({**joined["again"], NODE_KEY: node})
    if joined["finished"]:
        return
    stopping = _stop_flag()
    try:
        while True:
            event = ray.get(host.next.remote(trial_id))
            if event is None:
                if stopping.is_set():  # Tune stopped the trial: leave (the actor is reused)
                    return
                continue  # still training its epoch
            if event.get("gone"):
                raise HostedTrialError(f"the host lost trial {trial_id} (it restarted?)")
            if event["error"]:
                raise HostedTrialError(event["error"])
            if event["metrics"] is not None:
                tune.report({**event["metrics"], NODE_KEY: node})
            if event["done"]:
                return
    finally:
        try:
            host.leave.remote(trial_id)
        except Exception:  # noqa: BLE001 - a dead host holds nothing to leave
            pass


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
