"""The driver callback's book of trials (no Ray run needed)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sweeper.spec import spec_from_dict
from sweeper.store import Study
from sweeper.store.book import TrialBook


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


TRACEBACK = """Failure # 1 (occurred at 2026-12-04_18-26-08)
ray::ImplicitFunc.train() (pid=7374, ip=192.0.2.2, repr=script_trainable)
  File "/venv/ray/tune/trainable/trainable.py", line 329, in train
    raise skipped from exception_cause(skipped)
  File "/src/sweeper/script/trainable.py", line 116, in follow
    raise ScriptFailed(_failure(launch, f"exited with code {code}", proc.stderr_tail()))
sweeper.engine.script_trainable.ScriptFailed: t.py exited with code 1: Traceback (most recent call last): | File "t.py", line 4, in <module> | ValueError: x=1 is not allowed
"""


def callback(tmp_path, n: int = 2, create: bool = True):
    import io

    from rich.console import Console

    pytest.importorskip("ray.tune")
    from sweeper.engine.callbacks import StudyCallback

    spec = spec_from_dict({"name": "cb", "model": {"name": "mlp"}}, "test")
    if create:
        Study.create(tmp_path / "cb", spec, "test", n_trials=n)
    out = io.StringIO()
    cb = StudyCallback(
        tmp_path / "cb", n, console=Console(file=out, force_terminal=False, width=300)
    )
    return cb, out


def test_a_failed_trial_is_one_line_and_its_traceback_goes_to_the_study(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    error_file = tmp_path / "error.txt"
    error_file.write_text(TRACEBACK)
    cb, out = callback(tmp_path)
    bad = SimpleNamespace(trial_id="af46f0a9", config={}, error_file=str(error_file))
    cb.on_step_begin(0, [bad])
    cb.on_trial_start(0, [bad], bad)
    cb.on_trial_error(0, [bad], bad)
    cb.close()
    lines = [ln for ln in out.getvalue().splitlines() if "af46f0a9" in ln]
    assert lines == [
        "trial af46f0a9 failed: ScriptFailed: t.py exited with code 1: ValueError: x=1 is not "
        "allowed (full log: cb/errors/af46f0a9.txt)"
    ]
    assert (tmp_path / "cb" / "errors" / "af46f0a9.txt").read_text() == TRACEBACK
    row = Study(tmp_path / "cb").trials().iloc[0]
    assert row["state"] == "FAIL" and row["error"].endswith("ValueError: x=1 is not allowed")


def test_a_retried_failure_is_one_line_too(tmp_path):
    error_file = tmp_path / "error.txt"
    error_file.write_text("Failure # 1\nTraceback:\n  File x\nRuntimeError: out of memory\n")
    cb, out = callback(tmp_path)
    t = SimpleNamespace(trial_id="t1", config={}, error_file=str(error_file), num_failures=1)
    cb.on_step_begin(0, [t])
    cb.on_trial_start(0, [t], t)
    cb.on_trial_recover(0, [t], t)
    cb.close()
    (line,) = [ln for ln in out.getvalue().splitlines() if "t1" in ln]
    assert line.startswith("trial t1 failed (failure 1), retrying: RuntimeError: out of memory")


def test_trials_running_when_the_run_stops_are_interrupted_and_resume_runs_them(tmp_path):
    from sweeper.states import TrialState

    cb, _ = callback(tmp_path, 3)
    a, b, c = (SimpleNamespace(trial_id=t, config={"epochs": 2}) for t in "abc")
    cb.on_step_begin(0, [a, b, c])
    for t in (a, b):
        cb.on_trial_start(0, [a, b, c], t)
        cb.on_trial_result(0, [a, b, c], t, {"epoch": 1, "val_acc": 0.5})
    cb.on_trial_result(0, [a, b, c], a, {"epoch": 2, "val_acc": 0.6})
    cb.on_trial_complete(0, [a, b, c], a)
    cb.close()  # Ctrl-C: Ray Tune ends the experiment; b was mid-way, c never started
    states = dict(Study(tmp_path / "cb").trials()[["trial_id", "state"]].values)
    assert states == {"a": "COMPLETE", "b": "INTERRUPTED"}
    again = callback(tmp_path, 3, create=False)[0]  # resume: Ray restarts b from its checkpoint
    assert again.book.counts()[TrialState.INTERRUPTED] == 1
    again.on_step_begin(0, [a, b])
    again.on_trial_start(0, [a, b], b)
    assert again.book.rows["b"]["state"] is TrialState.RUNNING
    again.close()


def test_a_killed_drivers_running_rows_load_as_interrupted(tmp_path):
    from sweeper.states import TrialState

    spec = spec_from_dict({"name": "k", "model": {"name": "mlp"}}, "test")
    study = Study.create(tmp_path / "k", spec, "test", n_trials=2)
    study.write_trials([{"trial_id": "a", "number": 0, "state": "RUNNING", "epochs": 1}])
    b = TrialBook(study)
    assert b.rows["a"]["state"] is TrialState.INTERRUPTED and not b.running


def test_a_registered_sink_gets_the_callbacks_events_and_its_failure_is_one_warning(
    tmp_path, monkeypatch
):
    from sweeper.sinks import SINKS, BaseSink
    from sweeper.sinks.registry import SinkEntry

    class Recorder(BaseSink):
        name = "recorder"
        events: list[tuple[str, str]] = []

        def start(self, study):
            self.events.append(("start", ",".join(sorted(study.trials))))

        def trial_started(self, event):
            self.events.append(("started", event.trial_id))

        def trial_result(self, event):
            self.events.append(("result", f"{event.trial_id}@{event.epoch}"))
            raise OSError("the server went away")

        def trial_ended(self, event):
            self.events.append(("ended", f"{event.trial_id}:{event.state}"))

        def close(self, end):
            self.events.append(("close", ",".join(sorted(end.interrupted))))

    entries = SINKS._entries.copy()
    entries.register("recorder", SinkEntry(lambda context: Recorder()))
    monkeypatch.setattr(SINKS, "_entries", entries)
    cb, out = callback(tmp_path)
    a, b = (SimpleNamespace(trial_id=t, config={"epochs": 2}) for t in "ab")
    cb.on_step_begin(0, [a, b])
    for t in (a, b):
        cb.on_trial_start(0, [a, b], t)
        cb.on_trial_result(0, [a, b], t, {"epoch": 1, "val_acc": 0.5})
    cb.on_trial_result(0, [a, b], a, {"epoch": 2, "val_acc": 0.6})
    cb.on_trial_complete(0, [a, b], a)
    cb.close()
    assert Recorder.events == [
        ("start", ""), ("started", "a"), ("result", "a@1"), ("started", "b"), ("result", "b@1"),
        ("result", "a@2"), ("ended", "a:COMPLETE"), ("close", "b"),
    ]  # fmt: skip
    warnings = [ln for ln in out.getvalue().splitlines() if "warning" in ln]
    assert warnings == [
        "sweeper: warning: the recorder sink failed (trial_result: OSError: the server went "
        "away); the study goes on, and so does the sink",
        "sweeper: warning: the recorder sink failed 3 times in this run",
    ]
    states = dict(Study(tmp_path / "cb").trials()[["trial_id", "state"]].values)
    assert states == {"a": "COMPLETE", "b": "INTERRUPTED"}
