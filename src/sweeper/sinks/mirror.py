"""Mirror ended trials into an Optuna study so ``optuna.load_study`` (and optuna-dashboard)
open it. Ray's OptunaSearch keeps the sampler's own state; this copy is a record, in the
storage the spec names (:mod:`sweeper.mirror.storage`; by default ``optuna.db`` in the
study folder), written by the study's ``mirror`` sink (:class:`MirrorSink`).

A trial's Optuna state follows :mod:`sweeper.states`: a result (COMPLETE with a finite
metric; every objective finite in a multi-objective study, whose Optuna study has one
direction per objective) is COMPLETE with its values, PRUNED stays PRUNED, and anything else ended (FAIL, or
COMPLETE without a finite metric) is FAIL.

:class:`CatchingUpMirror` is the one the driver uses: a storage that cannot be reached
costs one warning, and the mirror is rebuilt from the trial table when it is back.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sweeper.mirror.storage import (
    OWNER_ATTR,
    close_storage,
    masked,
    one_line,
    open_storage,
)
from sweeper.search.space import recorded_distributions, recorded_params
from sweeper.sinks.background import Background
from sweeper.sinks.base import BaseSink, SinkContext, StudyEnd, StudyStart, TrialEnded
from sweeper.spec import Spec
from sweeper.states import TrialState


class OptunaMirror:
    """Adds each ended trial, once, to an Optuna study in the storage at ``url``.

    ``owner`` (the study folder) is recorded in the Optuna study's user attributes, so a
    later ``sweeper run`` of the same name elsewhere does not take over this study.
    """

    def __init__(self, url: str, spec: Spec, owner: str | Path | None = None) -> None:
        import optuna

        optuna.logging.set_verbosity(logging.WARNING)
        self._optuna = optuna
        self._dists = recorded_distributions(spec)
        self._spec = spec
        self._objectives = spec.objectives
        self.url = url
        self.storage = open_storage(url)
        try:
            self.study = optuna.create_study(
                storage=self.storage,
                study_name=spec.name,
                directions=self._objectives.goals,
                load_if_exists=True,
            )
            if owner is not None and self.study.user_attrs.get(OWNER_ATTR) != str(owner):
                self.study.set_user_attr(OWNER_ATTR, str(owner))
            self.recorded = [
                t.user_attrs.get("trial_id") for t in self.study.get_trials(deepcopy=False)
            ]
        except BaseException:
            self.close()
            raise
        self._seen = set(self.recorded)

    def record(
        self, trial_id: str, params: dict[str, Any], row: Mapping[str, Any], curve: dict[int, float]
    ) -> None:
        """Add one ended trial (once; a second call for the same id does nothing)."""
        state = TrialState.of(row.get("state"))
        if trial_id in self._seen or not state.ended:
            return
        ot = self._optuna
        ok = self._objectives.is_result(row)
        final = "COMPLETE" if ok else ("PRUNED" if state is TrialState.PRUNED else "FAIL")
        params = recorded_params(self._spec, params)  # a list or mapping as its JSON text
        frozen = ot.trial.create_trial(
            params={k: v for k, v in params.items() if k in self._dists},
            distributions={k: d for k, d in self._dists.items() if k in params},
            values=self._objectives.values(row) if ok else None,
            state=getattr(ot.trial.TrialState, final),
            intermediate_values={e: v for e, v in curve.items() if v == v},
            user_attrs={"trial_id": trial_id, **_scalars(row)},
        )
        self.study.add_trial(frozen)
        self._seen.add(trial_id)
        self.recorded.append(trial_id)

    def delete(self) -> None:
        """Delete this Optuna study from its storage (other studies there stay)."""
        self._optuna.delete_study(study_name=self.study.study_name, storage=self.storage)

    def close(self) -> None:
        """Close the database connections (Optuna caches its RDB storage)."""
        close_storage(self.storage)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def synced_mirror(
    url: str, spec: Spec, book: Any, *, file: Path | None = None, owner: str | Path | None = None
) -> OptunaMirror:
    """The study's mirror holding exactly the book's ended rows, each once.

    A mirror that holds a trial the book no longer has (dropped on resume), or one trial
    twice, is rebuilt: the study folder's own ``file`` in a new file renamed over the old
    one (a reader never sees it half made); a study in a shared storage is deleted and
    made again. Missing trials are added.
    """
    ended = [t for t, r in book.rows.items() if TrialState.of(r["state"]).ended]
    mirror = OptunaMirror(url, spec, owner)
    recorded = mirror.recorded
    if set(recorded) - set(ended) or len(recorded) != len(set(recorded)):
        if file is not None:
            mirror.close()
            tmp = file.with_name(f".{file.name}.rebuild")
            tmp.unlink(missing_ok=True)
            mirror = OptunaMirror(sqlite_url(tmp), spec, owner)
            _record_all(mirror, book, ended)
            mirror.close()
            os.replace(tmp, file)
        else:
            mirror.delete()
            mirror.close()
        mirror = OptunaMirror(url, spec, owner)
    _record_all(mirror, book, ended)
    return mirror


def _record_all(mirror: OptunaMirror, book: Any, ended: list[str]) -> None:
    for trial_id in sorted(ended, key=lambda t: int(book.rows[t].get("number", 0))):
        mirror.record(
            trial_id, book.params(trial_id), book.rows[trial_id], book.curves.get(trial_id, {})
        )


class CatchingUpMirror:
    """The driver's mirror (used on the mirror thread only): it never fails the study.

    It keeps its own copy of the book (the snapshot it opened with, plus every ended trial
    recorded since). When the storage cannot be reached it warns once, keeps the records,
    and tries again (at the next ended trial, no sooner than a backoff of 1 s doubling up
    to ``max_delay_s``, and once more on :meth:`close`): the mirror is then rebuilt from its
    book, as on resume, so it holds every ended trial once.
    """

    def __init__(
        self,
        url: str,
        book: Any,
        warn: Callable[[str], None],
        *,
        file: Path | None = None,
        owner: str | Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_delay_s: float = 60.0,
    ) -> None:
        self.url, self.book, self.warn = url, book, warn
        self._file, self._owner, self._clock, self._max_delay = file, owner, clock, max_delay_s
        self.mirror: OptunaMirror | None = None
        self.down = False
        self._delay = 1.0
        self._next_try = 0.0
        self._connect()

    @property
    def study(self) -> Any:
        """The Optuna study (None while the storage cannot be reached)."""
        return None if self.mirror is None else self.mirror.study

    def _connect(self) -> None:
        try:
            self.mirror = synced_mirror(
                self.url, self.book.spec, self.book, file=self._file, owner=self._owner
            )
        except Exception as exc:  # noqa: BLE001 - unreachable: try again later
            self._failed(exc)
            return
        if self.down:
            held = len(self.mirror.recorded)
            self.warn(f"optuna mirror: {masked(self.url)} is back; it holds {held} trials again")
        self.down, self._delay = False, 1.0

    def _failed(self, exc: Exception) -> None:
        if self.mirror is not None:
            try:
                self.mirror.close()
            except Exception:  # noqa: BLE001, S110 - a dead connection's close may fail too
                pass
            self.mirror = None
        if not self.down:
            self.warn(
                f"optuna mirror: {masked(self.url)}: {one_line(exc, self.url)}; "
                "the trial table goes on and the mirror catches up when the storage is back"
            )
        self.down = True
        self._next_try = self._clock() + self._delay
        self._delay = min(self._delay * 2, self._max_delay)

    def record(
        self, trial_id: str, params: dict[str, Any], row: Mapping[str, Any], curve: dict[int, float]
    ) -> None:
        """Keep the trial in the book; add it to the mirror, or catch up when it is due."""
        self.book.rows[trial_id] = dict(row)
        self.book.curves[trial_id] = dict(curve)
        if self.mirror is None:
            if self._clock() >= self._next_try:
                self._connect()
            return
        try:
            self.mirror.record(trial_id, params, row, curve)
        except Exception as exc:  # noqa: BLE001 - unreachable: try again later
            self._failed(exc)

    def close(self) -> None:
        """One last try to catch up, then close the connections."""
        if self.mirror is None:
            self._connect()
        if self.mirror is not None:
            self.mirror.close()
            self.mirror = None
        elif self.down:
            ended = sum(TrialState.of(r["state"]).ended for r in self.book.rows.values())
            self.warn(
                f"optuna mirror: {masked(self.url)} still unreachable at the end; it lacks "
                f"trials of the {ended} ended (the trial table has them all)"
            )


# Per-class and per-repeat columns stay in the trial table: each user attribute is a row
# (and most of the cost of adding a trial) in Optuna's database.
_DETAIL = re.compile(r"(_class\d+|_r\d+|_std)$")


def _scalars(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: (v.value if isinstance(v, TrialState) else v)
        for k, v in row.items()
        if isinstance(v, (int, float, str, bool))
        and not k.startswith("config/")
        and not _DETAIL.search(k)
    }


class MirrorSink(BaseSink):
    """Ended trials into the Optuna mirror, on a thread of its own (it never fails the
    study: an unreachable storage catches up later, see :class:`CatchingUpMirror`)."""

    name = "mirror"

    def __init__(self, folder: Path, warn: Callable[[str], None], url: str | None = None) -> None:
        """``url``: the mirror's real URL (None: the one the saved spec names)."""
        self.folder = Path(folder).resolve()
        self.url = url
        self.warn = warn
        self.mirror: CatchingUpMirror | None = None  # made and used on the thread only
        self.background = Background("optuna mirror", warn)

    def start(self, study: StudyStart) -> None:
        """Open the mirror holding exactly the ended rows of the recorded trials."""
        self.background.submit(self._open, study.book.snapshot())

    def trial_ended(self, event: TrialEnded) -> None:
        self.background.submit(
            self._record, event.trial_id, event.params, dict(event.row), dict(event.curve)
        )

    def flush(self) -> None:
        self.background.flush()

    def close(self, end: StudyEnd) -> None:
        """Close the database, once everything asked is written."""
        self.background.submit(self._close)
        self.background.close()

    # -- on the mirror's thread -----------------------------------------------------------
    def _open(self, book: Any) -> None:
        try:
            from sweeper.mirror.storage import default_file, study_url

            path = self.folder
            url = self.url or study_url(book.spec.storage, path, str(path / "spec.yaml"))
            self.mirror = CatchingUpMirror(
                url, book, self.warn, file=default_file(url, path), owner=path
            )
        except Exception as exc:  # noqa: BLE001 - the mirror is a record; never stop a study
            self.warn(f"optuna mirror: {exc}")

    def _record(self, trial_id: str, params: dict, row: dict, curve: dict) -> None:
        if self.mirror is None:
            return
        try:
            self.mirror.record(trial_id, params, row, curve)
        except Exception as exc:  # noqa: BLE001 - the mirror is a record; never stop a study
            self.warn(f"optuna mirror: trial {trial_id}: {exc}")

    def _close(self) -> None:
        if self.mirror is not None:
            self.mirror.close()
            self.mirror = None


def make_sink(context: SinkContext) -> MirrorSink:
    """Always on: the spec's ``storage`` says where (default ``optuna.db`` in the folder)."""
    return MirrorSink(context.study.path, context.warn, context.storage)
