"""The local Ray's settings for start-up time (engine/session.py), without starting Ray."""

from __future__ import annotations

import pytest


@pytest.fixture
def tune_cache(monkeypatch):
    """Ray Tune's actor class cache, with sweeper's registration, undone afterwards."""
    pytest.importorskip("ray.tune")
    from ray.tune.execution import class_cache

    from sweeper.engine import session

    monkeypatch.setattr(class_cache._ActorClassCache, "get", class_cache._ActorClassCache.get)
    monkeypatch.setattr(session, "_WORKER_ENV", {})
    for key in class_cache.ENV_VARS_TO_PROPAGATE:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PL_DISABLE_FORK", "1")
    return session, class_cache._ActorClassCache


class Trainable:
    pass


def runtime_env(actor_cls):
    return actor_cls._default_options.get("runtime_env")


def test_a_trainable_whose_variables_every_worker_has_gets_no_runtime_env(tune_cache):
    session, cache_cls = tune_cache
    session._WORKER_ENV.update({"PL_DISABLE_FORK": "1"})
    session._same_env_without_runtime_env()
    session._same_env_without_runtime_env()  # once is enough; a second call changes nothing
    cache = cache_cls()
    assert not runtime_env(cache.get(Trainable))
    assert cache.get(Trainable) is cache.get(Trainable)


def test_a_variable_the_workers_lack_keeps_tunes_runtime_env(tune_cache, monkeypatch):
    session, cache_cls = tune_cache
    session._WORKER_ENV.update({"PL_DISABLE_FORK": "1"})
    session._same_env_without_runtime_env()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "set after Ray started")  # Tune copies it
    env = runtime_env(cache_cls().get(Trainable))
    assert env["env_vars"]["AWS_ACCESS_KEY_ID"] == "set after Ray started"


def test_without_sweepers_ray_tune_keeps_its_runtime_env(tune_cache):
    session, cache_cls = tune_cache
    session._same_env_without_runtime_env()  # no init_ray: nothing known of the workers
    assert runtime_env(cache_cls().get(Trainable))["env_vars"]["PL_DISABLE_FORK"] == "1"


@pytest.mark.parametrize("raw", ["abc", "0", "-1"])
def test_a_bad_cluster_watch_period_is_one_line(monkeypatch, raw):
    from sweeper.engine.session import watch_period
    from sweeper.errors import SweeperError

    monkeypatch.setenv("SWEEPER_CLUSTER_WATCH_S", raw)
    with pytest.raises(SweeperError, match="SWEEPER_CLUSTER_WATCH_S: expected seconds"):
        watch_period()
    monkeypatch.setenv("SWEEPER_CLUSTER_WATCH_S", "0.5")
    assert watch_period() == 0.5
    monkeypatch.delenv("SWEEPER_CLUSTER_WATCH_S")
    assert watch_period() == 3.0
