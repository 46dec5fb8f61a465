"""The sink registry: a name -> a factory that makes the study's sink, or None when the
spec turns it off.

A factory is a callable taking a :class:`~sweeper.sinks.base.SinkContext`, or its
``"module:function"`` path (imported when the study's sinks are made, so that importing
this module stays light). Sinks are fed in the registry's order: the trial table first
(the study's own record: its failure fails the study before the copies are written).

Adding a sink (MLflow, say): a module ``sinks/mlflow.py`` with a :class:`BaseSink`
subclass and its ``make_sink(context)``, one line below, and its block in the spec
(``spec/schema.py``) that the factory reads. ``tests/test_sinks.py`` runs every
registered sink through the same events.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sweeper.errors import SweeperError
from sweeper.registry import Registry
from sweeper.sinks.base import Sink, SinkContext

Factory = Callable[[SinkContext], "Sink | None"]


@dataclass(frozen=True)
class SinkEntry:
    """A registered sink: its factory (or ``"module:function"`` path), and whether the
    study cannot run without it."""

    factory: Factory | str
    essential: bool = False


class SinkRegistry:
    """Sink factories by name, in the order they were registered (the one
    :class:`~sweeper.registry.Registry` type underneath)."""

    def __init__(self) -> None:
        self._entries: Registry[SinkEntry] = Registry("sink", error=SweeperError)

    def register(self, name: str, factory: Factory | str, *, essential: bool = False) -> None:
        """Add ``factory`` (or its ``"module:function"`` path) under ``name``; a duplicate
        name raises. ``essential``: a sink the study cannot run without (its factory's
        error stops the study; any other's is a warning, and the study runs without it)."""
        self._entries.register(name, SinkEntry(factory, essential))

    def names(self) -> list[str]:
        """Every registered name, in feeding order."""
        return self._entries.names()

    def get(self, name: str) -> Factory:
        """The factory of ``name``; an unknown name lists the valid ones and the closest."""
        factory = self._entries.get(name).factory
        return _resolve(factory) if isinstance(factory, str) else factory

    def essential(self, name: str) -> bool:
        return self._entries.get(name).essential

    def build(self, context: SinkContext, names: list[str] | None = None) -> list[Sink]:
        """The study's sinks (those of ``names``, default every one), in feeding order;
        a factory that returns None (turned off) adds nothing."""
        sinks = []
        for name in self.names() if names is None else names:
            factory = self.get(name)
            try:
                sink = factory(context)
            except Exception as exc:  # noqa: BLE001 - a record's failure is a warning
                if self.essential(name):
                    raise
                context.warn(f"the {name} sink did not start ({type(exc).__name__}: {exc}); "
                             "the study goes on without it")  # fmt: skip
                continue
            if sink is not None:
                sinks.append(sink)
        return sinks


def _resolve(path: str) -> Factory:
    module, _, attr = path.partition(":")
    factory: Any = getattr(importlib.import_module(module), attr)
    return factory


SINKS = SinkRegistry()
SINKS.register("table", "sweeper.sinks.table:make_sink", essential=True)  # the record: first
SINKS.register("mirror", "sweeper.sinks.mirror:make_sink")  # the Optuna mirror
SINKS.register("wandb", "sweeper.sinks.wandb.sink:make_sink")
SINKS.register("tensorboard", "sweeper.sinks.tensorboard:make_sink")
SINKS.register("progress", "sweeper.sinks.progress:make_sink")  # last: counts what ended


def register_sink(name: str, factory: Factory | str, *, essential: bool = False) -> None:
    """Add a sink to the study's sinks (:meth:`SinkRegistry.register` of :data:`SINKS`)."""
    SINKS.register(name, factory, essential=essential)
