"""The driver callback's book of trials (no Ray run needed)."""

from __future__ import annotations

from types import SimpleNamespace

from sweeper.engine.book import TrialBook
from sweeper.spec import spec_from_dict
from sweeper.store import Study


def test_trial_rows_carry_constants_and_swept_values(tmp_path):
    spec = spec_from_dict(
        {"name": "b", "model": {"name": "mlp"},
         "parameters": {"width": {"value": 64}, "depth": {"values": [1, 2]}}},
        "test",
    )  # fmt: skip
    book = TrialBook(Study.create(tmp_path / "b", spec, "test", n_trials=2))
    row = book.row(SimpleNamespace(trial_id="a", config={"depth": 2}))
    assert row["config/width"] == 64 and row["config/depth"] == 2
    assert row["state"] == "PENDING" and row["number"] == 0
