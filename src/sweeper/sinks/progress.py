"""The live progress on stderr: trials ended, running, failed, pruned, best so far, ETA.

A terminal gets a progress bar redrawn in place (rich's ``Live``), a Jupyter notebook one
output line updated in place (an IPython display handle, at most a few times a second);
logs and pipes get plain lines, one each time the counts change and hold for
:data:`SETTLE_S` (a trial that ends and the next one that starts a moment later make one
line, which counts the new one as running).

The clock runs from the command's start (:func:`sweeper.console.command_started`), so it
includes start-up; the ETA extrapolates from the work done since the first trial of this
run started (each ended trial counts 1, a running one the share of its epochs trained).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sweeper.console import command_started
from sweeper.sinks.base import BaseSink, SinkContext, StudyEnd, TrialEnded
from sweeper.states import TrialState
from sweeper.store.book import TrialBook

SETTLE_S = 1.0  # a plain line waits until the counts have held this long
REDRAW_S = 0.25  # the bar and the notebook line are redrawn at most this often


def eta_seconds(done: float, base: float, total: int, working_s: float) -> float | None:
    """Seconds until ``total`` trials' work is done, at the pace of the ``done - base``
    done in ``working_s`` seconds; None before any is done."""
    gained = done - base
    if gained <= 0 or working_s <= 0:
        return None
    return max(0.0, total - done) * working_s / gained


def duration(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``2h07m``; ``-`` for None."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    def __init__(
        self,
        book: TrialBook,
        name: str,
        total: int,
        console: Any = None,
        clock: Callable[[], float] = time.monotonic,
        started: float | None = None,
    ) -> None:
        self.book = book
        self.name = name
        self.total = total
        self.console = stderr_console() if console is None else console
        self.clock = clock
        self.t0 = command_started() if started is None else started
        self._first_start: float | None = None  # when this run's first trial started
        self._base = 0.0  # the work done by then (a resumed study's ended trials)
        self._live: Any = None
        self._handle: Any = None  # the notebook's display handle
        self._shown_at = 0.0
        self._printed = self._counts()  # what the last plain line said (nothing new yet)
        self._seen = self._printed
        self._seen_at = clock()

    # -- what it says ----------------------------------------------------------------------
    def _counts(self) -> tuple[int, int, int, int]:
        c = self.book.counts()
        ended = sum(c[s] for s in TrialState if s.ended)
        return ended, c[TrialState.RUNNING], c[TrialState.FAIL], c[TrialState.PRUNED]

    def _times(self) -> tuple[str, str]:
        """The time since the command began and the ETA, as text."""
        now = self.clock()
        eta = None
        if self._first_start is not None:
            eta = eta_seconds(
                self.book.work_done(), self._base, self.total, now - self._first_start
            )
        return duration(now - self.t0), duration(eta)

    def _running_text(self, running: int) -> str:
        return "starting trials" if self._first_start is None else f"{running} running"

    def text(self) -> str:
        """The plain line (pipes, logs, the notebook)."""
        elapsed, eta = self._times()
        ended, running, failed, pruned = self._counts()
        return (
            f"{self.name}: {ended}/{self.total} trials done, {self._running_text(running)}, "
            f"{failed} failed, {pruned} stopped early, {self._best()}  [{elapsed}, eta {eta}]"
        )

    def _best(self) -> str:
        best = self.book.best()
        return (
            f"best {self.book.metric} {best:.4f}"
            if best is not None
            else f"best {self.book.metric} -"
        )

    def bar(self) -> Any:
        """The terminal's line: name, bar, trials done, the counts, elapsed and ETA."""
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        elapsed, eta = self._times()
        ended, running, failed, pruned = self._counts()
        grid = Table.grid(padding=(0, 1))
        grid.add_row(
            self.name,
            ProgressBar(total=max(self.total, 1), completed=self.book.work_done(), width=30),
            f"{ended}/{self.total} trials, {self._running_text(running)}, {failed} failed, "
            f"{pruned} stopped early, {self._best()}",
            f"{elapsed} elapsed, eta {eta}",
        )
        return grid

    # -- showing it ------------------------------------------------------------------------
    def show(self, ended: bool = False) -> None:
        """Called on every step of Ray Tune's loop and when a trial ends."""
        if self._first_start is None and self.book.running:
            self._first_start, self._base = self.clock(), self.book.work_done()
        if self.console.is_jupyter:
            self._show_in_notebook(ended)
        elif not self.console.is_terminal:
            self._show_plain()
        else:
            self._show_bar(ended)

    def _show_plain(self, final: bool = False) -> None:
        now, counts = self.clock(), self._counts()
        if counts != self._seen:
            self._seen, self._seen_at = counts, now
        settled = final or now - self._seen_at >= SETTLE_S
        if settled and counts != self._printed:
            self._printed = counts
            self.console.print(self.text(), markup=False)

    def _show_bar(self, ended: bool, force: bool = False) -> None:
        now = self.clock()
        if self._live is None:
            from rich.live import Live

            self._live = Live(self.bar(), console=self.console, refresh_per_second=4)
            self._live.start()
        elif ended or force or now - self._shown_at >= REDRAW_S:
            self._live.update(self.bar())
        else:
            return
        self._shown_at = now

    def _show_in_notebook(self, ended: bool, force: bool = False) -> None:
        from IPython.display import Pretty, display

        now = self.clock()
        if self._handle is None:
            self._handle = display(Pretty(self.text()), display_id=True)
        elif ended or force or now - self._shown_at >= REDRAW_S:
            self._handle.update(Pretty(self.text()))
        else:
            return
        self._shown_at = now

    def say(self, text: str) -> None:
        """One line above the progress (printed as it is: no markup)."""
        self.console.print(text, markup=False)

    def warn(self, text: str) -> None:
        self.say(f"sweeper: warning: {text}")

    def close(self) -> None:
        if self._handle is not None:
            self._show_in_notebook(ended=True, force=True)
            self._handle = None
        if self._live is not None:
            self._show_bar(ended=True, force=True)
            self._live.stop()
            self._live = None
        if not self.console.is_jupyter and not self.console.is_terminal:
            self._show_plain(final=True)


def stderr_console() -> Any:
    """The driver's console: rich on stderr (the progress, and lines printed above it)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


class ProgressSink(BaseSink):
    """The progress line as a sink: redrawn on every turn of Ray's loop and when a trial
    ends, stopped at the end. It reads the engine's book (counts, best, work done)."""

    name = "progress"

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def trial_ended(self, event: TrialEnded) -> None:
        self.progress.show(ended=True)

    def tick(self) -> None:
        self.progress.show()

    def close(self, end: StudyEnd) -> None:
        self.progress.close()


def make_sink(context: SinkContext) -> ProgressSink:
    """Always on (a pipe or a log gets plain lines, only when the counts change)."""
    return ProgressSink(Progress(context.book, context.spec.name, context.total, context.console))
