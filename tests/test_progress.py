"""The progress line without Ray: plain lines on a pipe, the bar's ETA, the command's clock."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from rich.console import Console

from sweeper.console import command_clock, command_started
from sweeper.sinks.progress import SETTLE_S, Progress, duration, eta_seconds
from sweeper.spec import spec_from_dict
from sweeper.store import Study
from sweeper.store.book import TrialBook


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def book(tmp_path, n_trials: int, epochs: int = 4) -> TrialBook:
    spec = spec_from_dict(
        {"name": "p", "model": {"name": "mlp"}, "train": {"epochs": epochs}}, "p.yaml"
    )
    return TrialBook(Study.create(tmp_path / "p", spec, "p.yaml", n_trials))


def piped(b: TrialBook, total: int, clock: Clock) -> tuple[Progress, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, force_jupyter=False, width=200)
    return Progress(b, "p", total, console=console, clock=clock, started=90.0), out


def steps(progress: Progress, clock: Clock, seconds: float) -> None:
    """Ray Tune's loop: a step every 0.1 s."""
    for _ in range(int(seconds / 0.1)):
        clock.now += 0.1
        progress.show()


def test_a_pipe_counts_the_trial_that_starts_just_after_another_ends(tmp_path):
    """One trial at a time: the next starts a moment after one ends (its actor reused).
    The line for the end counts it running ("0 running" while it ran, before)."""
    b, clock = book(tmp_path, 2), Clock()
    progress, out = piped(b, 2, clock)
    first, second = (SimpleNamespace(trial_id=t, config={}) for t in ("t1", "t2"))
    b.start(first)
    steps(progress, clock, 2)
    b.update(first, {"epoch": 4, "val_acc": 0.5})
    b.finish(first)
    progress.show(ended=True)
    clock.now += 0.05
    b.start(second)
    steps(progress, clock, 3)
    progress.close()
    lines = out.getvalue().splitlines()
    assert [ln.split(", ")[:2] for ln in lines] == [
        ["p: 0/2 trials done", "1 running"],
        ["p: 1/2 trials done", "1 running"],
    ]
    assert "best val_acc 0.5000" in lines[1]


def test_a_pipe_prints_a_line_only_once_the_counts_hold(tmp_path):
    b, clock = book(tmp_path, 3), Clock()
    progress, out = piped(b, 3, clock)
    steps(progress, clock, 5)
    assert out.getvalue() == ""  # nothing started: nothing to say
    b.start(SimpleNamespace(trial_id="t1", config={}))
    clock.now += SETTLE_S / 2
    progress.show()
    assert out.getvalue() == ""  # not yet settled
    steps(progress, clock, SETTLE_S + 0.2)
    assert out.getvalue().count("\n") == 1 and "1 running" in out.getvalue()
    progress.close()
    assert out.getvalue().count("\n") == 1  # closing says nothing new twice


def test_the_line_says_starting_until_a_trial_runs_and_times_from_the_command(tmp_path):
    b, clock = book(tmp_path, 4), Clock()
    progress, _ = piped(b, 4, clock)
    progress.show()
    assert "starting trials" in progress.text() and "[10s, eta -]" in progress.text()
    trials = [SimpleNamespace(trial_id=f"t{i}", config={}) for i in range(4)]
    for t in trials[:2]:
        b.start(t)
    progress.show()  # the first trials start at 100 s
    clock.now += 20
    b.update(trials[0], {"epoch": 2, "val_acc": 0.5})  # half of trial 0: 0.5 of 4 trials
    assert "2 running" in progress.text()
    assert progress.text().endswith("[30s, eta 2m20s]")  # 3.5 trials left at 0.5 per 20 s


def test_eta_and_durations():
    assert eta_seconds(0, 0, 8, 30) is None
    assert eta_seconds(2, 0, 8, 30) == pytest.approx(90)
    assert eta_seconds(5, 3, 8, 30) == pytest.approx(45)  # a resumed study: 3 were done
    assert eta_seconds(8, 0, 8, 30) == 0
    assert [duration(s) for s in (None, 9.6, 65, 7260)] == ["-", "10s", "1m05s", "2h01m"]


def test_the_command_clock_is_the_outermost_commands(tmp_path):
    with command_clock():
        outer = command_started()
        with command_clock():
            assert command_started() == outer
        progress = Progress(book(tmp_path, 1), "p", 1, console=Console(file=io.StringIO()))
        assert progress.t0 == outer
    assert command_started() > outer  # no command: now
