"""Read offline W&B runs back (wandb 0.31 has no public reader for ``.wandb`` files).

A ``.wandb`` file is a LevelDB-style log: a 7-byte header (``:W&B``, magic 0xBEE1, version),
then 32 KiB blocks of chunks, each ``crc32 (4) | length (2) | type (1) | data``; a protobuf
``Record`` spans one FULL chunk or a FIRST, MIDDLE..., LAST sequence. Used by the tests and
by ``sweeper sync --dry-run``-style checks; importing it imports wandb's protobufs.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_HEADER = struct.Struct("<4sHB")  # ident, magic, version
_CHUNK = struct.Struct("<IHB")  # crc32, length, type
_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def records(path: str | Path) -> Iterator[Any]:
    """Every protobuf ``Record`` of a ``.wandb`` file, in order (a torn tail is skipped)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    ident, magic, _ = _HEADER.unpack_from(data, 0)
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path}: not a W&B run file")
    pos, parts = _HEADER.size, b""
    while pos + _CHUNK.size <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _CHUNK.size:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        _, length, kind = _CHUNK.unpack_from(data, pos)
        pos += _CHUNK.size
        chunk, pos = data[pos : pos + length], pos + length
        if kind in (_FULL, _FIRST):
            parts = chunk
        elif kind in (_MIDDLE, _LAST):
            parts += chunk
        if kind in (_FULL, _LAST):
            record = pb.Record()
            record.ParseFromString(parts)
            yield record


@dataclass
class OfflineRun:
    """What a run recorded: its identity, config, history rows (by step) and summary."""

    run_id: str
    project: str = ""
    group: str = ""
    job_type: str = ""
    name: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    files: list[Path] = field(default_factory=list)

    def add(self, path: Path) -> None:
        """Apply one ``.wandb`` file (a run, or the continuation of a resumed one)."""
        self.files.append(path)
        for record in records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                self._run(record.run)
            elif kind == "config":
                self.config.update(_items(record.config.update))
            elif kind == "history":
                row = _items(record.history.item)
                self.history.append({"_step": record.history.step.num, **row})
            elif kind == "summary":
                self.summary.update(_items(record.summary.update))
            elif kind == "exit":
                self.exit_code = record.exit.exit_code

    def _run(self, run: Any) -> None:
        self.project = run.project or self.project
        self.group = run.run_group or self.group
        self.job_type = run.job_type or self.job_type
        self.name = run.display_name or self.name
        self.tags = list(run.tags) or self.tags
        self.config.update(_items(run.config.update))

    def steps(self) -> list[int]:
        return [int(row["_step"]) for row in self.history]


def _items(items: Any) -> dict[str, Any]:
    """Key-value items (``key`` or ``nested_key``) decoded from JSON; W&B's own keys dropped."""
    out = {}
    for item in items:
        key = item.key or ".".join(item.nested_key)
        if key.startswith("_"):
            continue
        out[key] = json.loads(item.value_json)
    return out


def offline_runs(wandb_dir: str | Path) -> dict[str, OfflineRun]:
    """Every run under ``wandb_dir`` by id; a resumed run's folders are applied in order."""
    runs: dict[str, OfflineRun] = {}
    folders = Path(wandb_dir).glob("*run-*")
    for folder in sorted(folders, key=lambda f: f.name.partition("run-")[2]):  # start time
        for path in sorted(folder.glob("run-*.wandb")):
            run_id = path.stem.removeprefix("run-")
            runs.setdefault(run_id, OfflineRun(run_id)).add(path)
    return runs


def last_step(wandb_dir: str | Path, run_id: str) -> int | None:
    """The last history step the local records of run ``run_id`` hold (online or offline
    folders), or None when they hold no history row; an unreadable file holds none."""
    steps = [
        record.history.step.num
        for path in Path(wandb_dir).glob(f"*run-*/run-{run_id}.wandb")
        for record in _readable(path)
        if record.WhichOneof("record_type") == "history"
    ]
    return max(steps, default=None)


def _readable(path: Path) -> list[Any]:
    try:
        return list(records(path))
    except (OSError, ValueError, struct.error):  # an empty or foreign file
        return []
