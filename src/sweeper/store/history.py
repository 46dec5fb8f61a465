"""Per-epoch metrics: ``history.csv``, append-only, in long format.

Rows are ``trial_id, epoch, key, value``. Nothing is ever rewritten: an epoch trained again
after a restore appends a *restart mark* (key ``__restart__``) first, which voids the rows
that trial wrote before it for that epoch and later ones; a trial dropped on resume gets a
mark at epoch 0. Readers apply the marks, so each (trial, epoch, key) has one value.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sweeper.store.files import append_text

HISTORY = "history.csv"
HEADER = ["trial_id", "epoch", "key", "value"]
RESTART = "__restart__"


class History:
    """The study folder's history file."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / HISTORY

    def append(self, trial_id: str, epoch: int, metrics: Mapping[str, Any]) -> int:
        """Append one epoch's numeric metrics; returns the bytes written."""
        rows = [
            [trial_id, epoch, key, repr(float(value))]
            for key, value in metrics.items()
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool)
        ]
        return self._write(rows)

    def restart(self, trial_id: str, epoch: int) -> int:
        """Void what ``trial_id`` recorded for ``epoch`` and later (it trains them again)."""
        return self._write([[trial_id, epoch, RESTART, ""]])

    def drop(self, trial_ids: Iterable[str]) -> int:
        """Void everything the given trials recorded."""
        return self._write([[t, 0, RESTART, ""] for t in trial_ids])

    def _write(self, rows: list[list[Any]]) -> int:
        if not rows:
            return 0
        buf = io.StringIO()
        writer = csv.writer(buf)
        if not self.path.exists():
            writer.writerow(HEADER)
        writer.writerows(rows)
        return append_text(self.path, buf.getvalue())

    def long(self) -> Any:
        """The valid rows as a long DataFrame (marks applied, torn lines skipped)."""
        import numpy as np
        import pandas as pd

        if not self.path.exists():
            return pd.DataFrame(columns=HEADER)
        long = pd.read_csv(self.path, on_bad_lines="skip", dtype={"trial_id": str, "key": str})
        long["epoch"] = pd.to_numeric(long["epoch"], errors="coerce")
        long = long.dropna(subset=["epoch", "trial_id", "key"]).reset_index(drop=True)
        mark = (long["key"] == RESTART).to_numpy()
        mark_epoch = pd.Series(np.where(mark, long["epoch"], np.inf))
        # for each row, the lowest epoch of any mark at or after it for the same trial
        later = mark_epoch[::-1].groupby(long["trial_id"][::-1].to_numpy()).cummin()[::-1]
        keep = ~mark & (long["epoch"].to_numpy() < later.to_numpy())
        long = long[keep]
        long = long.assign(value=pd.to_numeric(long["value"], errors="coerce"))
        return long[~long["key"].isin(["trial_id", "epoch"])].reset_index(drop=True)

    def frame(self) -> Any:
        """Per-epoch metrics as a wide DataFrame: one row per (trial_id, epoch)."""
        import pandas as pd

        long = self.long()
        if long.empty:
            return pd.DataFrame(columns=["trial_id", "epoch"])
        long = long.assign(epoch=long["epoch"].astype(int))
        wide = long.pivot_table(
            index=["trial_id", "epoch"], columns="key", values="value", aggfunc="last"
        )
        return wide.reset_index().rename_axis(columns=None)

    def last_epochs(self) -> dict[str, int]:
        """The last epoch recorded for each trial."""
        long = self.long()
        if long.empty:
            return {}
        return {str(t): int(e) for t, e in long.groupby("trial_id")["epoch"].max().items()}
