"""Every malformed sweep file fails ``sweeper check`` with one line that says where and why.

The corpus lives in ``tests/specs/bad/``: each file breaks one thing in an otherwise valid
spec, and starts with one or more ``# expect: <substring>`` lines naming what the error
must say. ``check`` runs in process (torch is imported once), so the whole file is fast.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sweeper.cli import main
from tests.support import REPO

BAD = sorted((REPO / "tests" / "specs" / "bad").glob("*.yaml"))
GOOD = sorted((REPO / "sweeps").glob("*.yaml"))
EXPECT = "# expect: "


def _expected(path: Path) -> list[str]:
    """The ``# expect:`` lines at the top of a corpus file (at least one)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for line in lines:
        if not line.startswith(EXPECT):
            break
        found.append(line.removeprefix(EXPECT))
    return found


def _check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code: int, err: str, prefix: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, f"expected one line, got:\n{err}"
    assert err.startswith(f"sweeper: error: {prefix}"), err
    return err.rstrip("\n")


def test_corpus_is_large_and_annotated() -> None:
    assert len(BAD) >= 40
    for path in BAD:
        assert _expected(path), f"{path.name}: first line must be '{EXPECT}<substring>'"


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_spec_fails_with_one_line(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _check(capsys, str(path))
    line = _assert_one_line_error(code, err, f"{path}: ")
    assert "ok" not in out
    for expected in _expected(path):
        assert expected in line, f"{path.name}: expected {expected!r} in\n{line}"


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_valid_sweeps_pass(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _check(capsys, str(path))
    assert code == 0, err
    assert f"{path}: ok" in out
    if path.name == "mlp_grid.yaml":
        assert "96 configs" in out


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    code, _, err = _check(capsys, str(missing))
    line = _assert_one_line_error(code, err, f"{missing}: ")
    assert "no such file" in line


def test_directory_instead_of_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _check(capsys, str(tmp_path))
    assert "expected a YAML file, got a directory" in _assert_one_line_error(code, err, "")


# -- --set overrides ---------------------------------------------------------------------

GRID = str(REPO / "sweeps" / "mlp_grid.yaml")


@pytest.mark.parametrize("item", ["foo", "=1", "train..epochs=1", ".epochs=1"])
def test_set_malformed(item: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _check(capsys, GRID, "--set", item)
    line = _assert_one_line_error(code, err, "--set: ")
    assert "expected key.path=value" in line


def test_set_wrong_type_names_key_and_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _check(capsys, GRID, "--set", "train.epochs=ten")
    line = _assert_one_line_error(code, err, f"{GRID}: train.epochs: ")
    assert "expected an integer, got a string 'ten'" in line
    assert "(from --set train.epochs=ten)" in line


def test_set_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _check(capsys, GRID, "--set", "train.epochs=0")
    line = _assert_one_line_error(code, err, f"{GRID}: train.epochs: ")
    assert "must be >= 1, got 0" in line


def test_set_unknown_key_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _check(capsys, GRID, "--set", "train.epoch=1")
    line = _assert_one_line_error(code, err, f"{GRID}: train.epoch: ")
    assert "did you mean 'epochs'?" in line


def test_set_through_a_scalar(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _check(capsys, GRID, "--set", "name.x=1")
    line = _assert_one_line_error(code, err, f"{GRID}: name: ")
    assert "name is not a mapping" in line


def test_set_invalid_yaml_value(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _check(capsys, GRID, "--set", "parameters.width.values=[32, 64")
    line = _assert_one_line_error(code, err, "--set parameters.width.values: ")
    assert "invalid YAML" in line


def test_set_valid_override_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _check(capsys, GRID, "--set", "parameters.depth.values=[2]")
    assert code == 0, err
    assert "32 configs" in out
