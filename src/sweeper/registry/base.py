"""One registry type for every plug-in kind: a name -> entry table that fails loudly.

Models, data sets, optimizers, samplers, schedulers and pruners are each one
:class:`Registry` (modelled on torchvision's ``models/_api.py``): registering a name twice
raises, and an unknown name is a one-line error that lists the valid names and offers the
closest (``unknown sampler 'tpee'; expected one of grid, random, tpe; did you mean 'tpe'?``).
No torch, Ray or Optuna here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from sweeper.suggest import DEFAULT_CUTOFF, did_you_mean

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A name a registry does not hold; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(Generic[T]):
    """Names a sweep file may use, each with its entry (a builder, a class, a table row).

    Args:
        kind: what the names are, as messages say it (``model``, ``sampler``).
        error: the exception :meth:`get` raises for an unknown name (called with the message).
        sort: list names sorted (else in the order they were registered).
        cutoff: how alike (difflib's ratio) a name must be to a typo to be offered.
    """

    def __init__(
        self,
        kind: str,
        *,
        error: type[Exception] = UnknownNameError,
        sort: bool = False,
        cutoff: float = DEFAULT_CUTOFF,
    ) -> None:
        self.kind = kind
        self.error = error
        self.sort = sort
        self.cutoff = cutoff
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name`` and return it; a name already registered raises."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        """The entry for ``name``; an unknown name raises ``error`` (see :meth:`unknown`)."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name from a sweep file
            raise self.error(self.unknown(name)) from None

    def unknown(self, name: object) -> str:
        """The one-line message for a name not registered: the valid names, the closest."""
        hint = did_you_mean(str(name).lower(), self.names(), cutoff=self.cutoff)
        return f"unknown {self.kind} {name!r}; expected one of {', '.join(self.names())}{hint}"

    def names(self) -> list[str]:
        """The registered names (sorted, or in the order they were registered)."""
        return sorted(self._entries) if self.sort else list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """``(name, entry)`` pairs in the order of :meth:`names`."""
        return [(name, self._entries[name]) for name in self.names()]

    def copy(self) -> Registry[T]:
        """A registry with the same settings and entries (a test registers into it)."""
        clone: Registry[T] = Registry(
            self.kind, error=self.error, sort=self.sort, cutoff=self.cutoff
        )
        clone._entries = dict(self._entries)
        return clone

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._entries
        except TypeError:  # unhashable
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"
