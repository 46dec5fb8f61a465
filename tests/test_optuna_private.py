"""sweeper.engine.optuna_private: Ray's OptunaSearch's private state, read on the pinned Ray
only; another Ray fails loudly, naming the module."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sweeper.engine import optuna_private
from sweeper.engine.snapshot import TESTED_RAY
from sweeper.errors import SweeperError
from sweeper.spec import spec_from_dict

RAW = {
    "method": "random",
    "metric": {"name": "loss"},
    "parameters": {"x": {"min": 0.0, "max": 1.0}},
}


def test_the_installed_ray_is_the_pinned_one() -> None:
    import ray

    assert ray.__version__.startswith(TESTED_RAY + ".")
    optuna_private.check_ray()


@pytest.mark.parametrize("version", [f"{TESTED_RAY}.0", f"{TESTED_RAY}.3", f"{TESTED_RAY}.1rc1"])
def test_a_patch_release_of_the_pinned_minor_passes(version: str) -> None:
    optuna_private.check_ray(version)


@pytest.mark.parametrize("version", ["2.61.0", "2.6.0", "3.0.0", "2.600.1"])
def test_another_ray_fails_naming_the_module_and_the_pin(version: str) -> None:
    with pytest.raises(SweeperError) as err:
        optuna_private.check_ray(version)
    msg = str(err.value)
    assert "sweeper.engine.optuna_private" in msg and f"Ray {version} is installed" in msg
    assert f"ray=={TESTED_RAY}.*" in msg and "_ot_study" in msg


def test_on_another_ray_the_searcher_and_every_read_fail_at_once(monkeypatch) -> None:
    import ray

    from sweeper.engine.search import SpecSearch

    search = SpecSearch(spec_from_dict(RAW, "t"))
    monkeypatch.setattr(ray, "__version__", "2.61.0")
    for read in (optuna_private.study, optuna_private.trials):
        with pytest.raises(SweeperError, match="sweeper.engine.optuna_private"):
            read(search)
    with pytest.raises(SweeperError, match="sweeper.engine.optuna_private"):
        optuna_private.told(search, "t1")
    with pytest.raises(SweeperError, match="Ray 2.61.0 is installed"):
        SpecSearch(spec_from_dict(RAW, "t"))  # at the study's start, before any trial


def test_reads_of_a_real_optuna_search() -> None:
    import optuna

    from sweeper.engine.search import SpecSearch

    search = SpecSearch(spec_from_dict(RAW, "t"))
    controller = SimpleNamespace(
        search_alg=SimpleNamespace(searcher=SimpleNamespace(searcher=search))
    )
    assert optuna_private.optuna_searcher(controller) is search  # through a limiter
    assert isinstance(optuna_private.study(search), optuna.Study)
    assert optuna_private.trials(search) == {}
    config = search.suggest("t1")
    assert set(optuna_private.trials(search)) == {"t1"} and 0 <= config["x"] <= 1
    assert not optuna_private.told(search, "t1")
    optuna_private.mark_told(search, "t1")
    assert optuna_private.told(search, "t1")


def test_a_searcher_without_the_state_is_a_clear_error() -> None:
    with pytest.raises(
        SweeperError, match="optuna_private: Ray's SimpleNamespace has no _ot_study"
    ):
        optuna_private.study(SimpleNamespace())
    controller = SimpleNamespace(search_alg=SimpleNamespace(searcher=SimpleNamespace()))
    with pytest.raises(SweeperError, match="no OptunaSearch with _ot_study, _ot_trials"):
        optuna_private.optuna_searcher(controller)
