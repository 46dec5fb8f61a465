"""The TensorBoard sink of the driver callback: ``<study>/tensorboard/<trial_id>/``.

Each trial's folder holds its per-epoch metrics as scalars (step = epoch) and its swept
values as HParams summaries, so TensorBoard's HParams tab (table, parallel coordinates)
shows the study: ``tensorboard --logdir runs/<study>/tensorboard``. Like the W&B sink it
runs on the driver, on a thread of its own (:class:`~sweeper.sinks.background.Background`),
so trials need nothing and Ray Tune's loop never waits for a disk write.

A writer opened with ``purge_step`` makes TensorBoard's readers drop the folder's older
events from that step on. A trial that trains an epoch again opens one at that epoch; a
resumed trial opens one at step 1 and writes its earlier epochs again from the study's
history. So each epoch appears once, with the history's values (whatever a SIGKILL cut).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from sweeper.sinks.background import Background
from sweeper.sinks.base import BaseSink, SinkContext, StudyEnd, StudyStart, TrialEnded, TrialResult
from sweeper.store import BASE_COLUMNS, PARAM_PREFIX

FOLDER = "tensorboard"


class TensorBoardSink(BaseSink):
    """Scalars per epoch, hparams at a trial's first result, the session's end at its end."""

    name = "tensorboard"

    def __init__(self, root: Path, warn: Any, history: Any = None) -> None:
        """``history()`` reads the study's history (a frame: trial_id, epoch, metrics...)."""
        self.root = Path(root) / FOLDER
        self.resumed: set[str] = set()  # trials the history held epochs for at the start
        self.history = history or (lambda: None)
        self._before: Any = None  # the history, read at the first resumed trial's write
        self.opened: set[str] = set()  # trials given a writer this session
        self.warn = warn
        self.writers: dict[str, Any] = {}  # trial -> its open SummaryWriter
        self.last: dict[str, int] = {}  # trial -> last epoch written this session
        self.started: set[str] = set()  # trials whose hparams are written this session
        self.tags: dict[str, set[str]] = {}  # trial -> the scalar tags its epochs gave
        self.background = Background("TensorBoard", warn)

    # -- the sink's events: queued ---------------------------------------------------------
    def start(self, study: StudyStart) -> None:
        """Note the resumed trials; delete the folders of trials the study no longer has."""
        self.resumed = set(study.history_epochs)
        self.background.submit(self._forget, set(study.trials))

    def trial_result(self, event: TrialResult) -> None:
        if event.epoch is not None:
            self.background.submit(self._log, event.trial_id, event.params, dict(event.metrics))

    def trial_ended(self, event: TrialEnded) -> None:
        self.background.submit(self._finish, event.trial_id, event.params, dict(event.row))

    def flush(self) -> None:
        self.background.flush()

    def close(self, end: StudyEnd) -> None:
        """Close every writer and wait until everything asked is on disk."""
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
        """The trial's writer; reopened with ``purge_step`` when ``epoch`` was written before.

        A resumed trial's first writer of the session voids everything its folder holds
        and writes its earlier epochs again from the study's history (the truth: a SIGKILL
        can fall between the history's record of an epoch and this thread's write of it).
        """
        again = epoch is not None and epoch <= self.last.get(trial_id, 0)
        if trial_id in self.writers and not again:
            return self.writers[trial_id]
        self._close(trial_id)
        from torch.utils.tensorboard import SummaryWriter

        folder = self.root / trial_id
        earlier = folder.is_dir()
        backfill = trial_id in self.resumed and trial_id not in self.opened
        if backfill:
            purge: int | None = 1
        elif epoch is not None and (again or earlier):
            purge = epoch  # an epoch trained again (or a folder of an earlier session)
        else:
            purge = None
        folder.mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(str(folder), purge_step=purge if earlier or again else None)
        self.writers[trial_id] = writer
        self.opened.add(trial_id)
        if backfill:
            self._backfill(trial_id, writer, before=epoch)
        return writer

    def _backfill(self, trial_id: str, writer: Any, before: int | None) -> None:
        """Write the trial's epochs (before ``before``) as the study's history holds them."""
        if self._before is None:
            self._before = self.history()
        hist = self._before
        if hist is None or hist.empty:
            return
        rows = hist[hist["trial_id"] == trial_id].sort_values("epoch")
        for row in rows.to_dict("records"):
            epoch = int(row["epoch"])
            if before is not None and epoch >= before:
                break
            for key, value in _numbers(row).items():
                if key != "epoch":
                    writer.add_scalar(key, value, epoch)
                    self.tags.setdefault(trial_id, set()).add(key)
            self.last[trial_id] = epoch

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


def make_sink(context: SinkContext) -> TensorBoardSink | None:
    """The study's sink: on unless the spec says ``tensorboard: false`` (a missing package
    is a warning, never a stopped study)."""
    if not context.spec.tensorboard:
        return None
    why = available()
    if why is not None:
        context.warn(f"TensorBoard logs off: {why}")
        return None
    return TensorBoardSink(context.study.path, context.warn, history=context.study.history)
