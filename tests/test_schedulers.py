"""The schedulers pick the trial Ray's FIFO walk would pick, from the runnable ones only."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("ray.tune")


def test_the_queue_picks_as_ray_does_and_forgets_ended_trials():
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import FIFOScheduler

    from sweeper.engine.schedulers import FifoQueue

    trials = [SimpleNamespace(trial_id=t, status=Trial.PENDING) for t in "abcd"]
    controller = SimpleNamespace(get_trials=lambda: trials)
    ours, rays = FifoQueue(), FIFOScheduler()
    for t in trials:
        ours.on_trial_add(controller, t)
    statuses = [
        (Trial.RUNNING, Trial.PENDING, Trial.PENDING, Trial.PENDING),
        (Trial.TERMINATED, Trial.RUNNING, Trial.PAUSED, Trial.PENDING),
        (Trial.TERMINATED, Trial.ERROR, Trial.PAUSED, Trial.RUNNING),
        (Trial.TERMINATED, Trial.ERROR, Trial.RUNNING, Trial.RUNNING),
    ]
    for row in statuses:
        for t, s in zip(trials, row, strict=True):
            t.status = s
        assert ours.choose_trial_to_run(controller) is rays.choose_trial_to_run(controller)
    ours.on_trial_complete(controller, trials[2], {})
    ours.on_trial_remove(controller, trials[3])
    assert ours._queue() == {}
