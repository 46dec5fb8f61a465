"""Where a study's records go as its trials run: the trial table and history, the Optuna
mirror, W&B, TensorBoard and the progress line, each a sink (:mod:`sweeper.sinks.base`).

The engine's driver callback turns Ray Tune's events into small records and hands them to
each sink the registry (:mod:`sweeper.sinks.registry`) made for the study; a failing sink
never fails the study, except the trial table, which is the study's own record.
"""

from sweeper.sinks.base import (
    BaseSink,
    Sink,
    SinkContext,
    StudyEnd,
    StudyStart,
    TrialEnded,
    TrialEvent,
    TrialResult,
    TrialStarted,
)
from sweeper.sinks.fanout import SinkList
from sweeper.sinks.registry import SINKS, SinkRegistry, register_sink

__all__ = [
    "SINKS",
    "BaseSink",
    "Sink",
    "SinkContext",
    "SinkList",
    "SinkRegistry",
    "StudyEnd",
    "StudyStart",
    "TrialEnded",
    "TrialEvent",
    "TrialResult",
    "TrialStarted",
    "register_sink",
]
