"""Crash-safe file writes for the study folder: whole files by rename, records by append.

A whole-file write goes to a temporary file that is then renamed over the old one, so a
kill at any moment leaves either the old or the new file, never half of one. A record is
one ``write`` of whole lines to a file opened with ``O_APPEND``: a SIGKILL cannot cut a
write in the middle (the kernel finishes it), so a reader sees whole lines, and skips the
last one if a power loss cut it short.
"""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def append_text(path: Path, text: str) -> int:
    """Append ``text`` (whole lines) to ``path`` in one write; returns the bytes written."""
    data = text.encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        return os.write(fd, data)
    finally:
        os.close(fd)
