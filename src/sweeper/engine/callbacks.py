"""The driver-side Ray Tune callback: Ray's trial events into the study's records.

One callback turns each event into an update of the :class:`~sweeper.store.book.TrialBook`
(the state machine), then hands the trial's row to the sinks: the trial table and history
in the study folder, the Optuna mirror, W&B, TensorBoard and the progress line. Each event costs an
append or two, whatever the study's size. The Optuna mirror and W&B are copies of the
study, each written by a thread of its own (:mod:`sweeper.sinks.background`), so Ray
Tune's control loop (and every trial waiting in ``tune.report``) never waits for them.

A failed trial is one line on the terminal (its id, the error's last line, where the whole
traceback is: ``errors/<trial id>.txt`` in the study folder); Ray's own traceback of it,
and its closing "Trials did not complete" list, are muted (:func:`muted_trial_errors`).
When the run stops (Ctrl-C, SIGTERM, the end) the trials still running are marked
INTERRUPTED: nothing runs them any more, and ``resume`` continues them.

Ray pickles its callbacks into the experiment folder and hands the pickled copies back on
``Tuner.restore``. So the callback pickles only the study folder's absolute path and
rebuilds everything from the study's own files; a driver that restores a study from
another place (the folder was moved or copied) binds the new path with
:func:`study_binding` first, and the restored callback uses that one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ray.tune import Callback

from sweeper.errors import SweeperError
from sweeper.sinks.background import Background
from sweeper.states import TrialState
from sweeper.store import Study
from sweeper.store.book import TrialBook
from sweeper.store.files import atomic_write

_BOUND: list[tuple[Path, str | None]] = []
_OPEN: weakref.WeakSet[StudyCallback] = weakref.WeakSet()  # made, not yet closed


@contextlib.contextmanager
def study_binding(path: Path, storage: str | None = None) -> Iterator[None]:
    """Callbacks unpickled inside this block (``Tuner.restore``) record into ``path``, and
    mirror into ``storage`` (a real URL: never pickled, it may hold a password)."""
    _BOUND.append((Path(path).resolve(), storage))
    try:
        yield
    finally:
        _BOUND.pop()


class StudyCallback(Callback):
    """Keeps the book of trials and feeds the study's sinks on every trial event."""

    def __init__(self, study_path: str | Path, total: int, storage: str | None = None) -> None:
        self.study_path = str(Path(study_path).resolve())
        self.total = total
        self._setup(storage)

    def _setup(self, storage: str | None = None) -> None:
        from sweeper.sinks.progress import Progress
        from sweeper.sinks.tensorboard import make_sink
        from sweeper.sinks.wandb.sink import WandbSink

        if not (Path(self.study_path) / "study.json").is_file():
            raise SweeperError(f"{self.study_path}: the study folder Ray recorded is gone")
        self.study = Study(Path(self.study_path))
        self.book = TrialBook(self.study)
        self.history_last = self.study.history_epochs()  # trial -> last epoch in history.csv
        self.progress = Progress(self.book, self.book.spec.name, self.total)
        self.wandb = WandbSink(self.study, self.book.spec, resumed=set(self.history_last))
        self.tensorboard = make_sink(
            self.study, self.book.spec, self.progress.warn, resumed=set(self.history_last)
        )
        self.mirror_url = storage  # the mirror's real URL; None: from the saved spec
        self.mirror: Any = None  # made and used on the mirror's own thread only
        self.mirror_thread = Background("optuna mirror", self.progress.warn)
        _OPEN.add(self)
        self._reconciled = False

    def __getstate__(self) -> dict[str, Any]:
        return {"study_path": self.study_path, "total": self.total}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        storage = None
        if _BOUND:
            path, storage = _BOUND[-1]
            self.study_path = str(path)
        self._setup(storage)

    # -- Ray events ------------------------------------------------------------------------
    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if not self._reconciled:
            self._reconcile(trials)
            self._reconciled = True

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self.progress.show()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._record(self.book.start(trial))
        self.wandb.start(trial.trial_id, dict(trial.config or {}))

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        metrics = self.book.update(trial, result)
        self._record_history(trial.trial_id, metrics)
        self._record(self.book.rows[trial.trial_id])
        self.wandb.log(trial.trial_id, dict(trial.config or {}), metrics)
        self.tensorboard.log(trial.trial_id, self.book.params(trial.trial_id), metrics)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        error = _error_line(trial)
        self._finish(trial, error)
        self.progress.say(f"trial {trial.trial_id} failed: {self._error_note(trial, error)}")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A failed trial Ray retries (``resources.max_failures``): one line, no traceback."""
        failures = int(getattr(trial, "num_failures", 0) or 0)
        note = self._error_note(trial, _error_line(trial))
        self.progress.say(f"trial {trial.trial_id} failed (failure {failures}), retrying: {note}")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.close()

    # -- the sinks -------------------------------------------------------------------------
    def _error_note(self, trial: Any, error: str) -> str:
        """The error's last line, shortened, and where its whole traceback was copied."""
        short = short_error(error)
        saved = self._save_error(trial)
        return f"{short} (full log: {_shown(saved)})" if saved else short

    def _save_error(self, trial: Any) -> Path | None:
        """Copy Ray's error file of ``trial`` (every failure's traceback, colours dropped) to
        ``errors/<trial id>.txt`` in the study folder; its path, or None without one."""
        try:
            with open(trial.error_file, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except (OSError, TypeError):
            return None
        target = self.study.path / ERRORS_DIR / f"{trial.trial_id}.txt"
        try:
            target.parent.mkdir(exist_ok=True)
            atomic_write(target, re.sub(r"\x1b\[[0-9;]*m", "", text))  # no terminal colours
        except OSError:
            return Path(trial.error_file)
        return target

    def _reconcile(self, trials: list) -> None:
        """Make the study's records agree with the trials Ray restored (first step of a run).

        Rows (with their history and W&B runs) of trials Ray does not know go; trials Ray
        holds as ended get ended rows (a kill can fall between Ray's snapshot and the
        table's record); the Optuna mirror is made to hold exactly the ended rows.
        """
        known = {t.trial_id for t in trials}
        dropped = self.book.forget_unknown(known)
        if dropped:
            self.study.history_file.drop(sorted(dropped))
            for trial_id in dropped:
                self.history_last.pop(trial_id, None)
        self.wandb.forget(known)
        self.tensorboard.forget(known)
        for trial in trials:
            status = getattr(trial, "status", None)
            state = self.book.rows.get(trial.trial_id, {}).get("state")
            if status == "TERMINATED" and state not in (TrialState.COMPLETE, TrialState.PRUNED):
                if trial.last_result:
                    self._record_history(trial.trial_id, self.book.update(trial, trial.last_result))
                self.book.finish(trial)
            elif status == "ERROR" and state is not TrialState.FAIL:
                self.book.finish(trial, _error_line(trial))
        self.study.write_trials(list(self.book.rows.values()))
        self.mirror_thread.submit(self._open_mirror, self.book.snapshot())

    def _open_mirror(self, book: TrialBook) -> None:
        """(mirror thread) Open the Optuna mirror holding exactly the ended rows of ``book``
        (an unreachable storage: it catches up later, see CatchingUpMirror)."""
        try:
            from sweeper.mirror.storage import default_file, study_url
            from sweeper.sinks.mirror import CatchingUpMirror

            path = self.study.path.resolve()
            url = self.mirror_url or study_url(book.spec.storage, path, str(path / "spec.yaml"))
            self.mirror = CatchingUpMirror(
                url, book, self.progress.warn, file=default_file(url, path), owner=path
            )
        except Exception as exc:  # noqa: BLE001 - the mirror is a record; never stop a study
            self.progress.warn(f"optuna mirror: {exc}")

    def _mirror_record(self, trial_id: str, params: dict, row: dict, curve: dict) -> None:
        """(mirror thread) Add one ended trial to the Optuna mirror."""
        if self.mirror is None:
            return
        try:
            self.mirror.record(trial_id, params, row, curve)
        except Exception as exc:  # noqa: BLE001 - the mirror is a record; never stop a study
            self.progress.warn(f"optuna mirror: trial {trial_id}: {exc}")

    def _close_mirror(self) -> None:
        """(mirror thread) Close the database."""
        if self.mirror is not None:
            self.mirror.close()
            self.mirror = None

    def _record(self, row: dict[str, Any]) -> None:
        """Journal the row; fold the whole table once the journal has outgrown it."""
        if self.study.record_trial(row):
            self.study.write_trials(list(self.book.rows.values()))

    def _record_history(self, trial_id: str, metrics: dict[str, Any]) -> None:
        """Append one epoch to history.csv; an epoch trained again voids its old rows first."""
        if "epoch" not in metrics:
            return  # Ray's closing result of a trial: no new epoch
        epoch = int(metrics["epoch"])
        if epoch <= self.history_last.get(trial_id, 0):
            self.study.history_file.restart(trial_id, epoch)
        self.study.append_history(trial_id, epoch, metrics)
        self.history_last[trial_id] = epoch

    def _finish(self, trial: Any, error: str | None) -> None:
        row = self.book.finish(trial, error)
        params = self.book.params(trial.trial_id)
        curve = dict(self.book.curves.get(trial.trial_id, {}))
        self.mirror_thread.submit(self._mirror_record, trial.trial_id, params, dict(row), curve)
        self._record(row)
        self.wandb.finish(trial.trial_id, dict(trial.config or {}), row)
        self.tensorboard.finish(trial.trial_id, params, row)
        self.progress.show(ended=True)

    def flush(self) -> None:
        """Wait until the mirror's and W&B's threads have written everything asked so far."""
        self.mirror_thread.flush()
        self.wandb.background.flush()
        self.tensorboard.background.flush()

    def close(self) -> None:
        """Fold the table, close the mirror and the W&B runs (waiting for both threads to
        write everything asked of them), stop the progress line. A second call does nothing."""
        if self not in _OPEN:
            return
        _OPEN.discard(self)
        self.book.interrupt()  # the driver is stopping: nothing runs its trials now
        self.study.write_trials(list(self.book.rows.values()))
        self.mirror_thread.submit(self._close_mirror)
        self.mirror_thread.close()
        self.wandb.close()
        self.tensorboard.close()
        self.progress.close()


@contextlib.contextmanager
def closing_callbacks() -> Iterator[None]:
    """Close, on the way out, every callback made inside the block and still open.

    Ray Tune closes its callbacks at the end of ``fit``, but not when an exception it does
    not catch (a second Ctrl-C) ends it; the threads' records are written either way.
    """
    before = set(map(id, _OPEN))
    try:
        yield
    finally:
        for callback in [cb for cb in list(_OPEN) if id(cb) not in before]:
            callback.close()


@contextlib.contextmanager
def muted_trial_errors() -> Iterator[None]:
    """Ray Tune without its traceback of each failed trial and its closing "Trials did not
    complete" list (the callback says each failure in one line); ``TUNE_PRINT_ALL_TRIAL_ERRORS=1``
    brings Ray's tracebacks back."""
    given = os.environ.get(_PRINT_ERRORS)
    os.environ.setdefault(_PRINT_ERRORS, "0")  # read when Ray Tune's controller is made
    tune_log = logging.getLogger("ray.tune.tune")
    tune_log.addFilter(_not_the_closing_list)
    try:
        yield
    finally:
        tune_log.removeFilter(_not_the_closing_list)
        if given is None:
            os.environ.pop(_PRINT_ERRORS, None)


_PRINT_ERRORS = "TUNE_PRINT_ALL_TRIAL_ERRORS"
ERRORS_DIR = "errors"  # in the study folder: each failed trial's whole traceback
ERROR_CHARS = 200  # the most of an error's line the terminal gets


def _not_the_closing_list(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Trials did not complete")


def short_error(error: str) -> str:
    """An error's line for the terminal: the exception's name without its module, a
    script's output tail (``a | b | c``) down to its last line, at most :data:`ERROR_CHARS`.

    ``sweeper.engine.script_trainable.ScriptFailed: t.py exited with code 1: Traceback ... |
    ValueError: bad`` -> ``ScriptFailed: t.py exited with code 1: ValueError: bad``.
    """
    short = re.sub(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+: ", _last_name, error)
    if " | " in short:
        head, _, tail = short.partition(" | ")
        parts = head.split(": ", 2)
        if len(parts) == 3:
            short = f"{parts[0]}: {parts[1]}: {tail.rsplit(' | ', 1)[-1]}"
    if len(short) > ERROR_CHARS:
        short = short[: ERROR_CHARS - 3] + "..."
    return short


def _last_name(match: re.Match[str]) -> str:
    """``sweeper.engine.script_trainable.ScriptFailed: `` -> ``ScriptFailed: ``."""
    return match.group(0).rsplit(".", 1)[1]


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it is inside it, else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _error_line(trial: Any) -> str:
    """The last line of the trial's traceback (the exception and its message)."""
    text = ""
    try:  # Ray writes the error to the trial's local folder before calling back
        with open(trial.error_file, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except (OSError, TypeError):
        pass
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("Failure #")
    ]
    return lines[-1][:300] if lines else "error (no message from the trial)"
