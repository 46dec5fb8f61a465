"""What tests (and the benchmarks) share: the repository's root and the small sweep files.

No pytest here: ``benchmarks/chaos.py`` imports ``tests.support.chaos`` as a plain module.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.sweeps import SWEEP, sweep_config, write_sweep

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"

__all__ = ["REPO", "SHARED_DATA", "SWEEP", "sweep_config", "write_sweep"]
