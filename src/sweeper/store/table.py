"""The trial table: ``trials.csv`` (a compacted snapshot) plus ``trials.jsonl`` (a journal).

Each change to a trial's row appends the whole row, as one JSON line, to the journal: an
event costs one small append, whatever the study's size. The CSV is rewritten (atomically)
only when the journal has outgrown it, and when a run ends, so the bytes written per event
stay bounded too (amortised: a rewrite of n rows follows at least n rows' worth of journal).
Readers take the CSV and replay the journal, a journal row replacing the row of the same
trial id. Replaying a row twice changes nothing, so a kill between the CSV's rename and the
journal's truncation loses nothing. No ray here; pandas only when a frame is asked for.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sweeper.store.files import append_text, atomic_write

TABLE = "trials.csv"
JOURNAL = "trials.jsonl"
# Columns every trial row has, in this order; params and metrics follow.
NODE_KEY = "node"  # each result names the node it came from (the table's node column)
BASE_COLUMNS = ["trial_id", "number", "state", "epochs", "wall_s", "startup_s", "error"]
# The journal is folded into the CSV once it is larger than the CSV and than this.
MIN_FOLD_BYTES = 256 * 1024


class TrialTable:
    """The rows of one study folder's trial table (one row per trial id)."""

    def __init__(self, folder: Path) -> None:
        self.csv_path = Path(folder) / TABLE
        self.journal_path = Path(folder) / JOURNAL
        self._journal_bytes = _size(self.journal_path)
        self._csv_bytes = _size(self.csv_path)

    def record(self, row: Mapping[str, Any]) -> bool:
        """Append one trial's whole row to the journal; True when it is time to :meth:`fold`."""
        line = json.dumps(dict(row), default=_plain, separators=(",", ":")) + "\n"
        self._journal_bytes += append_text(self.journal_path, line)
        return self._journal_bytes > max(MIN_FOLD_BYTES, self._csv_bytes)

    def fold(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Write every row to the CSV (atomically), then empty the journal."""
        text = rows_to_csv(rows)
        atomic_write(self.csv_path, text)
        self._csv_bytes = len(text.encode("utf-8"))
        if self._journal_bytes or self.journal_path.exists():
            atomic_write(self.journal_path, "")
        self._journal_bytes = 0

    def journal_rows(self) -> dict[str, dict[str, Any]]:
        """The newest journal row of each trial id (a torn last line is skipped)."""
        latest: dict[str, dict[str, Any]] = {}
        try:
            text = self.journal_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return latest
        for line in text.splitlines():
            try:
                row = json.loads(line)
                latest[str(row["trial_id"])] = row
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a power loss
        return latest

    def rows(self) -> list[dict[str, Any]]:
        """Every row as a dict, without pandas (CSV values are text; journal rows typed)."""
        merged: dict[str, dict[str, Any]] = {}
        if _size(self.csv_path):
            with open(self.csv_path, newline="", encoding="utf-8") as f:
                merged = {str(r["trial_id"]): r for r in csv.DictReader(f)}
        merged.update(self.journal_rows())
        return list(merged.values())

    def frame(self) -> Any:
        """The whole table as a DataFrame, in trial-number order (empty: base columns)."""
        import pandas as pd

        base = pd.read_csv(self.csv_path) if _size(self.csv_path) else None
        latest = self.journal_rows()
        if base is None and not latest:
            return pd.DataFrame(columns=BASE_COLUMNS)
        if not latest:
            return base
        new = pd.DataFrame(list(latest.values()))
        if base is not None:
            base = base[~base["trial_id"].astype(str).isin(latest)]
            new = pd.concat([base, new], ignore_index=True) if len(base) else new
        df = new[ordered_columns([{c: None for c in new.columns}])]
        if "number" in df.columns:
            df = df.sort_values("number", kind="stable")
        return df.reset_index(drop=True)

    def remove(self) -> None:
        for path in (self.csv_path, self.journal_path):
            path.unlink(missing_ok=True)
        self._journal_bytes = self._csv_bytes = 0


def ordered_columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """:data:`BASE_COLUMNS` that occur, then every other key in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return [c for c in BASE_COLUMNS if c in seen] + [c for c in seen if c not in BASE_COLUMNS]


def rows_to_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    rows = list(rows)
    columns = list(BASE_COLUMNS)
    columns += [c for c in ordered_columns(rows) if c not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _plain(value: Any) -> Any:
    """JSON for numpy scalars (rows read back from pandas) and enums."""
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "value"):
        return value.value
    return str(value)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
