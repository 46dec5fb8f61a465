"""The trial table and the history (:mod:`sweeper.store`) as a sink: the study's own record.

Each trial event appends the trial's whole row to the table's journal (folded into
``trials.csv`` once the journal has outgrown it, and at the end); each epoch appends its
metrics to ``history.csv``, an epoch trained again voiding its old rows first. It writes
on the callback's own path, never a thread: report, export and resume read these files.
It is the one *essential* sink: a failed write stops the study.
"""

from __future__ import annotations

from sweeper.sinks.base import (
    BaseSink,
    Row,
    SinkContext,
    StudyEnd,
    StudyStart,
    TrialEnded,
    TrialEvent,
    TrialResult,
    TrialStarted,
)
from sweeper.store import Study


class TableSink(BaseSink):
    """``trials.csv`` + ``trials.jsonl`` (a row per trial) and ``history.csv`` (per epoch)."""

    name = "table"
    essential = True

    def __init__(self, study: Study) -> None:
        self.study = study
        self.rows: dict[str, Row] = {}  # every trial's newest row: what a fold writes
        self.last: dict[str, int] = {}  # trial -> last epoch in history.csv

    def start(self, study: StudyStart) -> None:
        """Void the history of dropped trials, take the results Ray held that the history
        lacks, and write the reconciled table whole."""
        self.rows = dict(study.trials)
        self.last = {t: e for t, e in study.history_epochs.items() if t not in study.dropped}
        if study.dropped:
            self.study.history_file.drop(sorted(study.dropped))
        for result in study.recovered:
            self._history(result)
        self._fold()

    def trial_started(self, event: TrialStarted) -> None:
        self._record(event)

    def trial_result(self, event: TrialResult) -> None:
        self._history(event)
        self._record(event)

    def trial_ended(self, event: TrialEnded) -> None:
        self._record(event)

    def close(self, end: StudyEnd) -> None:
        """Fold the table: every row, the interrupted ones too."""
        self.rows = dict(end.trials)
        self._fold()

    def _record(self, event: TrialEvent) -> None:
        """Journal the row; fold the whole table once the journal has outgrown it."""
        self.rows[event.trial_id] = event.row
        if self.study.record_trial(dict(event.row)):
            self._fold()

    def _fold(self) -> None:
        self.study.write_trials([dict(row) for row in self.rows.values()])

    def _history(self, event: TrialResult) -> None:
        """Append one epoch to history.csv; an epoch trained again voids its old rows first."""
        epoch = event.epoch
        if epoch is None:
            return  # Ray's closing result of a trial: no new epoch
        if epoch <= self.last.get(event.trial_id, 0):
            self.study.history_file.restart(event.trial_id, epoch)
        self.study.append_history(event.trial_id, epoch, dict(event.metrics))
        self.last[event.trial_id] = epoch


def make_sink(context: SinkContext) -> TableSink:
    """Always on: the table is the study."""
    return TableSink(context.study)
