"""The TensorBoard sink of the driver callback: ``<study>/tensorboard/<trial_id>/``.

Each trial's folder holds its per-epoch metrics as scalars (step = epoch) and its swept
values as HParams summaries, so TensorBoard's HParams tab (table, parallel coordinates)
shows the study: ``tensorboard --logdir runs/<study>/tensorboard``. Like the W&B sink it
runs on the driver, on a thread of its own (:class:`~sweeper.engine.background.Background`),
so trials need nothing and Ray Tune's loop never waits for a disk write.

A resumed trial that reports an epoch it (or an earlier session) already wrote opens its
writer with ``purge_step`` at that epoch: TensorBoard's readers then drop the old events
from that step on, so no epoch appears twice (the same rule as the history's restart mark).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from sweeper.engine.background import Background
from sweeper.store import BASE_COLUMNS, PARAM_PREFIX

FOLDER = "tensorboard"


class TensorBoardSink:
    """Scalars per epoch, hparams at a trial's first result, the session's end at its end."""

    def __init__(self, root: Path, enabled: bool, warn: Any) -> None:
        self.root = Path(root) / FOLDER
        self.enabled = enabled
        self.warn = warn
        self.writers: dict[str, Any] = {}  # trial -> its open SummaryWriter
        self.last: dict[str, int] = {}  # trial -> last epoch written this session
        self.started: set[str] = set()  # trials whose hparams are written this session
        self.tags: dict[str, set[str]] = {}  # trial -> the scalar tags its epochs gave
        self.background = Background("TensorBoard", warn)

    # -- the callback's calls: queued, copies of what they are given ----------------------
    def forget(self, known: set[str]) -> None:
        """Delete the folders of trials Ray does not know (a resume that dropped them)."""
        if self.enabled:
            self.background.submit(self._forget, set(known))

    def log(self, trial_id: str, params: dict[str, Any], metrics: dict[str, Any]) -> None:
        if self.enabled and "epoch" in metrics:
            self.background.submit(self._log, trial_id, dict(params), dict(metrics))

    def finish(self, trial_id: str, params: dict[str, Any], row: dict[str, Any]) -> None:
        if self.enabled:
            self.background.submit(self._finish, trial_id, dict(params), dict(row))

    def close(self) -> None:
        """Close every writer and wait until everything asked is on disk."""
        if self.enabled:
            self.background.submit(self._close_all)
        self.background.close()

    # -- on the TensorBoard thread --------------------------------------------------------
    def _forget(self, known: set[str]) -> None:
        if not self.root.is_dir():
            return
        for folder in self.root.iterdir():
            if folder.is_dir() and folder.name not in known:
                self._close(folder.name)
                shutil.rmtree(folder, ignore_errors=True)

    def _writer(self, trial_id: str, epoch: int | None = None) -> Any:
        """The trial's writer; reopened with ``purge_step`` when ``epoch`` was written before."""
        folder = self.root / trial_id
        again = epoch is not None and epoch <= self.last.get(trial_id, 0)
        if trial_id in self.writers and not again:
            return self.writers[trial_id]
        self._close(trial_id)
        from torch.utils.tensorboard import SummaryWriter

        # a folder from an earlier session (or an epoch trained again): void from here on
        purge = epoch if epoch is not None and (again or folder.is_dir()) else None
        folder.mkdir(parents=True, exist_ok=True)
        self.writers[trial_id] = SummaryWriter(str(folder), purge_step=purge, flush_secs=10)
        return self.writers[trial_id]

    def _log(self, trial_id: str, params: dict[str, Any], metrics: dict[str, Any]) -> None:
        epoch = int(metrics["epoch"])
        writer = self._writer(trial_id, epoch)
        for key, value in _numbers(metrics).items():
            if key != "epoch":
                writer.add_scalar(key, value, epoch)
                self.tags.setdefault(trial_id, set()).add(key)
        self.last[trial_id] = epoch
        self._start(trial_id, writer, params)
        writer.flush()

    def _finish(self, trial_id: str, params: dict[str, Any], row: dict[str, Any]) -> None:
        """The row's final metrics (a last scalar for those no epoch gave, e.g. test_acc),
        the experiment (hparams and metric columns) and the session's end."""
        writer = self._writer(trial_id)
        metrics = {
            k: v
            for k, v in _numbers(row).items()
            if not k.startswith(PARAM_PREFIX) and k not in BASE_COLUMNS
        }
        step = self.last.get(trial_id, int(row.get("epochs") or 0))
        for key, value in metrics.items():
            if key not in self.tags.setdefault(trial_id, set()):
                writer.add_scalar(key, value, step)
        self._start(trial_id, writer, params)
        experiment, _, end = _summaries(params, metrics)
        writer.file_writer.add_summary(experiment)
        writer.file_writer.add_summary(end)
        self._close(trial_id)

    def _start(self, trial_id: str, writer: Any, params: dict[str, Any]) -> None:
        """The session's start (its hparams), once a session per trial."""
        if trial_id not in self.started:
            writer.file_writer.add_summary(_summaries(params, {})[1])
            self.started.add(trial_id)

    def _close(self, trial_id: str) -> None:
        writer = self.writers.pop(trial_id, None)
        if writer is not None:
            writer.close()

    def _close_all(self) -> None:
        for trial_id in list(self.writers):
            self._close(trial_id)


def available() -> str | None:
    """None when TensorBoard's writer imports, else the one-line reason with the fix."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return "tensorboard is not installed (pip install tensorboard, or set tensorboard: false)"
    return None


def _summaries(params: dict[str, Any], metrics: dict[str, float]) -> tuple[Any, Any, Any]:
    """The HParams plugin's experiment, session-start and session-end summaries."""
    from torch.utils.tensorboard.summary import hparams

    values = {k: _hparam_value(v) for k, v in params.items()}
    return hparams(values, {k: 0.0 for k in metrics})


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    """The finite numeric values (numpy scalars as Python floats), booleans left out."""
    out = {}
    for key, value in values.items():
        value = value.item() if hasattr(value, "item") else value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value):
                out[key] = float(value)
    return out


def _hparam_value(value: Any) -> Any:
    """A value the HParams plugin takes (bool, number or string); others as their text."""
    value = value.item() if hasattr(value, "item") else value
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def make_sink(study_path: Path, spec: Any, warn: Any) -> TensorBoardSink:
    """The study's sink: on unless the spec says ``tensorboard: false`` (a missing package
    is a warning, never a stopped study)."""
    enabled = bool(getattr(spec, "tensorboard", True))
    why = available() if enabled else None
    if why is not None:
        warn(f"TensorBoard logs off: {why}")
    return TensorBoardSink(study_path, enabled and why is None, warn)
