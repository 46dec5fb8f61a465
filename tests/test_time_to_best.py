"""``benchmarks/time_to_best.py``'s arithmetic: the sub-grid, and epochs to the target in
the order epochs ended (from the trial table's stamps and the history's ``train_s``)."""

from __future__ import annotations

import importlib.util
import math

import pandas as pd
import pytest

from tests.support import REPO


def load() -> object:
    path = REPO / "benchmarks" / "time_to_best.py"
    spec = importlib.util.spec_from_file_location("time_to_best", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


ttb = load()


def test_the_sub_grid_drops_the_longest_lists_last_values_and_makes_ranges_finite() -> None:
    params = {
        "depth": {"values": [2, 5, 10]},
        "width": {"values": [32, 64, 128, 256]},
        "lr": {"min": 1e-4, "max": 1e-2, "distribution": "log_uniform_values"},
        "act": {"value": "relu"},
    }
    out = ttb.sub_grid(params, 12)
    assert out["width"]["values"] == [32, 64] and out["depth"]["values"] == [2, 5]
    assert out["lr"]["values"][0] == 1e-4 and out["lr"]["values"][1] == pytest.approx(1e-3)
    assert out["act"] == {"value": "relu"}
    assert math.prod(len(p["values"]) for p in out.values() if "values" in p) <= 12


class FakeStudy:
    """Trials side by side: a (2 epochs, val 0.8) from t=6 to 10; b, pruned after 1 epoch,
    from 6 to 7; c (3 epochs, val 0.9) from 8 to 11."""

    def trials(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "trial_id": ["a", "b", "c"],
                "state": ["COMPLETE", "PRUNED", "COMPLETE"],
                "epochs": [2, 1, 3],
                "wall_s": [4.0, 1.0, 3.0],
                "ended_at": [10.0, 7.0, 11.0],
                "val_acc": [0.8, 0.5, 0.9],
            }
        )

    def history(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "trial_id": ["a", "a", "b", "c", "c", "c"],
                "epoch": [1, 2, 1, 1, 2, 3],
                "train_s": [2.0, 4.0, 1.0, 1.0, 2.0, 3.0],
            }
        )


def test_epochs_to_target_count_every_epoch_ended_before_the_best_one() -> None:
    # ends: b1 7, a1 8, c1 9, a2 10 (0.8), c2 10, c3 11 (0.9); the first start is a's at 6
    assert ttb.time_to_target(FakeStudy(), 0.75) == {
        "epochs": 4, "seconds": 4.0, "total_epochs": 6, "best": 0.9
    }  # fmt: skip
    assert ttb.time_to_target(FakeStudy(), 0.85)["epochs"] == 6
    assert ttb.time_to_target(FakeStudy(), 0.95)["epochs"] is None
