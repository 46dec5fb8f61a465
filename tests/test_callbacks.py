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


def test_the_books_counts_and_best_follow_every_state_change(tmp_path):
    from sweeper.states import TrialState, best_value, counts

    spec = spec_from_dict({"name": "c", "model": {"name": "mlp"}}, "test")
    book = TrialBook(Study.create(tmp_path / "c", spec, "test", n_trials=4))
    trials = [SimpleNamespace(trial_id=t, config={"epochs": 2}) for t in "abcd"]
    for t, acc in zip(trials, (0.5, 0.9, 0.7, 0.8), strict=True):
        book.start(t)
        book.update(t, {"epoch": 1, "val_acc": acc})
    book.update(trials[0], {"epoch": 2, "val_acc": 0.6})
    book.finish(trials[0])  # COMPLETE, 0.6
    book.finish(trials[1])  # PRUNED at epoch 1: 0.9 is not a result
    book.finish(trials[2], error="boom")
    assert book.best() == 0.6
    expected = counts(r["state"] for r in book.rows.values())
    assert book.counts() == expected and expected[TrialState.RUNNING] == 1
    book.update(trials[3], {"epoch": 2, "val_acc": 0.8})
    book.finish(trials[3])
    assert book.best() == 0.8 == best_value(book.rows.values(), "val_acc", True)
    book.forget_unknown({"a", "b", "c"})
    assert book.best() == 0.6 and book.counts()[TrialState.COMPLETE] == 1
