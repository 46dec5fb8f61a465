"""The driver-side Ray Tune callback: Ray's trial events into the study's records.

One callback turns each event into an update of the :class:`~sweeper.store.book.TrialBook`
(the state machine), then hands a small record of it (:mod:`sweeper.sinks.base`) to each of
the study's sinks (:mod:`sweeper.sinks.registry`: the trial table and history, the Optuna
mirror, W&B, TensorBoard, the progress line), each call guarded
(:class:`~sweeper.sinks.fanout.SinkList`: only the trial table's failure stops the study).
Each event costs an append or two, whatever the study's size; the slow sinks write on
threads of their own, so Ray Tune's control loop (and every trial waiting in
``tune.report``) never waits for them.

On the first step of a run the book is reconciled with the trials Ray restored, and the
sinks get the reconciled study (:class:`~sweeper.sinks.base.StudyStart`).

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
from sweeper.sinks.base import (
    SinkContext,
    StudyEnd,
    StudyStart,
    TrialEnded,
    TrialResult,
    TrialStarted,
)
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

    def __init__(
        self, study_path: str | Path, total: int, storage: str | None = None, console: Any = None
    ) -> None:
        """``storage``: the Optuna mirror's real URL (None: the saved spec's); ``console``:
        where the progress and the warnings go (default: rich on stderr). Neither is
        pickled."""
        self.study_path = str(Path(study_path).resolve())
        self.total = total
        self._setup(storage, console)

    def _setup(self, storage: str | None = None, console: Any = None) -> None:
        from sweeper.sinks.fanout import SinkList
        from sweeper.sinks.progress import stderr_console
        from sweeper.sinks.registry import SINKS

        if not (Path(self.study_path) / "study.json").is_file():
            raise SweeperError(f"{self.study_path}: the study folder Ray recorded is gone")
        self.study = Study(Path(self.study_path))
        self.book = TrialBook(self.study)
        self.history_epochs = self.study.history_epochs()  # trial -> last epoch in history
        self.resumed = bool(self.book.rows or self.history_epochs)
        self.console = stderr_console() if console is None else console
        context = SinkContext(
            self.book.spec, self.study, self.total, self.book, self.console, self.warn, storage
        )
        self.sinks = SinkList(SINKS.build(context), self.warn)
        _OPEN.add(self)
        self._started = False  # the sinks got the study's start

    def __getstate__(self) -> dict[str, Any]:
        return {"study_path": self.study_path, "total": self.total}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        storage = None
        if _BOUND:
            path, storage = _BOUND[-1]
            self.study_path = str(path)
        self._setup(storage)

    def sink(self, name: str) -> Any:
        """The study's sink of that registry name (None: turned off)."""
        return self.sinks.get(name)

    def say(self, text: str) -> None:
        """One line above the progress (printed as it is: no markup)."""
        self.console.print(text, markup=False)

    def warn(self, text: str) -> None:
        self.say(f"sweeper: warning: {text}")

    # -- Ray events ------------------------------------------------------------------------
    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        self._begin(trials)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self.sinks.tick()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._begin(trials)
        row = self.book.start(trial)
        self.sinks.trial_started(TrialStarted(trial.trial_id, _config(trial), dict(row)))

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self._begin(trials)
        self.sinks.trial_result(self._result(trial, self.book.update(trial, result)))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._begin(trials)
        self._finish(trial, None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._begin(trials)
        error = _error_line(trial)
        self._finish(trial, error)
        self.say(f"trial {trial.trial_id} failed: {self._error_note(trial, error)}")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A failed trial Ray retries (``resources.max_failures``): one line, no traceback."""
        failures = int(getattr(trial, "num_failures", 0) or 0)
        note = self._error_note(trial, _error_line(trial))
        self.say(f"trial {trial.trial_id} failed (failure {failures}), retrying: {note}")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.close()

    # -- records -----------------------------------------------------------------------------
    def _result(self, trial: Any, metrics: dict[str, Any]) -> TrialResult:
        row = dict(self.book.rows[trial.trial_id])
        return TrialResult(trial.trial_id, _config(trial), row, metrics)

    def _finish(self, trial: Any, error: str | None) -> None:
        row = dict(self.book.finish(trial, error))
        curve = dict(self.book.curves.get(trial.trial_id, {}))
        self.sinks.trial_ended(TrialEnded(trial.trial_id, _config(trial), row, curve))

    def _begin(self, trials: list) -> None:
        """On the first event of the session: reconcile, then start the sinks."""
        if not self._started:
            self._started = True
            self.sinks.start(self._reconcile(trials))

    def _reconcile(self, trials: list) -> StudyStart:
        """Make the book agree with the trials Ray restored (first step of a run).

        Rows of trials Ray does not know go (the sinks drop their records too); trials Ray
        holds as ended get ended rows (a kill can fall between Ray's snapshot and the
        table's record).
        """
        dropped = self.book.forget_unknown({t.trial_id for t in trials})
        recovered = []
        for trial in trials:
            status = getattr(trial, "status", None)
            state = self.book.rows.get(trial.trial_id, {}).get("state")
            if status == "TERMINATED" and state not in (TrialState.COMPLETE, TrialState.PRUNED):
                if trial.last_result:
                    recovered.append(
                        self._result(trial, self.book.update(trial, trial.last_result))
                    )
                self.book.finish(trial)
            elif status == "ERROR" and state is not TrialState.FAIL:
                self.book.finish(trial, _error_line(trial))
        return StudyStart(
            spec=self.book.spec,
            folder=self.study.path,
            resumed=self.resumed,
            book=self.book.snapshot(),
            history_epochs=dict(self.history_epochs),
            dropped=frozenset(dropped),
            recovered=tuple(recovered),
        )

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

    def flush(self) -> None:
        """Wait until the sinks' threads have written everything asked so far."""
        self.sinks.flush()

    def close(self) -> None:
        """Mark the running trials interrupted, then close every sink: the table is folded,
        the mirror and the W&B runs closed (each waits for its thread), the progress
        stopped. A second call does nothing."""
        if self not in _OPEN:
            return
        _OPEN.discard(self)
        interrupted = self.book.interrupt()  # the driver is stopping: nothing runs them now
        end = StudyEnd(
            {t: dict(r) for t, r in self.book.rows.items()},
            frozenset(str(r["trial_id"]) for r in interrupted),
        )
        self.sinks.close(end)


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


def _config(trial: Any) -> dict[str, Any]:
    """The values Ray runs the trial with (a copy)."""
    return dict(trial.config or {})


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
