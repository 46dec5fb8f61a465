"""torch as a range: the installed project takes the torch a user's machine already has (a
GPU box's 2.11), while this machine's exact versions live in constraints.txt (make, CI)."""

from __future__ import annotations

from importlib.metadata import requires

import pytest
from packaging.requirements import Requirement

from tests.support import REPO


def _requirements() -> dict[str, Requirement]:
    reqs = [Requirement(line) for line in requires("sweeper") or []]
    return {r.name: r for r in reqs if r.marker is None}


@pytest.mark.parametrize(("name", "gpu_machine"), [("torch", "2.11.0"), ("torchvision", "0.26.0")])
def test_torch_is_a_range_that_keeps_the_gpu_machines_version(name, gpu_machine):
    spec = _requirements()[name].specifier
    assert not any(s.operator in ("==", "===") for s in spec), f"{name} is pinned: {spec}"
    assert spec.contains(gpu_machine), f"{name}{spec} would replace the GPU machine's {gpu_machine}"


def test_the_constraints_pin_this_machines_torch_inside_the_range():
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            pins[req.name] = next(iter(req.specifier)).version
    assert pins == {"torch": "2.14.1", "torchvision": "0.29.1"}
    reqs = _requirements()
    for name, version in pins.items():
        assert reqs[name].specifier.contains(version), (name, version)


def test_make_and_ci_install_with_the_constraints():
    makefile = (REPO / "Makefile").read_text()
    assert "-c constraints.txt" in makefile


def test_every_package_of_src_ships():
    """A wheel holds the packages pyproject.toml lists (not an editable install's view)."""
    import tomllib

    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    src = REPO / "src" / "sweeper"
    found = {
        ".".join(("sweeper", *init.parent.relative_to(src).parts))
        for init in src.rglob("__init__.py")
    }
    assert found - listed == set(), "packages of src/ missing from [tool.setuptools] packages"
    assert listed - found - {"sweeper.models"} == set(), "listed packages that do not exist"
