"""The names a sweep file may use, as data (no torch, Ray or Optuna at import).

Every plug-in kind is one :class:`Registry` (``base.py``): a duplicate name raises, an
unknown name lists the valid ones with the closest offered. ``optimizers.py``: the
optimizers; ``samplers.py``: Optuna's samplers; ``schedulers.py``: Ray Tune's schedulers
and Optuna's pruners. The spec validates names against these; the search side, the trial
and the engine build from them. Models (``sweeper.models``) and data sets
(``sweeper.data``) keep their registries, of the same type, beside their code.
"""

from __future__ import annotations

from sweeper.registry.base import Registry, UnknownNameError

__all__ = ["Registry", "UnknownNameError"]
