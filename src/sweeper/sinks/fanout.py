"""Feed a list of sinks, each call guarded: a failing sink never fails the study.

A sink's first failure is one warning line naming the sink, the event and the error; the
sink keeps being tried (a full disk or a lost connection may come back), and its later
failures are counted, not printed, and said in one line when the study closes. An
*essential* sink (the trial table: the study's own record) is the exception: its error,
after every other sink has had the event, stops the study, as a failed write of the table
always has.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

from sweeper.sinks.base import (
    Sink,
    StudyEnd,
    StudyStart,
    TrialEnded,
    TrialResult,
    TrialStarted,
)


class SinkList:
    """The study's sinks, fed in order."""

    def __init__(self, sinks: Iterable[Sink], warn: Callable[[str], None]) -> None:
        self.sinks = list(sinks)
        self.warn = warn
        self.failures: dict[str, int] = {}  # sink name -> its failed calls

    def get(self, name: str) -> Sink | None:
        """The sink named ``name``, None when the study has none (turned off)."""
        return next((s for s in self.sinks if s.name == name), None)

    def start(self, study: StudyStart) -> None:
        self._each("start", study)

    def trial_started(self, event: TrialStarted) -> None:
        self._each("trial_started", event)

    def trial_result(self, event: TrialResult) -> None:
        self._each("trial_result", event)

    def trial_ended(self, event: TrialEnded) -> None:
        self._each("trial_ended", event)

    def tick(self) -> None:
        self._each("tick")

    def flush(self) -> None:
        self._each("flush")

    def close(self, end: StudyEnd) -> None:
        """Close every sink (each waits for its background work), then say how often each
        failing sink failed."""
        try:
            self._each("close", end)
        finally:
            for name, n in self.failures.items():
                if n > 1:
                    self._warn(f"the {name} sink failed {n} times in this run")

    def _each(self, method: str, *args: Any) -> None:
        """Call ``method`` on every sink; an essential sink's error is raised at the end."""
        error: BaseException | None = None
        for sink in self.sinks:
            try:
                getattr(sink, method)(*args)
            except Exception as exc:  # noqa: BLE001 - a record's failure is a warning
                if getattr(sink, "essential", False):
                    error = error or exc
                else:
                    self._failed(sink, method, exc)
        if error is not None:
            raise error

    def _failed(self, sink: Sink, method: str, exc: Exception) -> None:
        n = self.failures[sink.name] = self.failures.get(sink.name, 0) + 1
        if n == 1:
            self._warn(
                f"the {sink.name} sink failed ({method}: {type(exc).__name__}: {_line(exc)}); "
                "the study goes on, and so does the sink"
            )

    def _warn(self, text: str) -> None:
        try:
            self.warn(text)
        except Exception:  # noqa: BLE001 - the console itself may be what fails
            print(f"sweeper: warning: {text}", file=sys.stderr)


def _line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else "(no message)"
