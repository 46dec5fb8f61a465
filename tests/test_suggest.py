"""Did-you-mean hints: the smallest edit wins, a substitution beats a deletion."""

from __future__ import annotations

import pytest

from sweeper.suggest import closest, did_you_mean, edit_distance

PARAM_KEYS = ["value", "values", "min", "max", "distribution", "q"]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [("", "", 0), ("abc", "", 3), ("valuez", "values", 1), ("valuez", "value", 1), ("ab", "ba", 2)],
)
def test_edit_distance(a: str, b: str, expected: int) -> None:
    assert edit_distance(a, b) == expected
    assert edit_distance(b, a) == expected


@pytest.mark.parametrize(
    ("typo", "options", "expected"),
    [
        ("valuez", PARAM_KEYS, "values"),  # both one edit away: the substitution wins
        ("valuez", ["value"], "value"),
        ("vaule", PARAM_KEYS, "value"),
        ("epoch", ["epochs", "seed", "repeats"], "epochs"),
        ("maxx", PARAM_KEYS, "max"),
        ("warmup", ["epochs", "seed"], None),
    ],
)
def test_closest(typo: str, options: list[str], expected: str | None) -> None:
    assert closest(typo, options) == expected


def test_did_you_mean() -> None:
    assert did_you_mean("valuez", PARAM_KEYS) == "; did you mean 'values'?"
    assert did_you_mean("zzz", PARAM_KEYS) == ""
    assert did_you_mean("lenet6", ["lenet", "resnet18"], cutoff=0.99) == ""
