"""Shared test set-up: offline W&B, data root, one Ray session, contained randomness, and
the small sweep file (``tests/support`` holds what plain modules share, as the chaos
harness and the benchmarks do)."""

from __future__ import annotations

import functools
import os
import random
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support import REPO, SHARED_DATA, write_sweep

# Relative to where pytest was started (as sweeper takes it): many tests chdir or start
# drivers in other folders, so it is made absolute once, here.
os.environ["SWEEPER_DATA_DIR"] = str(
    Path(os.environ.get("SWEEPER_DATA_DIR", SHARED_DATA)).resolve()
)
os.environ.setdefault("SWEEPER_CACHE_DIR", str(REPO / ".cache"))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001 - a broken torch or driver: no GPU tests, not no tests
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _restore_rng():
    """Tests may seed freely, and set torch's thread count (a ``Host`` or ``train_trial``
    with ``num_threads`` does): the global RNG state and the thread count are put back
    afterwards, so no test runs with another's (a bit-exact comparison on one thread can
    differ in the last digits from the same on two: tests/test_step.py's U-Net)."""
    import torch

    state = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    threads = torch.get_num_threads()
    yield
    random.setstate(state[0])
    np.random.set_state(state[1])
    torch.set_rng_state(state[2])
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@pytest.fixture
def seeded(_restore_rng):
    """Python's, NumPy's and torch's global RNGs seeded with 0 (put back afterwards)."""
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def sweep_file(tmp_path):
    """``sweep_file(name="sweep", epochs=1, **overrides)``: the small grid sweep as a YAML
    file in ``tmp_path`` (:func:`tests.support.sweeps.sweep_config` says how overrides merge)."""
    return functools.partial(write_sweep, tmp_path)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data sets (../shared/data, or $SWEEPER_DATA_DIR)."""
    root = Path(os.environ["SWEEPER_DATA_DIR"])
    if not (root / "FashionMNIST" / "raw").is_dir():
        pytest.skip(f"Fashion-MNIST not found under {root} (set SWEEPER_DATA_DIR)")
    return root


class _SharedRay:
    """The test process's one local Ray (``ray_session``), started again when it lost CPUs."""

    def __init__(self) -> None:
        from sweeper.engine.tune import ray_env
        from sweeper.spec import spec_from_dict

        ray_env(spec_from_dict({"name": "env", "model": {"name": "mlp"}}, "conftest"))
        self.started = False

    def start(self) -> None:
        from sweeper.engine.tune import init_ray

        self.started = init_ray(2)  # False: a Ray was running already, not ours to restart

    def stop(self) -> None:
        from sweeper.engine.session import shutdown_ray

        if self.started:
            shutdown_ray()
            self.started = False

    def ready(self) -> None:
        """Every CPU free, or Ray started again (``ray_session`` says why)."""
        import ray

        if self.started and not ray.is_initialized():  # Ray's own calls would start another
            self.started = False
            self.start()
        elif self.started and not self.all_cpus_free():
            import warnings

            warnings.warn("the shared Ray lost CPUs: started again", stacklevel=2)
            self.stop()
            self.start()

    def all_cpus_free(self, timeout: float = 20.0) -> bool:
        """Whether every CPU is free again (an ended study's actors give theirs back within
        a second or two), waiting up to ``timeout`` seconds."""
        import ray

        deadline = time.monotonic() + timeout
        while True:
            total = ray.cluster_resources().get("CPU", 0.0)
            if ray.available_resources().get("CPU", 0.0) >= total - 1e-6:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)


@pytest.fixture(scope="session")
def _shared_ray():
    shared = _SharedRay()
    shared.start()
    yield shared
    shared.stop()


@pytest.fixture
def ray_session(_shared_ray):
    """One local Ray for all end-to-end tests (ray.init costs seconds), each test starting
    with all its CPUs free. Ray 2.60 can lose a share of a CPU for good when it kills an
    actor whose graceful shutdown timed out (seen once under load: 0.5 of 2 CPUs gone after
    a PB2 study, and the next study, a host taking 1.5 CPUs and two clients 0.25 each,
    waited forever). A Ray whose CPUs are not all back within 20 s is started again."""
    _shared_ray.ready()
    yield


@pytest.fixture(scope="session")
def pg():
    """A throwaway PostgreSQL server on loopback (tests/support/postgres.py), or a skip."""
    from tests.support import postgres

    why = postgres.unavailable()
    if why:
        pytest.skip(why)
    server = postgres.PostgresServer()
    try:
        server.start()
        server.create_database()
        yield server
    finally:
        server.remove()
