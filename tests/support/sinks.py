"""Feed sinks the way the driver callback does, without Ray: a book of trials, its rows
as events, a :class:`~sweeper.sinks.fanout.SinkList`. For the sink tests."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

from sweeper.sinks import (
    SINKS,
    SinkContext,
    SinkList,
    StudyEnd,
    StudyStart,
    TrialEnded,
    TrialResult,
    TrialStarted,
)
from sweeper.store import Study
from sweeper.store.book import TrialBook


def console(out: io.StringIO) -> Any:
    from rich.console import Console

    return Console(file=out, force_terminal=False, force_jupyter=False, width=300)


class Player:
    """The study's events, played into ``sinks`` (default: every registered sink)."""

    def __init__(
        self, study: Study, total: int, sinks: list[Any] | None = None, storage: str | None = None
    ) -> None:
        self.study = study
        self.book = TrialBook(study)
        self.history_epochs = study.history_epochs()
        self.out = io.StringIO()
        self.context = SinkContext(
            self.book.spec, study, total, self.book, console(self.out), self.warn, storage
        )
        self.sinks = SinkList(SINKS.build(self.context) if sinks is None else sinks, self.warn)
        self.trials: dict[str, Any] = {}

    def warn(self, text: str) -> None:
        self.out.write(f"sweeper: warning: {text}\n")

    def trial(self, trial_id: str, config: dict[str, Any] | None = None, **extra: Any) -> Any:
        if trial_id not in self.trials:
            self.trials[trial_id] = SimpleNamespace(trial_id=trial_id, config=config or {})
        self.trials[trial_id].__dict__.update(extra)
        return self.trials[trial_id]

    def start(self, known: list[str] | None = None) -> StudyStart:
        """The session's start; ``known``: the trials Ray restored (the others are dropped)."""
        dropped = self.book.forget_unknown(set(known or ()))
        start = StudyStart(
            self.book.spec,
            self.study.path,
            bool(self.book.rows or self.history_epochs),
            self.book.snapshot(),
            dict(self.history_epochs),
            frozenset(dropped),
        )
        self.sinks.start(start)
        return start

    def started(self, trial_id: str, config: dict[str, Any] | None = None) -> None:
        t = self.trial(trial_id, config)
        row = dict(self.book.start(t))
        self.sinks.trial_started(TrialStarted(trial_id, dict(t.config), row))

    def result(self, trial_id: str, **metrics: Any) -> None:
        t = self.trial(trial_id)
        own = self.book.update(t, metrics)
        row = dict(self.book.rows[trial_id])
        self.sinks.trial_result(TrialResult(trial_id, dict(t.config), row, own))

    def ended(self, trial_id: str, error: str | None = None) -> None:
        t = self.trial(trial_id)
        row = dict(self.book.finish(t, error))
        curve = dict(self.book.curves.get(trial_id, {}))
        self.sinks.trial_ended(TrialEnded(trial_id, dict(t.config), row, curve))

    def close(self) -> None:
        interrupted = self.book.interrupt()
        rows = {t: dict(r) for t, r in self.book.rows.items()}
        self.sinks.close(StudyEnd(rows, frozenset(str(r["trial_id"]) for r in interrupted)))
