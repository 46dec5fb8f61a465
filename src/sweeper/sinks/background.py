"""A one-thread queue for the driver's slow records (W&B runs, the Optuna mirror).

Ray Tune calls the driver callback inside its control loop, and a trial's ``tune.report``
waits until the driver has taken its result: every second a callback spends is a second
that every running trial waits, and the first trial's train call is scheduled only after
``on_trial_start`` returns. So the records that are copies of the study (W&B's runs, the
Optuna mirror: both rebuilt or continued on resume) are written by a thread of their own,
in the order they were asked for; the trial table and the history (the study's truth) stay
on the callback's own path. :meth:`Background.close` waits until everything asked is done.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

_STOP = object()


class Background:
    """Runs submitted calls one at a time, in order, on a daemon thread.

    A call that raises is reported through ``warn`` and the next one runs: these records
    never stop a study. The thread starts on the first :meth:`submit`.
    """

    def __init__(self, name: str, warn: Callable[[str], None]) -> None:
        self.name = name
        self.warn = warn
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` after every call submitted before it."""
        if self._thread is None:
            # daemon: a driver stopped by a second Ctrl-C is not kept alive by W&B
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()
        self._queue.put((fn, args))

    def flush(self) -> None:
        """Wait until every call submitted so far has run (the thread goes on)."""
        if self._thread is not None:
            self._queue.join()

    def close(self) -> None:
        """Wait for every submitted call, then stop the thread (a later submit restarts it)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(_STOP)
        thread.join()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                fn, args = item
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - a record's failure is a warning
                self.warn(f"{self.name}: {type(exc).__name__}: {exc}")
            finally:
                self._queue.task_done()
