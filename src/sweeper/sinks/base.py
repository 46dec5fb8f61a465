"""The sink protocol: what a record of the study (the trial table, W&B, TensorBoard, the
Optuna mirror, the progress line) is told as the study runs.

The engine's driver callback (:mod:`sweeper.engine.callbacks`) turns Ray Tune's events into
the small records below and hands each one to every sink of the study
(:class:`~sweeper.sinks.fanout.SinkList`), in the order of the registry
(:mod:`sweeper.sinks.registry`). Sinks never see Ray's objects and never import Ray.

The order of calls, per driver session::

    start(StudyStart)                         once, before any trial event
    trial_started / trial_result / trial_ended  as trials run (a trial may report
                                              before it is started: a restored one)
    tick()                                    on every turn of Ray Tune's loop
    close(StudyEnd)                           once, at the end or on an interrupt

A session that ends before its first step gets ``close`` without ``start``. Every record
handed to a sink is the sink's to keep (copies), and no sink may change one: several sinks
get the same record. A sink that is slow (a database, W&B) does its work on a thread of
its own (:class:`~sweeper.sinks.background.Background`) and waits for it in ``close``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sweeper.states import TrialState
from sweeper.store import PARAM_PREFIX

if TYPE_CHECKING:
    from sweeper.spec import Spec
    from sweeper.store import Study
    from sweeper.store.book import TrialBook

Row = Mapping[str, Any]  # one trial's row of the trial table (``config/<name>`` columns too)


@dataclass(frozen=True)
class TrialEvent:
    """What every trial event carries.

    Attributes:
        trial_id: the trial.
        config: the values the trial runs with (Ray's ``trial.config``: the swept ones).
        row: the trial's row in the table after the event.
    """

    trial_id: str
    config: Mapping[str, Any]
    row: Row

    @property
    def params(self) -> dict[str, Any]:
        """The row's values (its ``config/`` columns, prefix dropped: constants too, a list
        as its JSON text, a PBT copy's current values)."""
        return params_of(self.row)

    @property
    def state(self) -> TrialState:
        return TrialState.of(self.row.get("state"))


@dataclass(frozen=True)
class TrialStarted(TrialEvent):
    """The trial is running (first start, a retry, or a resumed trial)."""


@dataclass(frozen=True)
class TrialResult(TrialEvent):
    """One result of a trial: an epoch's metrics, or a closing result without ``epoch``.

    Attributes:
        metrics: the trial's own metrics (Ray's bookkeeping keys dropped).
    """

    metrics: Mapping[str, Any] = field(default_factory=dict)

    @property
    def epoch(self) -> int | None:
        """The epoch this result closes; None for a result that is not an epoch's."""
        return int(self.metrics["epoch"]) if "epoch" in self.metrics else None


@dataclass(frozen=True)
class TrialEnded(TrialEvent):
    """The trial ended: its row's state is COMPLETE, PRUNED or FAIL (``row["error"]``).

    Attributes:
        curve: the study's metric by epoch (Optuna's intermediate values).
    """

    curve: Mapping[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyStart:
    """The study as this driver session begins, its records reconciled with Ray's.

    Attributes:
        spec: the study's saved spec.
        folder: the study folder.
        resumed: the study held trials when the session began (a resume).
        book: the trials already recorded (a snapshot of the engine's book: rows and
            metric curves), as reconciled with the trials Ray restored. Records of any
            trial not in it must go (Ray does not know it: its config runs again under a
            new id).
        history_epochs: trial -> the last epoch the study's history held when the session
            began (a resumed trial's sink may write those epochs again from the history).
        dropped: the trials whose rows were dropped on this resume.
        recovered: results Ray holds for trials it ended that the study's history lacks
            (a kill fell between Ray's snapshot and the history's record); their trials'
            rows in ``book`` are ended already.
    """

    spec: Spec
    folder: Path
    resumed: bool
    book: TrialBook
    history_epochs: Mapping[str, int] = field(default_factory=dict)
    dropped: frozenset[str] = frozenset()
    recovered: tuple[TrialResult, ...] = ()

    @property
    def trials(self) -> Mapping[str, Row]:
        """The rows of the trials already recorded, by trial id."""
        return self.book.rows


@dataclass(frozen=True)
class StudyEnd:
    """The study as this session ends (its last trial ended, or an interrupt).

    Attributes:
        trials: every row, by trial id (trials still running are INTERRUPTED).
        interrupted: the trials that were running: nothing runs them now, and ``resume``
            continues them.
    """

    trials: Mapping[str, Row]
    interrupted: frozenset[str] = frozenset()


@runtime_checkable
class Sink(Protocol):
    """A record of the study, fed by the engine (see the module's docstring).

    Attributes:
        name: the sink's registry name (in warnings).
        essential: its failure fails the study (the trial table: the study's own record);
            any other sink's failure is a warning and the study goes on.
    """

    name: str
    essential: bool

    def start(self, study: StudyStart) -> None: ...
    def trial_started(self, event: TrialStarted) -> None: ...
    def trial_result(self, event: TrialResult) -> None: ...
    def trial_ended(self, event: TrialEnded) -> None: ...
    def tick(self) -> None: ...
    def flush(self) -> None: ...
    def close(self, end: StudyEnd) -> None: ...


class BaseSink:
    """A sink that does nothing: subclass it and override the events you need.

    ``tick`` (Ray's loop turned: a sink may redraw) and ``flush`` (wait until the
    background work asked so far is done) do nothing unless overridden.
    """

    name = "sink"
    essential = False

    def start(self, study: StudyStart) -> None:
        pass

    def trial_started(self, event: TrialStarted) -> None:
        pass

    def trial_result(self, event: TrialResult) -> None:
        pass

    def trial_ended(self, event: TrialEnded) -> None:
        pass

    def tick(self) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self, end: StudyEnd) -> None:
        pass


@dataclass
class SinkContext:
    """What a sink's factory gets (:mod:`sweeper.sinks.registry`).

    Attributes:
        spec: the study's saved spec (a sink's own block turns it off or sets it up).
        study: the study folder.
        total: the trials planned.
        book: the engine's live book of trials (read it on the callback's thread only).
        console: the driver's console on stderr (rich); warnings and the progress go there.
        warn: one warning line above the progress.
        storage: the Optuna mirror's real URL (None: the one the saved spec names).
    """

    spec: Spec
    study: Study
    total: int
    book: TrialBook
    console: Any
    warn: Callable[[str], None]
    storage: str | None = None


def params_of(row: Row) -> dict[str, Any]:
    """A row's swept values: its ``config/`` columns, prefix dropped."""
    return {k.removeprefix(PARAM_PREFIX): v for k, v in row.items() if k.startswith(PARAM_PREFIX)}
